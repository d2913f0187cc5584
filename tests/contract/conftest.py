"""Each port's contract suite runs once per adapter. A backend is a fixture param: the Google
Cloud adapters join by adding their id (e.g. "gcp-emulator") to `BACKENDS` and a branch to each
factory below; the tests themselves do not change."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cfp.adapters.local.blobs import FileBlobStore
from cfp.adapters.local.documents import SqliteDocumentStore
from cfp.adapters.local.keyring import LocalKeyring
from cfp.adapters.local.queue import SqliteEventQueue
from cfp.adapters.local.sqlite import Database
from cfp.ports import BlobStore, DocumentStore, EventQueue, KeyService

BACKENDS = ["local"]

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.contract)


class FakeClock:
    """Time the queue sees; `advance` moves it forward instantly. A backend that cannot take
    a clock (a real Pub/Sub emulator) would hand out a clock whose `advance` sleeps."""

    def __init__(self) -> None:
        self.t = time.time()

    def now(self) -> float:
        return self.t

    async def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class QueueEnv:
    """A queue, the document store its commits write to, its clock, and a way to start a second
    consumer on the same backend and make that consumer look crashed."""

    queue: EventQueue
    documents: DocumentStore
    clock: FakeClock
    db: Database
    peers: list[SqliteEventQueue] = field(default_factory=list)

    def peer(self) -> SqliteEventQueue:
        """Another consumer process sharing this backend (a new lease owner)."""
        other = SqliteEventQueue(self.db, clock=self.clock.now)
        self.peers.append(other)
        return other

    async def crash(self, peer: SqliteEventQueue) -> None:
        """Make `peer` look like a process that died without releasing its leases."""
        pid = dead_pid()
        await self.db.write(
            lambda conn: conn.execute("UPDATE owners SET pid = ? WHERE id = ?", (pid, peer.owner))
        )
        self.peers.remove(peer)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(params=BACKENDS)
async def documents(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DocumentStore]:
    store = SqliteDocumentStore(Database(tmp_path / "cfp.db"))
    yield store
    await store.close()


@pytest.fixture(params=BACKENDS)
async def queue_env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[QueueEnv]:
    db = Database(tmp_path / "cfp.db")
    clock = FakeClock()
    env = QueueEnv(
        queue=SqliteEventQueue(db, clock=clock.now),
        documents=SqliteDocumentStore(db),
        clock=clock,
        db=db,
    )
    yield env
    for q in [env.queue, *env.peers]:
        await q.close()
    db.close()


@pytest.fixture
def queue(queue_env: QueueEnv) -> EventQueue:
    return queue_env.queue


@pytest.fixture(params=BACKENDS)
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return FileBlobStore(tmp_path / "blobs")


@pytest.fixture(params=BACKENDS)
def keys(request: pytest.FixtureRequest, tmp_path: Path) -> KeyService:
    return LocalKeyring(tmp_path / "keyring.json")
