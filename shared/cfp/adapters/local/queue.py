"""The durable embedded event queue: events and per-step deliveries in the data dir's SQLite
database, leases owned by live processes, and the once-per-(step, event id) commit."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from cfp.adapters.local.documents import apply_writes
from cfp.adapters.local.sqlite import Database, dumps
from cfp.adapters.processes import pid_alive
from cfp.domain.documents import Page, Write
from cfp.domain.events import Delivery, Event
from cfp.domain.naming import SubscriptionSpec
from cfp.errors import BadRequest
from cfp.ports import Subscription

HEARTBEAT_STALE_AFTER = 30.0


def _dead_filter(
    prefix: str, *, step: str | None, topic: str | None
) -> tuple[list[str], list[Any]]:
    """WHERE clauses and parameters selecting dead letters, optionally of one step or topic."""
    clauses: list[str] = [f"{prefix}status = 'dead'"]
    params: list[Any] = []
    for column, value in (("step", step), ("topic", topic)):
        if value:
            clauses.append(f"{prefix}{column} = ?")
            params.append(value)
    return clauses, params


class SqliteEventQueue:
    """EventQueue on SQLite. Publish fans an event out into one delivery per subscribing step."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        self.owner = uuid.uuid4().hex
        self.host = socket.gethostname()
        self._subs: dict[str, list[Subscription]] = defaultdict(list)
        self._by_step: dict[str, Subscription] = {}
        self._listeners: list[Callable[[set[str]], None]] = []
        now = self.clock()
        self.db.write_sync(
            lambda conn: conn.execute(
                "INSERT INTO owners (id, pid, host, heartbeat) VALUES (?, ?, ?, ?)",
                (self.owner, os.getpid(), self.host, now),
            )
        )

    # -- subscriptions and notification -------------------------------------------------

    def set_subscriptions(self, subscriptions: Sequence[Subscription]) -> None:
        self._subs = defaultdict(list)
        self._by_step = {}
        for sub in subscriptions:
            self._subs[sub.topic].append(sub)
            self._by_step[sub.step] = sub

    def on_publish(self, listener: Callable[[set[str]], None]) -> None:
        """Call `listener(steps)` after a commit made deliveries due for those steps."""
        self._listeners.append(listener)

    def _notify(self, steps: set[str]) -> None:
        if steps:
            for listener in self._listeners:
                listener(steps)

    # -- publishing ---------------------------------------------------------------------

    def _insert_events(
        self, conn: sqlite3.Connection, events: Sequence[Event], now: float
    ) -> tuple[list[str], set[str]]:
        accepted: list[str] = []
        steps: set[str] = set()
        for event in events:
            if not event.created_at:
                event.created_at = now
            cur = conn.execute(
                "INSERT OR IGNORE INTO events (id, topic, body, created_at) VALUES (?, ?, ?, ?)",
                (event.id, event.topic, dumps(event.to_dict()), event.created_at),
            )
            if cur.rowcount == 0:
                continue
            accepted.append(event.id)
            for sub in self._subs.get(event.topic, ()):
                group = (event.message_group_id or "") if sub.fifo else None
                conn.execute(
                    "INSERT OR IGNORE INTO deliveries (step, event_id, topic, group_key, status,"
                    " available_at, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                    (sub.step, event.id, event.topic, group, now + sub.delay_seconds, now),
                )
                steps.add(sub.step)
        return accepted, steps

    async def publish(self, events: Sequence[Event]) -> list[str]:
        events = list(events)
        now = self.clock()
        accepted, steps = await self.db.write(lambda conn: self._insert_events(conn, events, now))
        self._notify(steps)
        return accepted

    async def get_event(self, event_id: str) -> Event | None:
        row = self.db.read().execute("SELECT body FROM events WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else Event.from_dict(json.loads(row[0]))

    async def commit(
        self,
        *,
        step: str,
        event_id: str,
        writes: Sequence[Write],
        emits: Sequence[Event],
        delivery: Delivery | None = None,
    ) -> bool:
        writes, emits = list(writes), list(emits)
        now = self.clock()

        def job(conn: sqlite3.Connection) -> tuple[bool, set[str]]:
            cur = conn.execute(
                "INSERT OR IGNORE INTO processed (step, event_id, at) VALUES (?, ?, ?)",
                (step, event_id, now),
            )
            if cur.rowcount == 0:
                conn.execute(
                    "DELETE FROM deliveries WHERE step = ? AND event_id = ?", (step, event_id)
                )
                return False, set()
            apply_writes(conn, writes, now)
            _, steps = self._insert_events(conn, emits, now)
            conn.execute("DELETE FROM deliveries WHERE step = ? AND event_id = ?", (step, event_id))
            conn.execute(
                "DELETE FROM push_attempts WHERE step = ? AND event_id = ?", (step, event_id)
            )
            return True, steps

        done, steps = await self.db.write(job)
        self._notify(steps)
        if delivery is not None and not done:
            self._notify({step})
        return done

    # -- consuming ----------------------------------------------------------------------

    async def lease(self, step: str, *, limit: int) -> list[Delivery]:
        sub = self._by_step.get(step)
        fifo = bool(sub and sub.fifo)
        visibility = sub.visibility_timeout if sub else 900.0
        now = self.clock()
        due = (
            self.db.read()
            .execute(
                "SELECT 1 FROM deliveries WHERE step = ?1 AND available_at <= ?2"
                " AND (status = 'pending' OR (status = 'leased' AND lease_expires < ?2)) LIMIT 1",
                (step, now),
            )
            .fetchone()
        )
        if due is None:  # an idle poll costs a read, never a write transaction
            return []

        def job(conn: sqlite3.Connection) -> list[Delivery]:
            if fifo:
                rows = conn.execute(
                    "SELECT d.seq FROM deliveries d WHERE d.step = ?1 AND d.available_at <= ?2"
                    " AND (d.status = 'pending' OR (d.status = 'leased' AND d.lease_expires < ?2))"
                    " AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.step = d.step"
                    "   AND e.group_key = d.group_key AND e.seq < d.seq"
                    "   AND e.status IN ('pending', 'leased'))"
                    " ORDER BY d.seq LIMIT ?3",
                    (step, now, limit),
                ).fetchall()
            else:
                # Two scans in deliveries_due order, merged: one query with the OR sorted every
                # due row of the step in a temp b-tree on each lease, O(backlog) per lease.
                due = conn.execute(
                    "SELECT available_at, seq FROM deliveries WHERE step = ?1"
                    " AND status = 'pending' AND available_at <= ?2"
                    " ORDER BY available_at, seq LIMIT ?3",
                    (step, now, limit),
                ).fetchall()
                due += conn.execute(
                    "SELECT available_at, seq FROM deliveries WHERE step = ?1"
                    " AND status = 'leased' AND available_at <= ?2 AND lease_expires < ?2"
                    " ORDER BY available_at, seq LIMIT ?3",
                    (step, now, limit),
                ).fetchall()
                rows = [(seq,) for _, seq in sorted(due)[:limit]]
            leased: list[Delivery] = []
            for (seq,) in rows:
                row = conn.execute(
                    "UPDATE deliveries SET status = 'leased', attempts = attempts + 1,"
                    " lease_owner = ?, lease_expires = ?, updated_at = ? WHERE seq = ?"
                    " RETURNING attempts, event_id, group_key",
                    (self.owner, now + visibility, now, seq),
                ).fetchone()
                attempts, event_id, group_key = row
                body = conn.execute("SELECT body FROM events WHERE id = ?", (event_id,)).fetchone()
                event = Event.from_dict(json.loads(body[0]))
                leased.append(
                    Delivery(
                        id=str(seq),
                        step=step,
                        event=event,
                        attempt=attempts,
                        lease_owner=self.owner,
                        lease_expires_at=now + visibility,
                        message_group_id=group_key,
                    )
                )
            return leased

        return await self.db.write(job)

    async def retry(self, delivery: Delivery, *, error: str, delay: float) -> None:
        now = self.clock()
        await self.db.write(
            lambda conn: conn.execute(
                "UPDATE deliveries SET status = 'pending', lease_owner = NULL,"
                " lease_expires = NULL,"
                " available_at = ?, error = ?, updated_at = ? WHERE seq = ? AND lease_owner = ?",
                (now + delay, error, now, int(delivery.id), delivery.lease_owner),
            )
        )
        self._notify({delivery.step})

    async def dead_letter(self, delivery: Delivery, *, error: str, traceback: str) -> None:
        now = self.clock()
        await self.db.write(
            lambda conn: conn.execute(
                "UPDATE deliveries SET status = 'dead', lease_owner = NULL, lease_expires = NULL,"
                " error = ?, traceback = ?, updated_at = ? WHERE seq = ? AND lease_owner = ?",
                (error, traceback, now, int(delivery.id), delivery.lease_owner),
            )
        )
        self._notify({delivery.step})

    async def park(
        self, step: str, event: Event, error: str, traceback: str, attempts: int
    ) -> None:
        """Record a dead letter for an event delivered from outside this queue (Pub/Sub push):
        the event is stored if new and its (step, event id) delivery becomes `dead`."""
        now = self.clock()
        body = dumps({**event.to_dict(), "created_at": event.created_at or now})
        group = event.message_group_id

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO events (id, topic, body, created_at) VALUES (?, ?, ?, ?)",
                (event.id, event.topic, body, event.created_at or now),
            )
            conn.execute(
                "INSERT INTO deliveries (step, event_id, topic, group_key, status, attempts,"
                " available_at, error, traceback, updated_at)"
                " VALUES (?, ?, ?, ?, 'dead', ?, ?, ?, ?, ?)"
                " ON CONFLICT (step, event_id) DO UPDATE SET status = 'dead',"
                " attempts = excluded.attempts, error = excluded.error,"
                " traceback = excluded.traceback, lease_owner = NULL, lease_expires = NULL,"
                " updated_at = excluded.updated_at",
                (step, event.id, event.topic, group, attempts, now, error, traceback, now),
            )

        await self.db.write(job)

    async def record_attempt(self, step: str, event_id: str) -> int:
        """Count one more delivery of (step, event id) from outside this queue (a Pub/Sub push,
        or a task bringing it back); returns the attempt number."""
        row = await self.db.write(
            lambda conn: conn.execute(
                "INSERT INTO push_attempts (step, event_id, count) VALUES (?, ?, 1)"
                " ON CONFLICT (step, event_id) DO UPDATE SET count = count + 1 RETURNING count",
                (step, event_id),
            ).fetchone()
        )
        return int(row[0])

    # -- dead letters -------------------------------------------------------------------

    async def list_dead_letters(
        self,
        *,
        step: str | None = None,
        topic: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        clauses, params = _dead_filter("d.", step=step, topic=topic)
        if cursor:
            if not cursor.isdigit():
                raise BadRequest("cursor is not one this server issued", details={"cursor": cursor})
            clauses.append("d.seq > ?")
            params.append(int(cursor))
        rows = (
            self.db.read()
            .execute(
                "SELECT d.seq, d.step, d.topic, d.attempts, d.error, d.traceback, d.updated_at,"
                " e.body FROM deliveries d JOIN events e ON e.id = d.event_id"
                f" WHERE {' AND '.join(clauses)}"
                " ORDER BY d.seq LIMIT ?",
                [*params, limit + 1],
            )
            .fetchall()
        )
        items = []
        for seq, st, topic_, attempts, error, tb, updated_at, body in rows[:limit]:
            event = json.loads(body)
            items.append(
                {
                    "id": str(seq),
                    "step": st,
                    "topic": topic_,
                    "event_id": event["id"],
                    "input": event["data"],
                    "trace_id": event.get("trace_id"),
                    "attempts": attempts,
                    "error": error,
                    "traceback": tb,
                    "failed_at": updated_at,
                }
            )
        next_cursor = str(rows[limit - 1][0]) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    async def get_dead_letter(self, dead_letter_id: str) -> dict[str, Any] | None:
        if not dead_letter_id.isdigit():
            return None
        page = await self.list_dead_letters(limit=1, cursor=str(int(dead_letter_id) - 1))
        items = [i for i in page.items if i["id"] == dead_letter_id]
        return items[0] if items else None

    async def replay(
        self, *, ids: Sequence[str] = (), step: str | None = None, topic: str | None = None
    ) -> int:
        now = self.clock()
        clauses, params = _dead_filter("", step=step, topic=topic)
        if ids:
            if not all(i.isdigit() for i in ids):
                raise BadRequest("dead letter ids are numbers", details={"ids": list(ids)})
            clauses.append(f"seq IN ({','.join('?' * len(ids))})")
            params += [int(i) for i in ids]

        def job(conn: sqlite3.Connection) -> tuple[int, set[str]]:
            rows = conn.execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, available_at = ?,"
                f" error = NULL, traceback = NULL, updated_at = ? WHERE {' AND '.join(clauses)}"
                " RETURNING step",
                [now, now, *params],
            ).fetchall()
            return len(rows), {r[0] for r in rows}

        count, steps = await self.db.write(job)
        self._notify(steps)
        return count

    # -- operations ---------------------------------------------------------------------

    async def stats(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {
            s: {"pending": 0, "in_flight": 0, "dead": 0} for s in self._by_step
        }
        rows = (
            self.db.read()
            .execute("SELECT step, status, count(*) FROM deliveries GROUP BY step, status")
            .fetchall()
        )
        names = {"pending": "pending", "leased": "in_flight", "dead": "dead"}
        for step, status, count in rows:
            out.setdefault(step, {"pending": 0, "in_flight": 0, "dead": 0})[names[status]] = count
        return out

    async def heartbeat(self) -> None:
        now = self.clock()
        await self.db.write(
            lambda conn: conn.execute(
                "UPDATE owners SET heartbeat = ? WHERE id = ?", (now, self.owner)
            )
        )

    async def recover(self) -> int:
        """Free leases of owners whose process is gone (same host) or silent (other hosts)."""
        now = self.clock()

        def job(conn: sqlite3.Connection) -> int:
            dead = []
            for owner, pid, host, beat in conn.execute(
                "SELECT id, pid, host, heartbeat FROM owners WHERE id != ?", (self.owner,)
            ).fetchall():
                gone = not pid_alive(pid) if host == self.host else False
                if gone or now - beat > HEARTBEAT_STALE_AFTER:
                    dead.append(owner)
            released = 0
            for owner in dead:
                released += conn.execute(
                    "UPDATE deliveries SET status = 'pending', lease_owner = NULL,"
                    " lease_expires = NULL, updated_at = ? WHERE status = 'leased'"
                    " AND lease_owner = ?",
                    (now, owner),
                ).rowcount
                conn.execute("DELETE FROM owners WHERE id = ?", (owner,))
            return released

        released = await self.db.write(job)
        if released:
            self._notify(set(self._by_step))
        return released

    async def close(self) -> None:
        """Give this process's unfinished leases back at once, so no one waits for them."""
        if self.db.closed:
            return
        owner = self.owner

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE deliveries SET status = 'pending', lease_owner = NULL,"
                " lease_expires = NULL WHERE status = 'leased' AND lease_owner = ?",
                (owner,),
            )
            conn.execute("DELETE FROM owners WHERE id = ?", (owner,))

        await self.db.write(job)


class InProcessProvisioner:
    """The Provisioner port for the embedded queue: its subscriptions are rows it creates on
    publish, so there is nothing to create and every subscription is active at once."""

    async def ensure(self, spec: SubscriptionSpec) -> None:
        return None
