"""One SQLite database (WAL) per data dir: readers per thread, one writer thread that commits
queued write jobs in small batches, each job in its own savepoint so one failure spoils no other,
and one checkpointer thread that copies the WAL back into the database file off the commit path."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (collection, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    step TEXT NOT NULL,
    event_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    group_key TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    available_at REAL NOT NULL,
    lease_owner TEXT,
    lease_expires REAL,
    error TEXT,
    traceback TEXT,
    updated_at REAL NOT NULL,
    UNIQUE (step, event_id)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (step, status, available_at);
CREATE INDEX IF NOT EXISTS deliveries_group ON deliveries (step, group_key, seq);
CREATE TABLE IF NOT EXISTS processed (
    step TEXT NOT NULL,
    event_id TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (step, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS push_attempts (
    step TEXT NOT NULL,
    event_id TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (step, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS owners (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    heartbeat REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS task_queues (
    name TEXT PRIMARY KEY,
    settings TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    queue TEXT NOT NULL,
    name TEXT NOT NULL,
    named INTEGER NOT NULL,
    url TEXT NOT NULL,
    body BLOB NOT NULL,
    headers TEXT NOT NULL,
    status TEXT NOT NULL,
    due_at REAL NOT NULL,
    schedule_at REAL NOT NULL,
    dispatch_count INTEGER NOT NULL DEFAULT 0,
    response_count INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_pid INTEGER,
    lease_host TEXT,
    last_error TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (queue, name)
);
CREATE INDEX IF NOT EXISTS tasks_due ON tasks (queue, status, due_at);
CREATE INDEX IF NOT EXISTS tasks_expiry ON tasks (status, due_at);
"""

_STOP = object()
MAX_BATCH = 512
# WAL checkpoints. SQLite's automatic checkpoint runs inside the commit that crosses 1,000 WAL
# pages and fsyncs, stalling that batch (and every request awaiting it) for 5-20 ms. Here a
# thread of its own copies the WAL into the database file with passive checkpoints, concurrently
# with the writer, at most once per CHECKPOINT_INTERVAL while there are writes. A passive pass
# cannot catch up with a writer that never pauses, and the WAL only restarts from its beginning
# once all of it was copied, so when it has grown past WAL_RESTART_FRAMES the checkpointer holds
# the writer between two batches for a second, short pass over the frames the first one missed
# (up to 20 ms measured, about once a second at saturation); the writer's next batch restarts
# the WAL. Another process writing the same file is not held by that: should the WAL still reach
# four times the threshold, the second pass is a RESTART checkpoint, which waits (at most
# RESTART_WAIT_MS) for every writer and reader to get out of the way.
CHECKPOINT_INTERVAL = 0.2
WAL_RESTART_FRAMES = 16384  # 64 MiB of 4 KiB pages
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # a restarted WAL file is truncated back to this
RESTART_WAIT_MS = 1000


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Database:
    """The data dir's SQLite file. `read()` gives this thread's reader; `write(fn)` runs `fn(conn)`
    inside the writer's current batch transaction and returns its result."""

    def __init__(self, path: Path, *, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.synchronous = synchronous
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        init = self._connect()
        init.executescript(SCHEMA)
        init.close()
        self._thread = threading.Thread(target=self._run, name="cfp-sqlite-writer", daemon=True)
        self._closed = False
        self._dirty = threading.Event()  # set after a commit: a checkpoint has work to do
        self._batch_lock = threading.Lock()  # held by the writer for each batch
        self._stopping = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="cfp-sqlite-checkpoint", daemon=True
        )
        self._thread.start()
        self._checkpointer.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer thread does it
        conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        return conn

    def read(self) -> sqlite3.Connection:
        """This thread's read connection (WAL readers never block the writer)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    async def write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run `job` in the writer's next batch; its effects are committed when this returns."""
        return await asyncio.wrap_future(self.submit(job))

    def write_sync(self, job: Callable[[sqlite3.Connection], T]) -> T:
        return self.submit(job).result()

    def submit(self, job: Callable[[sqlite3.Connection], T]) -> concurrent.futures.Future[T]:
        if self._closed:
            raise RuntimeError(f"database {self.path} is closed")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((job, future))
        return future

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._jobs.put(_STOP)
        self._thread.join(timeout=30)
        self._stopping.set()
        self._dirty.set()
        self._checkpointer.join(timeout=30)
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _run(self) -> None:
        conn = self._connect()
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is _STOP:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                batch.append(nxt)
            try:
                with self._batch_lock:
                    self._commit_batch(conn, batch)
            except BaseException as exc:  # the writer must outlive any one batch
                for _, future in batch:
                    if not future.done() and (
                        future.running() or future.set_running_or_notify_cancel()
                    ):
                        future.set_exception(exc)
            if not self._dirty.is_set():
                self._dirty.set()
        conn.close()

    def _checkpoint_loop(self) -> None:
        """Passive checkpoints, at most one per CHECKPOINT_INTERVAL, only after writes; see
        CHECKPOINT_INTERVAL for the second pass that keeps the WAL from growing without end."""
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._dirty.wait()
                if self._stopping.is_set():
                    break
                self._dirty.clear()
                try:
                    if conn is None:
                        conn = self._connect()
                        conn.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
                    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames >= WAL_RESTART_FRAMES:
                        # once more unheld: copies what the writer added meanwhile, leaving
                        # the held pass little but its two fsyncs
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                        mode = "RESTART" if frames >= 4 * WAL_RESTART_FRAMES else "PASSIVE"
                        with self._batch_lock:  # no frames are appended during this pass
                            conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
                except sqlite3.Error:  # busy with another process's checkpoint: next time
                    pass
                if self._stopping.wait(CHECKPOINT_INTERVAL):
                    break
        finally:
            if conn is not None:
                conn.close()

    @staticmethod
    def _commit_batch(conn: sqlite3.Connection, batch: list[Any]) -> None:
        outcomes: list[tuple[concurrent.futures.Future[Any], Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job, future in batch:
                if not future.set_running_or_notify_cancel():
                    continue
                conn.execute("SAVEPOINT job")
                try:
                    result = job(conn)
                except BaseException as exc:  # the job's own failure: undo it alone
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    outcomes.append((future, None, exc))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append((future, result, None))
            conn.execute("COMMIT")
        except BaseException as exc:  # the batch could not commit: every job in it failed
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            for _, future in batch:
                # jobs after the failure never started: settle them too, or their callers hang
                if future.running() or future.set_running_or_notify_cancel():
                    future.set_exception(exc)
            return
        for future, result, error in outcomes:
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)
