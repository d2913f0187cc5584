"""The audit log on the embedded SQLite store; the same cases run on the Firestore emulator in
tests/emulator/test_audit_log_firestore.py (the cases themselves are in tests/audit_cases.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from cfp.adapters.local.documents import SqliteDocumentStore
from cfp.adapters.local.sqlite import Database

from tests.audit_cases import CASES, AuditBackend, case_id


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[AuditBackend]:
    # Two connections to one database file, each with its own writer: two processes.
    documents = SqliteDocumentStore(Database(tmp_path / "cfp.db"))
    peer = SqliteDocumentStore(Database(tmp_path / "cfp.db"))
    yield AuditBackend(documents, peer)
    await peer.close()
    await documents.close()


@pytest.mark.parametrize("case", CASES, ids=case_id)
async def test_audit_log(
    case: Callable[[AuditBackend], Awaitable[None]], backend: AuditBackend
) -> None:
    await case(backend)
