"""TaskQueue contract: HTTP tasks POSTed when due with their body and headers, retried until 2xx,
listed while pending, deduplicated by name — the same for SQLite and Cloud Tasks.

The Cloud Tasks emulator neither deduplicates names, nor applies queue settings, nor implements
DeleteTask: the tests of those run on the local adapter here (`ONLY_LOCAL`) and against Cloud
Tasks at the client seam (tests/emulator/test_cloud_tasks_seam.py)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cfp.adapters.local.sqlite import Database
from cfp.adapters.local.tasks import SqliteTaskQueue
from cfp.errors import BadRequest, NotFound
from cfp.ports import QueueSettings, Task, TaskQueue, task_name

from .conftest import LOCAL, FakeClock, dead_pid

ONLY_LOCAL = pytest.mark.parametrize("tasks", [LOCAL], indirect=True)
FAST_RETRIES = QueueSettings(min_backoff=0.1, max_backoff=0.2, max_doublings=1)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float


class Receiver:
    """An HTTP target on 127.0.0.1 recording every request; a path can be told to answer with
    given statuses first, or to hold each request a while."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.max_active: dict[str, int] = {}
        self._answers: dict[str, list[int]] = {}
        self._hold: dict[str, float] = {}
        self._active: dict[str, int] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver._handle(self, body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # a short poll: shutdown() waits for the server loop's next look
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        path = handler.path
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self.requests.append(Received(path, headers, body, time.time()))
            answers = self._answers.get(path)
            status = answers.pop(0) if answers else 200
            self._active[path] = self._active.get(path, 0) + 1
            self.max_active[path] = max(self.max_active.get(path, 0), self._active[path])
        time.sleep(self._hold.get(path, 0.0))
        with self._lock:
            self._active[path] -= 1
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def answer(self, path: str, *statuses: int) -> None:
        """Answer the next requests to `path` with these statuses (then 200)."""
        self._answers[path] = list(statuses)

    def hold(self, path: str, seconds: float) -> None:
        self._hold[path] = seconds

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    async def wait_for(self, path: str, count: int = 1, within: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + within
        while len(got := self.at(path)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: {len(got)} of {count} requests within {within}s")
            await asyncio.sleep(0.02)
        return got

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def queue() -> str:
    """A queue name of the test's own (the emulator is shared by the session)."""
    return f"q-{uuid.uuid4().hex[:12]}"


async def pending(tasks: TaskQueue, queue: str, within: float = 5.0) -> list[str]:
    """Names still queued once the queue had time to drain."""
    deadline = time.monotonic() + within
    while True:
        names = [t.name for t in await tasks.list(queue)]
        if not names or time.monotonic() > deadline:
            return names
        await asyncio.sleep(0.05)


# -- delivery --------------------------------------------------------------------------------


async def test_an_immediate_task_arrives_with_its_body_and_headers(
    tasks: TaskQueue, queue: str, receiver: Receiver
) -> None:
    await tasks.ensure_queue(queue)
    task = Task(
        name="greet-e1-1",
        url=receiver.url("/now"),
        body=b'{"hello": "world"}',
        headers={"Content-Type": "application/json", "X-Trace": "t-1"},
    )
    assert await tasks.enqueue(queue, task) is True
    [got] = await receiver.wait_for("/now")
    assert got.body == b'{"hello": "world"}'
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-trace"] == "t-1"
    assert got.headers["x-cloudtasks-taskname"] == "greet-e1-1"
    # Cloud Tasks sends the queue id; the emulator sends its full path.
    assert got.headers["x-cloudtasks-queuename"].rsplit("/", 1)[-1] == queue
    assert got.headers["x-cloudtasks-taskretrycount"] == "0"
    assert got.headers["x-cloudtasks-taskexecutioncount"] == "0"
    assert await pending(tasks, queue) == []


async def test_a_scheduled_task_arrives_at_its_time_not_before(
    tasks: TaskQueue, queue: str, receiver: Receiver
) -> None:
    await tasks.ensure_queue(queue)
    at = time.time() + 1.2
    assert await tasks.enqueue(queue, Task(url=receiver.url("/later"), schedule_at=at))
    await asyncio.sleep(0.7)
    assert receiver.at("/later") == []
    [got] = await receiver.wait_for("/later", within=3.0)
    assert got.at >= at - 0.05
    assert got.at < at + 1.5


async def test_a_failing_task_is_retried_until_it_succeeds(
    tasks: TaskQueue, queue: str, receiver: Receiver
) -> None:
    await tasks.ensure_queue(queue, FAST_RETRIES)
    receiver.answer("/flaky", 500, 500)
    assert await tasks.enqueue(queue, Task(name="flaky", url=receiver.url("/flaky"), body=b"x"))
    got = await receiver.wait_for("/flaky", count=3)
    assert [r.body for r in got] == [b"x"] * 3
    assert [r.headers["x-cloudtasks-taskretrycount"] for r in got] == ["0", "1", "2"]
    assert [r.headers["x-cloudtasks-taskexecutioncount"] for r in got] == ["0", "1", "2"]
    assert await pending(tasks, queue) == []
    await asyncio.sleep(0.3)
    assert len(receiver.at("/flaky")) == 3  # a 2xx ends it


async def test_list_shows_the_pending_tasks_by_schedule_time(
    tasks: TaskQueue, queue: str, receiver: Receiver
) -> None:
    await tasks.ensure_queue(queue)
    now = time.time()
    await tasks.enqueue(queue, Task(name="b", url=receiver.url("/b"), schedule_at=now + 2.0))
    await tasks.enqueue(queue, Task(name="a", url=receiver.url("/a"), schedule_at=now + 1.5))
    listed = await tasks.list(queue)
    assert [(t.name, t.url, t.dispatch_count) for t in listed] == [
        ("a", receiver.url("/a"), 0),
        ("b", receiver.url("/b"), 0),
    ]
    assert listed[0].schedule_at == pytest.approx(now + 1.5, abs=0.01)
    assert listed[1].schedule_at == pytest.approx(now + 2.0, abs=0.01)


async def test_ensure_queue_twice_changes_nothing(
    tasks: TaskQueue, queue: str, receiver: Receiver
) -> None:
    await tasks.ensure_queue(queue, FAST_RETRIES)
    await tasks.enqueue(
        queue, Task(name="kept", url=receiver.url("/kept"), schedule_at=time.time() + 2)
    )
    await tasks.ensure_queue(queue, FAST_RETRIES)
    assert [t.name for t in await tasks.list(queue)] == ["kept"]
    assert await tasks.enqueue(queue, Task(url=receiver.url("/now")))
    await receiver.wait_for("/now")


async def test_a_queue_never_ensured_is_not_found(tasks: TaskQueue, receiver: Receiver) -> None:
    with pytest.raises(NotFound):
        await tasks.enqueue(f"missing-{uuid.uuid4().hex[:8]}", Task(url=receiver.url("/x")))


async def test_names_cloud_tasks_refuses_are_refused(tasks: TaskQueue, receiver: Receiver) -> None:
    with pytest.raises(BadRequest):
        await tasks.ensure_queue("under_score")
    with pytest.raises(BadRequest):
        Task(name="has space", url=receiver.url("/x"))
    with pytest.raises(BadRequest):
        Task(name="ok", url="ftp://example.invalid/x")
    with pytest.raises(BadRequest):
        Task(url=receiver.url("/x"), body=b"x" * 1_000_001)
    # task_name makes a valid, stable name from anything
    name = task_name("orders.step", "evt:1/2", 3)
    assert name == task_name("orders.step", "evt:1/2", 3) != task_name("orders.step", "evt:1/2", 4)
    assert Task(name=name, url=receiver.url("/x")).name == name


# -- dedupe, delete and queue settings (what the emulator does not do) -----------------------


@ONLY_LOCAL  # the emulator answers UNKNOWN (a KeyError inside it)
async def test_listing_a_queue_never_ensured_is_not_found(tasks: TaskQueue) -> None:
    with pytest.raises(NotFound):
        await tasks.list(f"missing-{uuid.uuid4().hex[:8]}")


@ONLY_LOCAL
async def test_a_named_task_is_enqueued_once(
    tasks: TaskQueue, queue: str, receiver: Receiver
) -> None:
    await tasks.ensure_queue(queue)
    later = time.time() + 60
    assert await tasks.enqueue(queue, Task(name="once", url=receiver.url("/1"), schedule_at=later))
    assert not await tasks.enqueue(queue, Task(name="once", url=receiver.url("/2")))
    assert [t.url for t in await tasks.list(queue)] == [receiver.url("/1")]
    # unnamed tasks never collide
    assert await tasks.enqueue(queue, Task(url=receiver.url("/u")))
    assert await tasks.enqueue(queue, Task(url=receiver.url("/u")))
    await receiver.wait_for("/u", count=2)


@ONLY_LOCAL
async def test_a_name_stays_taken_after_its_task_ran(
    tasks: TaskQueue, queue: str, receiver: Receiver
) -> None:
    await tasks.ensure_queue(queue)
    assert await tasks.enqueue(queue, Task(name="ran", url=receiver.url("/ran")))
    await receiver.wait_for("/ran")
    assert await pending(tasks, queue) == []
    assert not await tasks.enqueue(queue, Task(name="ran", url=receiver.url("/ran")))
    await asyncio.sleep(0.2)
    assert len(receiver.at("/ran")) == 1


@ONLY_LOCAL
async def test_delete_before_due_prevents_delivery_and_keeps_the_name(
    tasks: TaskQueue, queue: str, receiver: Receiver
) -> None:
    await tasks.ensure_queue(queue)
    at = time.time() + 0.5
    await tasks.enqueue(queue, Task(name="gone", url=receiver.url("/gone"), schedule_at=at))
    await tasks.enqueue(queue, Task(name="stays", url=receiver.url("/stays"), schedule_at=at))
    assert await tasks.delete(queue, "gone") is True
    assert await tasks.delete(queue, "gone") is False
    assert await tasks.delete(queue, "never") is False
    assert [t.name for t in await tasks.list(queue)] == ["stays"]
    await receiver.wait_for("/stays")
    await asyncio.sleep(0.2)
    assert receiver.at("/gone") == []
    assert not await tasks.enqueue(queue, Task(name="gone", url=receiver.url("/gone")))


@ONLY_LOCAL
async def test_a_task_is_dropped_after_max_attempts(
    tasks: TaskQueue, queue: str, receiver: Receiver
) -> None:
    await tasks.ensure_queue(queue, QueueSettings(max_attempts=2, min_backoff=0.05))
    receiver.answer("/down", *[500] * 10)
    await tasks.enqueue(queue, Task(name="doomed", url=receiver.url("/down")))
    await receiver.wait_for("/down", count=2)
    assert await pending(tasks, queue) == []
    await asyncio.sleep(0.3)
    assert len(receiver.at("/down")) == 2
    assert not await tasks.enqueue(queue, Task(name="doomed", url=receiver.url("/down")))


@ONLY_LOCAL
async def test_retries_back_off_as_the_queue_says(
    tasks: TaskQueue, queue: str, receiver: Receiver
) -> None:
    settings = QueueSettings(min_backoff=0.2, max_backoff=0.5, max_doublings=1)
    await tasks.ensure_queue(queue, settings)
    receiver.answer("/slow", 500, 503, 500)
    await tasks.enqueue(queue, Task(url=receiver.url("/slow")))
    got = await receiver.wait_for("/slow", count=4)
    gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
    for gap, want in zip(gaps, [0.2, 0.4, 0.5], strict=True):  # doubled once, then capped
        assert want - 0.02 <= gap < want + 0.5
    # a 503 is not counted as an execution (Cloud Tasks' rule)
    assert [r.headers["x-cloudtasks-taskexecutioncount"] for r in got] == ["0", "1", "1", "2"]


@ONLY_LOCAL
async def test_ensure_queue_applies_changed_settings(
    tasks: TaskQueue, queue: str, receiver: Receiver
) -> None:
    await tasks.ensure_queue(queue, QueueSettings(max_attempts=5, min_backoff=0.05))
    await tasks.ensure_queue(queue, QueueSettings(max_attempts=1))
    receiver.answer("/once", 500, 500)
    await tasks.enqueue(queue, Task(url=receiver.url("/once")))
    await receiver.wait_for("/once")
    assert await pending(tasks, queue) == []
    await asyncio.sleep(0.2)
    assert len(receiver.at("/once")) == 1


@ONLY_LOCAL
async def test_max_concurrent_dispatches_bounds_the_tasks_in_flight(
    tasks: TaskQueue, queue: str, receiver: Receiver
) -> None:
    await tasks.ensure_queue(queue, QueueSettings(max_concurrent_dispatches=2))
    receiver.hold("/busy", 0.2)
    for _ in range(5):
        await tasks.enqueue(queue, Task(url=receiver.url("/busy")))
    await receiver.wait_for("/busy", count=5)
    assert receiver.max_active["/busy"] == 2


@ONLY_LOCAL
async def test_max_dispatches_per_second_spaces_dispatches(
    tasks: TaskQueue, queue: str, receiver: Receiver
) -> None:
    await tasks.ensure_queue(queue, QueueSettings(max_dispatches_per_second=4))
    at = time.time() + 0.3  # all due at once
    for _ in range(6):
        await tasks.enqueue(queue, Task(url=receiver.url("/rated"), schedule_at=at))
    got = await receiver.wait_for("/rated", count=6)
    # a burst of one second's worth (4), then one every 0.25 s
    assert got[4].at - at >= 0.2
    assert got[5].at - at >= 0.45


# -- durability (the local adapter's own) -----------------------------------------------------


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "cfp.db")
    yield database
    database.close()


async def test_due_tasks_dispatch_after_a_restart(
    db: Database, queue: str, receiver: Receiver
) -> None:
    first = SqliteTaskQueue(db)
    await first.ensure_queue(queue)
    at = time.time() + 0.3
    await first.enqueue(queue, Task(name="survivor", url=receiver.url("/after"), schedule_at=at))
    await first.close()
    await asyncio.sleep(0.4)
    assert receiver.at("/after") == []
    second = SqliteTaskQueue(db)
    try:
        await second.start()
        [got] = await receiver.wait_for("/after")
        assert got.headers["x-cloudtasks-taskname"] == "survivor"
        assert not await second.enqueue(queue, Task(name="survivor", url=receiver.url("/after")))
    finally:
        await second.close()


async def test_a_dead_process_s_dispatches_are_taken_over(
    db: Database, queue: str, receiver: Receiver
) -> None:
    first = SqliteTaskQueue(db)
    await first.ensure_queue(queue)
    await first.enqueue(queue, Task(name="orphan", url=receiver.url("/orphan"), schedule_at=1e10))
    await first.close()
    # as if a process now gone had it in flight, its dispatch deadline far away
    await db.write(
        lambda conn: conn.execute(
            "UPDATE tasks SET status = 'leased', due_at = 1e10, dispatch_count = 1,"
            " lease_owner = 'gone', lease_pid = ?, lease_host = ? WHERE name = 'orphan'",
            (dead_pid(), first.host),
        )
    )
    second = SqliteTaskQueue(db)
    try:
        await second.start()
        [got] = await receiver.wait_for("/orphan")
        assert got.headers["x-cloudtasks-taskretrycount"] == "1"
    finally:
        await second.close()


async def test_a_used_name_is_free_again_after_the_remember_window(
    db: Database, queue: str, receiver: Receiver
) -> None:
    clock = FakeClock()
    tasks = SqliteTaskQueue(db, clock=clock.now, remember_names=3600)
    try:
        await tasks.ensure_queue(queue)
        assert await tasks.enqueue(queue, Task(name="n", url=receiver.url("/n"), schedule_at=1e10))
        assert await tasks.delete(queue, "n")
        await clock.advance(3599)
        assert not await tasks.enqueue(queue, Task(name="n", url=receiver.url("/n")))
        await clock.advance(2)
        assert await tasks.enqueue(queue, Task(name="n", url=receiver.url("/n")))
        await receiver.wait_for("/n")
    finally:
        await tasks.close()
