"""The embedded TaskQueue: HTTP tasks kept in the data dir's SQLite database and POSTed by an
asyncio loop when due, retried with the queue's backoff and deduplicated by name, as Cloud Tasks
does it.

A row of `tasks` is `pending` (due at `due_at`), `leased` (being dispatched by `lease_owner`
until `due_at`, its dispatch deadline) or `done`: a tombstone that keeps a caller's task name
taken until `due_at`, as Cloud Tasks refuses a used name for about an hour. Nothing lives only
in memory but rate limits and the dispatches in flight, so a restarted process picks up every
due task; one that died mid-dispatch has its leases freed at start (same host, pid gone) or
when the dispatch deadline passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from cfp.adapters.local.sqlite import Database, dumps
from cfp.adapters.processes import pid_alive
from cfp.errors import NotFound
from cfp.ports import QueuedTask, QueueSettings, Task, check_queue_name

log = logging.getLogger("cfp.tasks")

REMEMBER_NAMES = 3600.0  # Cloud Tasks keeps a used task name taken for about an hour
DISPATCH_DEADLINE = 600.0  # Cloud Tasks' default deadline for an HTTP task's request
POLL_INTERVAL = 1.0  # look for work this often even unwoken (another process may enqueue)
FORGET_INTERVAL = 60.0  # drop expired tombstones this often
LEASE_BATCH = 100  # most tasks leased from one queue in one pass


class _Bucket:
    """max_dispatches_per_second as a token bucket holding one second's worth (at least one)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.at = time.monotonic()

    def available(self) -> int:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return int(self.tokens)

    def take(self, count: int) -> None:
        self.tokens -= count

    def wait(self) -> float:
        """Seconds until the next token."""
        return max(0.0, (1.0 - self.tokens) / self.rate)


@dataclasses.dataclass(frozen=True, slots=True)
class _Leased:
    queue: str
    name: str
    named: bool
    url: str
    body: bytes
    headers: dict[str, str]
    dispatch_count: int
    response_count: int
    schedule_at: float


class SqliteTaskQueue:
    """TaskQueue on SQLite. Dispatching starts with `start()` or the first call of any method,
    on the running event loop, and stops with `close()`."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], float] = time.time,
        remember_names: float = REMEMBER_NAMES,
        dispatch_deadline: float = DISPATCH_DEADLINE,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.db = db
        self.clock = clock
        self.remember_names = remember_names
        self.dispatch_deadline = dispatch_deadline
        self.poll_interval = poll_interval
        self.owner = uuid.uuid4().hex
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self._runner: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._http: httpx.AsyncClient | None = None
        self._running: dict[str, set[asyncio.Task[None]]] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._settings: dict[str, tuple[str, QueueSettings]] = {}
        self._closed = False

    # -- the port ---------------------------------------------------------------------------

    async def ensure_queue(self, queue: str, settings: QueueSettings = QueueSettings()) -> None:
        check_queue_name(queue)
        self._start()
        value = dumps(dataclasses.asdict(settings))
        await self.db.write(
            lambda conn: conn.execute(
                "INSERT INTO task_queues (name, settings) VALUES (?, ?) ON CONFLICT (name)"
                " DO UPDATE SET settings = excluded.settings"
                " WHERE settings != excluded.settings",
                (queue, value),
            )
        )
        self._poke()

    async def enqueue(self, queue: str, task: Task) -> bool:
        check_queue_name(queue)
        self._start()
        now = self.clock()
        at = now if task.schedule_at is None else max(task.schedule_at, now)
        name = task.name or uuid.uuid4().hex
        headers = dumps(dict(task.headers))

        def job(conn: sqlite3.Connection) -> bool:
            known = conn.execute("SELECT 1 FROM task_queues WHERE name = ?", (queue,)).fetchone()
            if known is None:
                raise NotFound(f"task queue {queue!r} does not exist", details={"queue": queue})
            row = conn.execute(
                "SELECT status, due_at FROM tasks WHERE queue = ? AND name = ?", (queue, name)
            ).fetchone()
            if row is not None:
                status, until = row
                if status != "done" or until > now:
                    return False
                conn.execute("DELETE FROM tasks WHERE queue = ? AND name = ?", (queue, name))
            conn.execute(
                "INSERT INTO tasks (queue, name, named, url, body, headers, status, due_at,"
                " schedule_at, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                (queue, name, task.name is not None, task.url, task.body, headers, at, at, now),
            )
            return True

        accepted = await self.db.write(job)
        if accepted:
            self._poke()
        return accepted

    async def delete(self, queue: str, name: str) -> bool:
        self._start()
        now = self.clock()

        def job(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT named FROM tasks WHERE queue = ? AND name = ? AND status != 'done'",
                (queue, name),
            ).fetchone()
            if row is None:
                return False
            self._finish(conn, queue, name, bool(row[0]), now, error="deleted")
            return True

        return await self.db.write(job)

    async def list(self, queue: str) -> list[QueuedTask]:
        self._start()
        reader = self.db.read()
        if reader.execute("SELECT 1 FROM task_queues WHERE name = ?", (queue,)).fetchone() is None:
            raise NotFound(f"task queue {queue!r} does not exist", details={"queue": queue})
        rows = reader.execute(
            "SELECT name, url, schedule_at, dispatch_count FROM tasks WHERE queue = ?"
            " AND status IN ('pending', 'leased') ORDER BY schedule_at, name",
            (queue,),
        ).fetchall()
        return [QueuedTask(name, url, at, count) for name, url, at, count in rows]

    async def close(self) -> None:
        """Stop dispatching; tasks in flight are given back, due at once (at least once)."""
        if self._closed:
            return
        self._closed = True
        pending = [t for group in self._running.values() for t in group]
        if self._runner is not None:
            pending.append(self._runner)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
        if not self.db.closed:
            now = self.clock()
            await self.db.write(
                lambda conn: conn.execute(
                    "UPDATE tasks SET status = 'pending', due_at = ?, lease_owner = NULL,"
                    " lease_pid = NULL, lease_host = NULL"
                    " WHERE status = 'leased' AND lease_owner = ?",
                    (now, self.owner),
                )
            )

    # -- dispatching ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start dispatching due tasks, those left by an earlier process included."""
        self._start()

    def _start(self) -> None:
        if self._runner is None and not self._closed:
            self._wake = asyncio.Event()
            self._runner = asyncio.create_task(self._run(), name="cfp-task-dispatcher")

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        await self._recover()
        forget_at = 0.0
        while not self._closed:
            assert self._wake is not None
            self._wake.clear()
            wait = self.poll_interval
            try:
                now = self.clock()
                if now >= forget_at:
                    await self._forget(now)
                    forget_at = now + FORGET_INTERVAL
                wait = await self._dispatch_due(now)
            except Exception:  # the dispatcher must outlive any one pass
                log.exception("task dispatcher pass failed")
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel that comes
            # with the wake-up (a dispatch ending as close() cancels), and close would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _dispatch_due(self, now: float) -> float:
        """Lease and start what is due in every queue; returns how long to sleep."""
        wait = self.poll_interval
        reader = self.db.read()
        for queue, settings in self._queues().items():
            running = self._running.setdefault(queue, set())
            bucket = self._buckets.get(queue)
            if bucket is None or bucket.rate != settings.max_dispatches_per_second:
                bucket = self._buckets[queue] = _Bucket(settings.max_dispatches_per_second)
            free = settings.max_concurrent_dispatches - len(running)
            if free <= 0:
                continue  # a dispatch that ends wakes the loop
            room = min(free, bucket.available(), LEASE_BATCH)
            if room > 0:
                for leased in await self._lease(queue, room, now):
                    bucket.take(1)
                    job = asyncio.create_task(self._dispatch(leased, settings))
                    running.add(job)
                    job.add_done_callback(running.discard)
            due = [
                reader.execute(
                    "SELECT min(due_at) FROM tasks WHERE queue = ? AND status = ?", (queue, status)
                ).fetchone()[0]
                for status in ("pending", "leased")
            ]
            soonest = min((d for d in due if d is not None), default=None)
            if soonest is None:
                continue
            if soonest <= now and bucket.available() < 1:
                wait = min(wait, bucket.wait())
            else:
                wait = min(wait, max(0.0, soonest - now))
        return wait

    def _queues(self) -> dict[str, QueueSettings]:
        out: dict[str, QueueSettings] = {}
        for name, value in self.db.read().execute("SELECT name, settings FROM task_queues"):
            cached = self._settings.get(name)
            if cached is None or cached[0] != value:
                cached = self._settings[name] = (value, QueueSettings(**json.loads(value)))
            out[name] = cached[1]
        return out

    async def _lease(self, queue: str, limit: int, now: float) -> list[_Leased]:
        until = now + self.dispatch_deadline

        def job(conn: sqlite3.Connection) -> list[_Leased]:
            # Two scans in index order, merged: an OR over both statuses would sort every due
            # row of the queue on each pass.
            due: list[tuple[float, str]] = []
            for status in ("pending", "leased"):
                due += conn.execute(
                    "SELECT due_at, name FROM tasks WHERE queue = ? AND status = ?"
                    " AND due_at <= ? ORDER BY due_at LIMIT ?",
                    (queue, status, now, limit),
                ).fetchall()
            leased = []
            for _, name in sorted(due)[:limit]:
                row = conn.execute(
                    "UPDATE tasks SET status = 'leased', due_at = ?,"
                    " dispatch_count = dispatch_count + 1, lease_owner = ?, lease_pid = ?,"
                    " lease_host = ? WHERE queue = ? AND name = ? RETURNING named, url, body,"
                    " headers, dispatch_count, response_count, schedule_at",
                    (until, self.owner, self.pid, self.host, queue, name),
                ).fetchone()
                named, url, body, headers, dispatches, responses, at = row
                fields = (url, body, json.loads(headers), dispatches, responses, at)
                leased.append(_Leased(queue, name, bool(named), *fields))
            return leased

        return await self.db.write(job)

    async def _dispatch(self, task: _Leased, settings: QueueSettings) -> None:
        headers = {
            **task.headers,
            "User-Agent": "Google-Cloud-Tasks",
            "X-CloudTasks-QueueName": task.queue,
            "X-CloudTasks-TaskName": task.name,
            "X-CloudTasks-TaskRetryCount": str(task.dispatch_count - 1),
            "X-CloudTasks-TaskExecutionCount": str(task.response_count),
            "X-CloudTasks-TaskETA": f"{task.schedule_at:.6f}",
        }
        status: int | None = None
        error: str | None = None
        try:
            response = await self._client().post(task.url, content=task.body, headers=headers)
            status = response.status_code
        except Exception as exc:  # whatever kept it from an answer, the attempt failed
            error = f"{type(exc).__name__}: {exc}"
        try:
            await self._settle(task, settings, status, error)
        except Exception:  # its lease runs out and another pass retries it
            log.exception("recording the dispatch of task %s/%s failed", task.queue, task.name)
        finally:
            self._poke()

    async def _settle(
        self, task: _Leased, settings: QueueSettings, status: int | None, error: str | None
    ) -> None:
        now = self.clock()
        lease = (task.queue, task.name, self.owner)
        if status is not None and 200 <= status < 300:
            await self.db.write(
                lambda conn: self._finish(conn, task.queue, task.name, task.named, now, lease=lease)
            )
            return
        error = error or f"HTTP {status}"
        if settings.max_attempts is not None and task.dispatch_count >= settings.max_attempts:
            log.warning(
                "task %s/%s gave up after %d attempts: %s",
                task.queue,
                task.name,
                task.dispatch_count,
                error,
            )
            await self.db.write(
                lambda conn: self._finish(
                    conn, task.queue, task.name, task.named, now, error=error, lease=lease
                )
            )
            return
        # Cloud Tasks' TaskExecutionCount counts the target's answers, 503s excepted.
        answered = status is not None and status != 503
        at = now + settings.backoff(task.dispatch_count)
        await self.db.write(
            lambda conn: conn.execute(
                "UPDATE tasks SET status = 'pending', due_at = ?1, schedule_at = ?1,"
                " response_count = response_count + ?2, last_error = ?3, lease_owner = NULL,"
                " lease_pid = NULL, lease_host = NULL WHERE queue = ?4 AND name = ?5"
                " AND status = 'leased' AND lease_owner = ?6",
                (at, int(answered), error, *lease),
            )
        )

    def _finish(
        self,
        conn: sqlite3.Connection,
        queue: str,
        name: str,
        named: bool,
        now: float,
        *,
        error: str | None = None,
        lease: tuple[str, str, str] | None = None,
    ) -> None:
        """End a task: a caller-named one leaves a tombstone keeping its name taken; with
        `lease`, only if this process still holds it (it was not deleted or taken over)."""
        where = "queue = ? AND name = ?"
        params: list[Any] = [queue, name]
        if lease is not None:
            where += " AND status = 'leased' AND lease_owner = ?"
            params.append(lease[2])
        if named:
            conn.execute(
                "UPDATE tasks SET status = 'done', due_at = ?, body = x'', headers = '{}',"
                " last_error = ?, lease_owner = NULL, lease_pid = NULL, lease_host = NULL"
                f" WHERE {where}",
                [now + self.remember_names, error, *params],
            )
        else:
            conn.execute(f"DELETE FROM tasks WHERE {where}", params)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self.dispatch_deadline,
                trust_env=False,  # targets are the platform's own functions, never via a proxy
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            )
        return self._http

    async def _recover(self) -> None:
        """Give back leases held by processes of this host that are gone."""
        rows = (
            self.db.read()
            .execute(
                "SELECT DISTINCT lease_pid FROM tasks WHERE status = 'leased' AND lease_host = ?"
                " AND lease_owner != ?",
                (self.host, self.owner),
            )
            .fetchall()
        )
        dead = [pid for (pid,) in rows if pid is not None and not pid_alive(pid)]
        if not dead:
            return
        now = self.clock()
        await self.db.write(
            lambda conn: conn.execute(
                "UPDATE tasks SET status = 'pending', due_at = ?, lease_owner = NULL,"
                " lease_pid = NULL, lease_host = NULL WHERE status = 'leased' AND lease_host = ?"
                f" AND lease_pid IN ({','.join('?' * len(dead))})",
                (now, self.host, *dead),
            )
        )

    async def _forget(self, now: float) -> None:
        """Drop tombstones whose names may be used again."""
        await self.db.write(
            lambda conn: conn.execute(
                "DELETE FROM tasks WHERE status = 'done' AND due_at <= ?", (now,)
            )
        )
