"""The audit log on the Firestore emulator: the cases of tests/audit_cases.py, which also run on
SQLite in tests/services/test_audit_log.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from cfp.adapters.gcp.emulators import Emulators
from cfp.adapters.gcp.firestore import FirestoreDocumentStore

from tests.audit_cases import CASES, AuditBackend, case_id

pytestmark = pytest.mark.emulator


@pytest.fixture
async def backend(emulators: Emulators) -> AsyncIterator[AuditBackend]:
    # A database of its own per test; two clients on it: two processes.
    database = f"audit-{uuid.uuid4().hex[:16]}"
    stores = [
        FirestoreDocumentStore.connect(
            emulators.project, database, emulator_host=emulators.firestore_host
        )
        for _ in range(2)
    ]
    yield AuditBackend(*stores, peer_races=False)
    for store in stores:
        await store.close()
    emulators.reset_firestore([database])


@pytest.mark.parametrize("case", CASES, ids=case_id)
async def test_audit_log(
    case: Callable[[AuditBackend], Awaitable[None]], backend: AuditBackend
) -> None:
    await case(backend)
