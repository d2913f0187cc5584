"""The audit log's behaviour, written once and run on each document store: SQLite in
tests/services/test_audit_log.py, the Firestore emulator in
tests/emulator/test_audit_log_firestore.py.

Each case takes an `AuditBackend`: a store, and a second connection to the same data standing
for another process (its own SQLite connection and writer; its own Firestore client)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from cfp.domain.audit import AuditEntry, block_id, chain_paths, record_time, tenant_chain
from cfp.domain.documents import CreateDoc, DeleteDoc, Increment, SetDoc, Write
from cfp.errors import BadRequest, Conflict, Unavailable
from cfp.ports import DocumentStore
from cfp.services.audit import AuditLog, ChainDamaged

ACME = tenant_chain("acme")
T0 = 1_750_000_000.0


@dataclass
class AuditBackend:
    documents: DocumentStore
    peer: DocumentStore  # the same data through another connection, as another process has it
    # Whether the concurrency case also commits through `peer`. Not on the Firestore emulator:
    # its lock manager settles two clients' transactions on one document by a 2 s lock timeout
    # (firebase-tools#6758), correct but slow; there two logs on one client race instead.
    peer_races: bool = True


class Clock:
    """A settable clock: each reading is `t`, then `t` moves on by `step`."""

    def __init__(self, t: float = T0, step: float = 0.0) -> None:
        self.t, self.step = t, step

    def __call__(self) -> float:
        now = self.t
        self.t += self.step
        return now


def entry(
    action: str = "team.create",
    *,
    scope: str = "tenant/acme",
    actor: str = "u1",
    target: tuple[str, str] = ("team", "core"),
    **fields: Any,
) -> AuditEntry:
    return AuditEntry(
        actor={"id": actor, "kind": "user"},
        action=action,
        target={"type": target[0], "id": target[1]},
        scope=scope,
        correlation_id="corr-1",
        trace_id="0af7651916cd43dd8448eb211c80319c",
        client_address="203.0.113.7",
        user_agent="pytest",
        **fields,
    )


async def blocks(documents: DocumentStore, chain: str) -> list[dict[str, Any]]:
    page = await documents.list(chain_paths(chain).blocks, limit=1000)
    assert page.next_cursor is None
    return page.items


async def all_pages(log: AuditLog, chain: str, **filters: Any) -> list[dict[str, Any]]:
    """Every matching record, page by page (`limit` per page)."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await log.list(chain, cursor=cursor, **filters)
        items += page.items
        if page.next_cursor is None:
            return items
        assert page.items, "a page with a next cursor is never empty"
        cursor = page.next_cursor


# -- cases -----------------------------------------------------------------------------------


async def one_record_per_commit_applied_with_the_callers_writes(backend: AuditBackend) -> None:
    log = AuditLog(backend.documents, clock=Clock(step=1.0))
    team = "tenants/acme/teams/core"
    counter = "tenants/acme/counters/teams"
    results = await log.commit(
        [SetDoc(team, {"name": "Core"}), Increment(counter, 1)], [entry(details={"name": "Core"})]
    )
    assert results == [None, 1]
    assert await backend.documents.get(team) == {"name": "Core"}

    results = await log.commit([Increment(counter, 1)], [entry("team.update")])
    assert results == [2]

    head = await log.head(ACME)
    assert head is not None and head.seq == 1
    stored = await blocks(backend.documents, ACME)
    assert [(d["_id"], d["seq"], d["action"]) for d in stored] == [
        (block_id(0), 0, "team.create"),
        (block_id(1), 1, "team.update"),
    ]
    assert stored[0]["prev_hash"] == "00" * 32
    assert stored[1]["prev_hash"] == stored[0]["hash"] != stored[1]["hash"] == head.hash
    assert stored[0]["time"] == record_time(T0)
    assert stored[0]["details"] == {"name": "Core"}
    assert stored[0]["chain"] == ACME and stored[0]["scope"] == "tenant/acme"
    assert "details" not in stored[1]  # unset optional fields are not stored
    result = await log.verify(ACME)
    assert (result.ok, result.checked, result.head) == (True, 2, head)


async def a_failed_action_appends_nothing(backend: AuditBackend) -> None:
    log = AuditLog(backend.documents, clock=Clock())
    existing = "tenants/acme/teams/core"
    await log.commit([CreateDoc(existing, {"name": "Core"})], [entry()])
    head = await log.head(ACME)

    with pytest.raises(Conflict):
        await log.commit(
            [SetDoc("tenants/acme/teams/other", {"name": "Other"}), CreateDoc(existing, {})],
            [entry()],
        )
    assert await log.head(ACME) == head
    assert len(await blocks(backend.documents, ACME)) == 1
    assert await backend.documents.get("tenants/acme/teams/other") is None
    assert await backend.documents.get(existing) == {"name": "Core"}

    # Nothing outside the log writes a chain, through the log or around it.
    for write in [
        SetDoc(chain_paths(ACME).block(5), {}),
        DeleteDoc(chain_paths("system").head),
    ]:
        with pytest.raises(BadRequest):
            await log.commit([write], [entry()])
    assert (await log.verify(ACME)).ok


async def concurrent_commits_leave_one_order(backend: AuditBackend) -> None:
    """50 commits at once from three logs (three processes): two on one store, the third on
    another connection where the backend allows. Seqs 0..49, no gap, no fork, a valid chain."""
    third = backend.peer if backend.peer_races else backend.documents
    logs = [AuditLog(backend.documents), AuditLog(backend.documents), AuditLog(third)]
    count = 50

    async def commit(i: int) -> list[Any]:
        item = f"tenants/acme/items/{i:02d}"
        return await logs[i % len(logs)].commit(
            [CreateDoc(item, {"i": i})], [entry("item.create", target=("item", str(i)))]
        )

    assert await asyncio.gather(*(commit(i) for i in range(count))) == [[None]] * count
    stored = await blocks(backend.documents, ACME)
    assert [d["seq"] for d in stored] == list(range(count))
    assert sorted(int(d["target_id"]) for d in stored) == list(range(count))
    for before, after in itertools.pairwise(stored):
        assert after["prev_hash"] == before["hash"]
        assert after["time"] >= before["time"]
    head = await logs[2].head(ACME)
    assert head is not None and (head.seq, head.hash) == (count - 1, stored[-1]["hash"])
    result = await logs[0].verify(ACME)
    assert (result.ok, result.checked) == (True, count)
    page = await backend.peer.list("tenants/acme/items", limit=100)
    assert len(page.items) == count


async def each_tenant_and_the_system_have_their_own_chain(backend: AuditBackend) -> None:
    log = AuditLog(backend.documents, clock=Clock(step=1.0))
    odd_scope = "tenant/globex corp é"  # a tenant id is stored under its escaped form
    odd_chain = tenant_chain("globex corp é")
    await log.commit([], [entry(scope="tenant/acme")])
    await log.commit([], [entry(scope=odd_scope), entry("team.delete", scope=odd_scope)])
    await log.commit([], [entry("tenant.create", scope="system", target=("tenant", "acme"))])
    # One commit may append to several chains; each record goes to its scope's chain.
    await log.commit(
        [SetDoc("tenants/acme/settings/x", {"v": 1})],
        [entry("tenant.suspend", scope="system"), entry("project.create", scope="tenant/acme/x")],
    )

    expected = {
        ACME: ["team.create", "project.create"],
        odd_chain: ["team.create", "team.delete"],
        "system": ["tenant.create", "tenant.suspend"],
    }
    for chain, actions in expected.items():
        stored = await blocks(backend.documents, chain)
        assert [(d["seq"], d["action"], d["chain"]) for d in stored] == [
            (seq, action, chain) for seq, action in enumerate(actions)
        ]
        assert (await log.verify(chain)).ok
        newest_first = [r["action"] for r in (await log.list(chain)).items]
        assert newest_first == actions[::-1]
    assert chain_paths(odd_chain).root == "tenants/globex%20corp%20%C3%A9"
    assert await backend.documents.get(chain_paths(odd_chain).head) is not None
    assert await log.head(tenant_chain("nobody")) is None
    assert (await log.list(tenant_chain("nobody"))).items == []


async def tampering_is_reported_at_its_seq(backend: AuditBackend) -> None:
    log = AuditLog(backend.documents, clock=Clock(step=1.0))
    for i in range(6):
        await log.append([entry(details={"i": i})])
    paths = chain_paths(ACME)
    stored = await blocks(backend.documents, ACME)

    async def verdict() -> tuple[bool, int | None, str | None]:
        result = await log.verify(ACME)
        return result.ok, result.first_bad_seq, result.reason

    record = {k: v for k, v in stored[3].items() if k != "_id"}
    await backend.peer.apply([SetDoc(paths.block(3), {**record, "outcome": "failure"})])
    assert await verdict() == (False, 3, "the record's hash does not match its contents")

    await backend.peer.apply([SetDoc(paths.block(3), record)])
    assert await verdict() == (True, None, None)

    await backend.peer.apply([DeleteDoc(paths.block(2))])
    assert await verdict() == (False, 2, "record 2 is missing")
    await backend.peer.apply(
        [SetDoc(paths.block(2), {k: v for k, v in stored[2].items() if k != "_id"})]
    )
    assert await verdict() == (True, None, None)

    # Dropping the last record is seen through the head.
    await backend.peer.apply([DeleteDoc(paths.block(5))])
    assert await verdict() == (False, 5, "record 5 is missing")

    # A record slipped in after the head (with a valid hash, even) is beyond it.
    last = {k: v for k, v in stored[5].items() if k != "_id"}
    await backend.peer.apply([SetDoc(paths.block(5), last)])
    head = await log.head(ACME)
    assert head is not None
    await backend.peer.apply(
        [SetDoc(paths.head, {"seq": 4, "hash": stored[4]["hash"], "time": stored[4]["time"]})]
    )
    assert await verdict() == (False, 5, "record 5 lies beyond the head")
    await backend.peer.apply([SetDoc(paths.head, head.to_dict())])
    assert await verdict() == (True, None, None)

    # A malformed head is reported by verify and refuses appends.
    await backend.peer.apply([SetDoc(paths.head, {"seq": "5"})])
    assert await verdict() == (False, 6, "the chain's head is malformed")
    with pytest.raises(ChainDamaged):
        await log.append([entry()])

    # Without its head, a chain refuses appends rather than fork at seq 0.
    await backend.peer.apply([DeleteDoc(paths.head)])
    with pytest.raises(ChainDamaged):
        await log.append([entry()])
    assert (await log.verify(ACME)).reason == "the chain has records but no head"


async def list_filters_and_pages(backend: AuditBackend) -> None:
    log = AuditLog(backend.documents, clock=Clock(step=10.0))
    plan = [
        ("alice", "team.create", ("team", "core")),
        ("bob", "team.update", ("team", "core")),
        ("alice", "project.create", ("project", "p1")),
        ("carol", "team.create", ("team", "ops")),
        ("alice", "team.update", ("team", "ops")),
        ("bob", "project.create", ("project", "p2")),
        ("alice", "project.update", ("project", "p1")),
        ("bob", "team.update", ("team", "core")),
        ("alice", "team.create", ("team", "web")),
        ("carol", "project.create", ("project", "p3")),
        ("alice", "team.update", ("team", "web")),
        ("bob", "project.update", ("project", "p2")),
    ]
    for actor, action, target in plan:  # record i is at T0 + 10 i
        await log.append([entry(action, actor=actor, target=target)])

    def seqs(items: Sequence[dict[str, Any]]) -> list[int]:
        return [item["seq"] for item in items]

    newest = await log.list(ACME, limit=100)
    assert seqs(newest.items) == list(range(11, -1, -1)) and newest.next_cursor is None
    assert set(newest.items[0]) >= {"actor", "action", "target", "time", "hash", "prev_hash"}
    assert "actor_id" not in newest.items[0] and "_id" not in newest.items[0]
    oldest = await log.list(ACME, oldest_first=True, limit=3)
    assert seqs(oldest.items) == [0, 1, 2]

    def matching(test: Callable[[int], bool]) -> list[int]:
        return [i for i in range(len(plan) - 1, -1, -1) if test(i)]

    cases: list[tuple[dict[str, Any], list[int]]] = [
        ({"actor": "alice"}, matching(lambda i: plan[i][0] == "alice")),
        ({"action": "team.update"}, matching(lambda i: plan[i][1] == "team.update")),
        ({"target": "project"}, matching(lambda i: plan[i][2][0] == "project")),
        ({"target": "team/core"}, matching(lambda i: plan[i][2] == ("team", "core"))),
        ({"actor": "bob", "target": "team/core"}, [7, 1]),
        ({"since": T0 + 30, "until": T0 + 70}, [6, 5, 4, 3]),
        ({"since": record_time(T0 + 95)}, [11, 10]),
        ({"until": "2025-06-15T15:07:00+00:00"}, [1, 0]),  # T0 + 20 s, in RFC 3339
        ({"actor": "alice", "since": T0 + 40, "until": T0 + 100}, [8, 6, 4]),
        ({"actor": "nobody"}, []),
    ]
    for filters, expected in cases:
        for limit in (2, 5, 100):  # the same records whatever the page size
            got = seqs(await all_pages(log, ACME, limit=limit, **filters))
            assert got == expected, (filters, limit)
    oldest_alice = await all_pages(log, ACME, actor="alice", oldest_first=True, limit=2)
    assert seqs(oldest_alice) == matching(lambda i: plan[i][0] == "alice")[::-1]

    with pytest.raises(BadRequest):
        await log.list(ACME, limit=0)
    with pytest.raises(BadRequest):
        await log.list(ACME, since="last tuesday")
    with pytest.raises(BadRequest):
        await log.list("acme")


async def time_never_goes_backwards_along_a_chain(backend: AuditBackend) -> None:
    clock = Clock()
    log = AuditLog(backend.documents, clock=clock)
    await log.append([entry()])
    clock.t -= 3600  # another process's clock, an hour behind
    await log.append([entry()])
    first, second = await blocks(backend.documents, ACME)
    assert second["time"] == first["time"] == record_time(T0)
    assert (await log.verify(ACME)).ok


class _Racing:
    """A store on which another process appends to the chain just before each of our applies."""

    def __init__(self, documents: DocumentStore, other: AuditLog) -> None:
        self.inner, self.other = documents, other

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def apply(self, writes: Sequence[Write]) -> list[Any]:
        await self.other.append([entry("team.update", actor="other")])
        return await self.inner.apply(writes)


async def a_head_that_keeps_moving_is_unavailable_not_forked(backend: AuditBackend) -> None:
    other = AuditLog(backend.peer)
    racing: Any = _Racing(backend.documents, other)
    log = AuditLog(racing, attempts=3)
    with pytest.raises(Unavailable):
        await log.commit([SetDoc("tenants/acme/teams/x", {})], [entry()])
    assert await backend.documents.get("tenants/acme/teams/x") is None
    stored = await blocks(backend.documents, ACME)
    assert [d["actor_id"] for d in stored] == ["other"] * 3
    assert (await log.verify(ACME)).ok


async def planned_writes_join_the_callers_transaction(backend: AuditBackend) -> None:
    """`plan` hands the append's writes to a caller that applies them itself (with its own
    retry): applied with its writes they append; gone stale, they fail it whole."""
    log = AuditLog(backend.documents, clock=Clock(step=1.0))
    planned = await log.plan([entry("auth.signin", scope="system")])
    await backend.documents.apply([SetDoc("principals/u1", {"n": 1}), *planned])
    head = await log.head("system")
    assert head is not None and head.seq == 0

    stale = await log.plan([entry("auth.signout", scope="system")])
    await AuditLog(backend.peer).append([entry("auth.signin", scope="system")])
    with pytest.raises(Conflict):
        await backend.documents.apply([SetDoc("principals/u1", {"n": 2}), *stale])
    assert await backend.documents.get("principals/u1") == {"n": 1}
    fresh = await log.plan([entry("auth.signout", scope="system")])
    await backend.documents.apply([SetDoc("principals/u1", {"n": 2}), *fresh])
    stored = await blocks(backend.documents, "system")
    assert [d["action"] for d in stored] == ["auth.signin", "auth.signin", "auth.signout"]
    assert (await log.verify("system")).ok


CASES: list[Callable[[AuditBackend], Awaitable[None]]] = [
    one_record_per_commit_applied_with_the_callers_writes,
    a_failed_action_appends_nothing,
    concurrent_commits_leave_one_order,
    each_tenant_and_the_system_have_their_own_chain,
    tampering_is_reported_at_its_seq,
    list_filters_and_pages,
    time_never_goes_backwards_along_a_chain,
    a_head_that_keeps_moving_is_unavailable_not_forked,
    planned_writes_join_the_callers_transaction,
]


def case_id(case: Callable[..., Any]) -> str:
    return case.__name__
