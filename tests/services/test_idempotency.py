"""Idempotency keys over the embedded store: one run per key and body for 24 hours, 409 for
another body or a run still in progress, nothing kept from a failure, expiry and takeover of an
abandoned reservation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cfp.adapters.local.documents import SqliteDocumentStore
from cfp.adapters.local.sqlite import Database
from cfp.domain.documents import SetDoc
from cfp.errors import BadRequest, Conflict
from cfp.services.idempotency import (
    PENDING_LEASE,
    RETENTION,
    Idempotency,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    Reply,
    RequestKey,
    body_hash,
)

KEY = RequestKey("ada", "POST", "/v1/teams", "acme", "k-1")


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


class Counter:
    """An action that answers 201 with how many times it ran."""

    def __init__(self, status: int = 201) -> None:
        self.runs = 0
        self.status = status

    async def __call__(self) -> Reply:
        self.runs += 1
        return Reply(self.status, {"run": self.runs}, {"etag": '"1"'})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteDocumentStore]:
    db = Database(tmp_path / "cfp.db")
    yield SqliteDocumentStore(db)
    db.close()


async def test_the_same_key_and_body_replay_the_first_answer(store: SqliteDocumentStore) -> None:
    keys, action = Idempotency(store), Counter()

    first = await keys.run(KEY, b'{"name": "a", "x": 1}', action)
    again = await keys.run(KEY, b'{"x":1,"name":"a"}', action)  # the same JSON, other spacing

    assert first == (Reply(201, {"run": 1}, {"etag": '"1"'}), False)
    assert again == (Reply(201, {"run": 1}, {"etag": '"1"'}), True)
    assert action.runs == 1


async def test_another_body_is_409_and_other_scopes_are_independent(
    store: SqliteDocumentStore,
) -> None:
    keys, action = Idempotency(store), Counter()
    await keys.run(KEY, b'{"name": "a"}', action)

    with pytest.raises(IdempotencyKeyReused) as caught:
        await keys.run(KEY, b'{"name": "b"}', action)
    assert caught.value.status == 409 and not caught.value.retryable

    for other in (
        RequestKey("grace", "POST", "/v1/teams", "acme", "k-1"),
        RequestKey("ada", "POST", "/v1/projects", "acme", "k-1"),
        RequestKey("ada", "POST", "/v1/teams", "globex", "k-1"),
    ):
        assert (await keys.run(other, b'{"name": "a"}', action))[1] is False
    assert action.runs == 4


async def test_a_failure_is_not_kept(store: SqliteDocumentStore) -> None:
    keys = Idempotency(store)

    async def boom() -> Reply:
        raise Conflict("exists")

    with pytest.raises(Conflict):
        await keys.run(KEY, b"{}", boom)
    refused = Counter(status=422)
    assert (await keys.run(KEY, b"{}", refused))[0].status == 422
    succeeds = Counter()
    assert await keys.run(KEY, b"{}", succeeds) == (Reply(201, {"run": 1}, {"etag": '"1"'}), False)


async def test_two_requests_at_once_run_it_once(store: SqliteDocumentStore) -> None:
    keys = Idempotency(store)
    started, release = asyncio.Event(), asyncio.Event()
    runs = 0

    async def slow() -> Reply:
        nonlocal runs
        runs += 1
        started.set()
        await release.wait()
        return Reply(201, {"ok": True})

    first = asyncio.create_task(keys.run(KEY, b"{}", slow))
    await started.wait()
    with pytest.raises(IdempotencyKeyInUse) as caught:
        await keys.run(KEY, b"{}", slow)
    assert caught.value.retryable
    release.set()
    assert (await first)[1] is False
    assert (await keys.run(KEY, b"{}", slow))[1] is True
    assert runs == 1


async def test_keys_expire_after_a_day_and_abandoned_runs_are_taken_over(
    store: SqliteDocumentStore,
) -> None:
    clock = Clock()
    keys, action = Idempotency(store, clock=clock), Counter()
    await keys.run(KEY, b"{}", action)

    clock.now += RETENTION - 1
    assert (await keys.run(KEY, b"{}", action))[1] is True
    clock.now += 2
    assert await keys.run(KEY, b'{"other": "body"}', action) == (
        Reply(201, {"run": 2}, {"etag": '"1"'}),
        False,
    )

    # a process died mid-request: its reservation blocks the key only for the lease
    async def dies() -> Reply:
        raise asyncio.CancelledError

    stuck = RequestKey("ada", "POST", "/v1/teams", "acme", "k-2")
    reservation = {
        "state": "pending",
        "token": "gone",
        "body_hash": body_hash(b"{}"),
        "status": None,
        "body": None,
        "headers": {},
        "created_at": clock.now,
        "expires_at": clock.now + RETENTION,
    }
    await store.apply([SetDoc(stuck.document(), reservation)])
    with pytest.raises(IdempotencyKeyInUse):
        await keys.run(stuck, b"{}", action)
    clock.now += PENDING_LEASE
    assert (await keys.run(stuck, b"{}", action))[1] is False

    clock.now += RETENTION
    assert await keys.purge_expired() == 2
    with pytest.raises(asyncio.CancelledError):
        await keys.run(stuck, b"{}", dies)
    assert (await keys.run(stuck, b"{}", action))[1] is False  # a cancelled run kept nothing


async def test_keys_are_printable_ascii_up_to_255(store: SqliteDocumentStore) -> None:
    keys = Idempotency(store)
    for good in ("k", "a key with spaces", "~" * 255):
        await keys.run(RequestKey("ada", "POST", "/v1/teams", None, good), b"{}", Counter())
    for bad in ("", "x" * 256, " padded", "padded ", "é", "line\nbreak"):
        with pytest.raises(BadRequest):
            await keys.run(RequestKey("ada", "POST", "/v1/teams", None, bad), b"{}", Counter())
