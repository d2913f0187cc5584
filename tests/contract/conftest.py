"""Each port's contract suite runs once per adapter. A backend is a fixture param: "local" (the
embedded adapters) and "gcp" (the Google Cloud adapters against the emulators that the session
fixture `emulators` of tests/emulators.py starts). The tests themselves do not change; the gcp
params carry the `emulator` mark, so the emulator tier runs them and the contract tier the rest."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cfp.adapters.local.blobs import FileBlobStore
from cfp.adapters.local.documents import SqliteDocumentStore
from cfp.adapters.local.keyring import LocalKeyring
from cfp.adapters.local.queue import SqliteEventQueue
from cfp.adapters.local.sqlite import Database
from cfp.ports import BlobStore, DocumentStore, EventQueue, KeyService

LOCAL = "local"
GCP = pytest.param("gcp", marks=pytest.mark.emulator)
# One list per port: a port's Google adapter joins its list once it passes the suite.
DOCUMENT_BACKENDS = [LOCAL, GCP]
QUEUE_BACKENDS = [LOCAL, GCP]
BLOB_BACKENDS = [LOCAL, GCP]
# Cloud KMS has no emulator: its adapter runs on a recording fake client, in this tier.
KEY_BACKENDS = [LOCAL, "gcp"]
TASK_BACKENDS = [LOCAL, GCP]

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.contract)


class FakeClock:
    """Time the queue sees; `advance` moves it forward instantly. Both queues take it: the
    Pub/Sub queue keeps due times and leases in its ledger, not in Pub/Sub."""

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
    new_peer: Callable[[], Any]
    mark_dead: Callable[[Any], Awaitable[None]]
    peers: list[Any] = field(default_factory=list)

    def peer(self) -> Any:
        """Another consumer process sharing this backend (a new lease owner)."""
        other = self.new_peer()
        self.peers.append(other)
        return other

    async def crash(self, peer: Any) -> None:
        """Make `peer` look like a process that died without releasing its leases."""
        await self.mark_dead(peer)
        self.peers.remove(peer)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(params=DOCUMENT_BACKENDS)
async def documents(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DocumentStore]:
    if request.param == "gcp":
        from cfp.adapters.gcp.firestore import FirestoreDocumentStore

        # A database of its own per test (the emulator makes named databases on first use).
        emulators = request.getfixturevalue("emulators")
        database = f"contract-{uuid.uuid4().hex[:16]}"
        store: DocumentStore = FirestoreDocumentStore.connect(
            emulators.project, database, emulator_host=emulators.firestore_host
        )
        yield store
        await store.close()
        emulators.reset_firestore([database])
        return
    store = SqliteDocumentStore(Database(tmp_path / "cfp.db"))
    yield store
    await store.close()


@pytest.fixture(params=QUEUE_BACKENDS)
async def queue_env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[QueueEnv]:
    clock = FakeClock()
    if request.param == "gcp":
        env = await _pubsub_queue_env(request, clock)
        yield env
        for q in [env.queue, *env.peers]:
            await q.close()
        await env.documents.close()
        return
    db = Database(tmp_path / "cfp.db")

    async def mark_dead(peer: SqliteEventQueue) -> None:
        pid = dead_pid()
        await db.write(
            lambda conn: conn.execute("UPDATE owners SET pid = ? WHERE id = ?", (pid, peer.owner))
        )

    env = QueueEnv(
        queue=SqliteEventQueue(db, clock=clock.now),
        documents=SqliteDocumentStore(db),
        clock=clock,
        new_peer=lambda: SqliteEventQueue(db, clock=clock.now),
        mark_dead=mark_dead,
    )
    yield env
    for q in [env.queue, *env.peers]:
        await q.close()
    db.close()


async def _pubsub_queue_env(request: pytest.FixtureRequest, clock: FakeClock) -> QueueEnv:
    """The Pub/Sub queue on the Pub/Sub emulator with its ledger in the Firestore emulator; a
    tenant of its own per test keeps topics, subscriptions and documents apart."""
    from cfp.adapters.gcp.firestore import FirestoreDocumentStore
    from cfp.adapters.gcp.pubsub import PubSubClients, PubSubEventQueue
    from cfp.domain.documents import SetDoc
    from cfp.domain.naming import PubSubNames
    from cfp.domain.paths import Scope

    emulators = request.getfixturevalue("emulators")
    tenant = f"t{uuid.uuid4().hex[:10]}"
    scope = Scope(tenant, "contract", "test")
    database = f"contract-{tenant}"  # a database of its own: the writes tested are global paths
    documents = FirestoreDocumentStore.connect(
        emulators.project, database, emulator_host=emulators.firestore_host
    )
    request.addfinalizer(lambda: emulators.reset_firestore([database]))

    def new_queue() -> PubSubEventQueue:
        return PubSubEventQueue(
            documents=documents,
            clients=PubSubClients(emulators.project, emulator_host=emulators.pubsub_host),
            names=PubSubNames(tenant, "contract", "test"),
            root=scope.root,
            clock=clock.now,
        )

    async def mark_dead(peer: PubSubEventQueue) -> None:
        await peer.heartbeat()
        doc = await documents.get(peer.ledger.owner(peer.owner))
        assert doc is not None
        await documents.apply([SetDoc(peer.ledger.owner(peer.owner), {**doc, "pid": dead_pid()})])

    return QueueEnv(
        queue=new_queue(),
        documents=documents,
        clock=clock,
        new_peer=new_queue,
        mark_dead=mark_dead,
    )


@pytest.fixture
def queue(queue_env: QueueEnv) -> EventQueue:
    return queue_env.queue


@pytest.fixture(params=BLOB_BACKENDS)
async def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "gcp":
        from cfp.adapters.gcp.storage import GcsBlobStore

        # A bucket of its own per test, on fake-gcs-server (in memory, gone with the session).
        emulators = request.getfixturevalue("emulators")
        store = GcsBlobStore(
            f"contract-{uuid.uuid4().hex[:16]}",
            project=emulators.project,
            endpoint=emulators.gcs_url,
        )
        await store.ensure_bucket()
        yield store
        return
    yield FileBlobStore(tmp_path / "blobs")


@pytest.fixture(params=KEY_BACKENDS)
def keys(request: pytest.FixtureRequest, tmp_path: Path) -> KeyService:
    if request.param == "gcp":
        from cfp.adapters.gcp.kms import CloudKmsKeyService

        from tests.fakes.kms import FakeKmsClient

        return CloudKmsKeyService(
            project="cfp-test",
            region="europe-west1",
            keyring="cfp",
            client=FakeKmsClient(),
            poll_seconds=0,
        )
    return LocalKeyring(tmp_path / "keyring.json")


@pytest.fixture(params=TASK_BACKENDS)
async def tasks(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A TaskQueue: the SQLite one, or Cloud Tasks on the emulator."""
    if request.param == "gcp":
        from cfp.adapters.gcp.tasks import CloudTasksQueue

        emulators = request.getfixturevalue("emulators")
        cloud = CloudTasksQueue.connect(
            emulators.project, "us-central1", emulator_host=emulators.tasks_host
        )
        before = {q.name for q in cloud.client.list_queues(parent=cloud.location_path)}
        yield cloud
        # The emulator keeps a dispatching thread per queue for ever: delete the test's queues.
        for q in cloud.client.list_queues(parent=cloud.location_path):
            if q.name not in before:
                cloud.client.delete_queue(name=q.name)
        await cloud.close()
        return
    from cfp.adapters.local.tasks import SqliteTaskQueue

    db = Database(tmp_path / "cfp.db")
    local = SqliteTaskQueue(db)
    yield local
    await local.close()
    db.close()
