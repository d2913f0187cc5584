"""The Firestore DocumentStore beyond the shared contract: values Firestore cannot hold as they
are, filters Firestore would order differently, cursors across clients, named databases, and
batches checked write for write against the SQLite adapter."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cfp.adapters.gcp import firestore as firestore_module
from cfp.adapters.gcp.emulators import Emulators
from cfp.adapters.gcp.firestore import FirestoreDocumentStore
from cfp.adapters.local.documents import SqliteDocumentStore
from cfp.adapters.local.sqlite import Database
from cfp.domain.documents import (
    ABSENT,
    CompareAndSet,
    CreateDoc,
    DeleteCollection,
    DeleteDoc,
    Filter,
    Increment,
    MergeDoc,
    SetDoc,
    Write,
)
from cfp.errors import BadRequest, Conflict, Unavailable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.emulator

INT64_MAX = 2**63 - 1


def strict(value: Any) -> str:
    """A form in which True, 1 and 1.0 differ, so a round trip must keep each value's type."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def new_database() -> str:
    return f"extra-{uuid.uuid4().hex[:16]}"


@pytest.fixture
async def store(emulators: Emulators) -> AsyncIterator[FirestoreDocumentStore]:
    database = new_database()
    documents = FirestoreDocumentStore.connect(
        emulators.project, database, emulator_host=emulators.firestore_host
    )
    yield documents
    await documents.close()
    emulators.reset_firestore([database])


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[SqliteDocumentStore]:
    documents = SqliteDocumentStore(Database(tmp_path / "cfp.db"))
    yield documents
    await documents.close()


async def raw_fields(store: FirestoreDocumentStore, path: str) -> dict[str, Any]:
    """The document as Firestore holds it, read past the adapter."""
    snapshot = await store._client.document(path).get()
    return snapshot.to_dict()


def deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"d": value}
    return value


# -- values ----------------------------------------------------------------------------------

AWKWARD = {
    "nested arrays": [[1, [2, [3]]], [], [[]]],
    "arrays in arrays inside maps": {"m": [{"l": [[1], [2]]}]},
    "int64 bounds": [-(2**63), INT64_MAX],
    "past int64": [2**63, -(2**63) - 1, 10**40],
    "past int64, alone": 2**64,
    "floats stay floats": [1.0, -0.5, 1e308, 5e-324],
    "20 levels deep": deep(20),
    "21 levels deep": deep(21),
    "30 levels of arrays and maps": [{"a": [{"b": deep(26)}]}],
    "empty and reserved keys": {"": 1, "__name__": 2, "__x__": {"__y__": 3}, "_": 4},
    "keys with dots and quotes": {"a.b": 1, "`c`": 2, "d e": 3, "ü.✓": {"x.y": [1]}},
    "a key over 1500 bytes": {"k" * 1501: 1},
    "NUL and unicode": ["\x00", "é✓😀", "a\x00b"],
    "empty things": [[], {}, "", [{}], {"e": []}],
}


@pytest.mark.parametrize("value", list(AWKWARD.values()), ids=list(AWKWARD))
async def test_awkward_values_round_trip_exactly(store: FirestoreDocumentStore, value: Any) -> None:
    data = {"v": value, "n": 1, "s": "plain"}
    await store.apply([SetDoc("things/a", data)])
    assert strict(await store.get("things/a")) == strict(data)
    (item,) = (await store.list("things")).items
    assert strict(item) == strict({**data, "_id": "a"})


async def test_awkward_top_level_field_names_round_trip(store: FirestoreDocumentStore) -> None:
    data = {
        "": 1,
        "__name__": "not the key",
        "__reserved__": [1],
        "~json": "mine, not the adapter's",
        "~id": "not the id",
        "_id": "shadowed in lists, as in SQLite",
        "k" * 1501: True,
        "a.b": {"c.d": 1},
        "1st": 2,
    }
    await store.apply([SetDoc("things/a", data)])
    assert strict(await store.get("things/a")) == strict(data)
    (item,) = (await store.list("things")).items
    assert strict(item) == strict({**data, "_id": "a"})


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    value=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.text(max_size=6) | st.sampled_from(["", "__x__", "~json", "a.b"]),
                inner,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
async def test_any_json_value_round_trips(store: FirestoreDocumentStore, value: Any) -> None:
    path = f"things/{uuid.uuid4().hex}"  # one fixture serves every example
    data = {"v": value, "w": [value, [value]]}
    await store.apply([SetDoc(path, data)])
    assert strict(await store.get(path)) == strict(data)


async def test_representable_top_level_fields_stay_native(store: FirestoreDocumentStore) -> None:
    native = {"rank": 3, "name": "x", "tags": ["a"], "meta": {"k": 1}, "deep": deep(20)}
    coded = {"grid": [[1]], "big": 2**70, "deeper": deep(21), "": 1}
    await store.apply([SetDoc("things/a", {**native, **coded})])
    raw = await raw_fields(store, "things/a")
    assert raw == {**native, "~id": "a", "~json": raw["~json"]}
    assert json.loads(raw["~json"]) == coded
    found = await store.list("things", where=[Filter("rank", ">=", 3), Filter("name", "==", "x")])
    assert [item["_id"] for item in found.items] == ["a"]


async def test_fields_kept_as_json_are_invisible_to_filters_and_ordering(
    store: FirestoreDocumentStore,
) -> None:
    await store.apply(
        [
            SetDoc("things/a", {"rank": 1}),
            SetDoc("things/b", {"rank": 2**64}),
            SetDoc("things/c", {"rank": [[1]]}),
        ]
    )
    assert [item["_id"] for item in (await store.list("things", order_by="rank")).items] == ["a"]
    everything = await store.list("things")
    assert [item["rank"] for item in everything.items] == [1, 2**64, [[1]]]
    with pytest.raises(BadRequest):
        await store.list("things", where=[Filter("rank", "==", [[1]])])


async def test_increment_past_int64_and_back(store: FirestoreDocumentStore) -> None:
    await store.apply([SetDoc("counters/a", {"value": INT64_MAX, "other": 1})])
    assert await store.apply([Increment("counters/a", 1)]) == [2**63]
    assert await store.get("counters/a") == {"value": 2**63, "other": 1}
    assert await store.apply([Increment("counters/a", -1)]) == [INT64_MAX]
    assert (await raw_fields(store, "counters/a"))["value"] == INT64_MAX


async def test_merge_and_compare_and_set_with_awkward_values(
    store: FirestoreDocumentStore,
) -> None:
    assert await store.apply([MergeDoc("things/a", {"grid": [[1]], "": 2**70})]) == [
        {"grid": [[1]], "": 2**70}
    ]
    await store.apply([CompareAndSet("things/a", {"grid": [[1]], "": 2**70}, {"value": [[2]]})])
    assert await store.get("things/a") == {"value": [[2]]}
    with pytest.raises(Conflict):
        await store.apply([CompareAndSet("things/a", [[3]], {"value": 0})])
    await store.apply([CompareAndSet("things/a", [[2]], {"value": 0})])


async def test_a_document_over_firestores_size_limit_is_a_bad_request(
    store: FirestoreDocumentStore,
) -> None:
    with pytest.raises(BadRequest):
        await store.apply([SetDoc("things/keep", {"v": 1}), SetDoc("things/a", {"s": "x" * 2**20})])
    assert await store.get("things/keep") is None


# -- listing ---------------------------------------------------------------------------------


async def scores(store: FirestoreDocumentStore, count: int = 30) -> list[dict[str, Any]]:
    docs = [
        {"_id": f"p{n:02d}", "score": (n * 7) % 11, "team": "ab"[n % 2], "age": 20 + n % 5}
        for n in range(count)
    ]
    await store.apply(
        [SetDoc(f"players/{d['_id']}", {k: v for k, v in d.items() if k != "_id"}) for d in docs]
    )
    return docs


async def walk(store: FirestoreDocumentStore, page: int, **query: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        result = await store.list("players", limit=page, cursor=cursor, **query)
        assert len(result.items) <= page
        items += result.items
        cursor = result.next_cursor
        if cursor is None:
            return items


@pytest.mark.parametrize("page", [1, 2, 5, 100])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("order_by", [None, "age"])
async def test_range_filters_on_other_fields_keep_the_order_and_the_pages(
    store: FirestoreDocumentStore,
    monkeypatch: pytest.MonkeyPatch,
    order_by: str | None,
    descending: bool,
    page: int,
) -> None:
    # A small scan batch so that one page takes several reads.
    monkeypatch.setattr(firestore_module, "SCAN_BATCH", 3)
    docs = await scores(store)
    where = [Filter("score", ">", 3), Filter("score", "!=", 8), Filter("team", "==", "a")]
    expected = [d for d in docs if d["score"] > 3 and d["score"] != 8 and d["team"] == "a"]
    expected.sort(key=lambda d: d["_id"], reverse=descending)
    if order_by:
        expected.sort(key=lambda d: d[order_by], reverse=descending)
    found = await walk(store, page, where=where, order_by=order_by, descending=descending)
    assert [d["_id"] for d in found] == [d["_id"] for d in expected]


async def test_not_equal_and_range_on_the_ordered_field_run_in_firestore(
    store: FirestoreDocumentStore,
) -> None:
    docs = await scores(store)
    where = [Filter("score", "!=", 5), Filter("score", "<", 9)]
    found = await walk(store, 4, where=where, order_by="score", descending=True)
    expected = sorted(
        (d for d in docs if d["score"] not in (5,) and d["score"] < 9),
        key=lambda d: (d["score"], d["_id"]),
        reverse=True,
    )
    assert [d["_id"] for d in found] == [d["_id"] for d in expected]


async def test_filters_compare_values_of_the_same_type_only(store: FirestoreDocumentStore) -> None:
    values = {"n": None, "f": False, "t": True, "one": 1, "onef": 1.0, "s": "1", "l": [1]}
    await store.apply([SetDoc(f"things/{k}", {"v": v}) for k, v in values.items()])
    await store.apply([SetDoc("things/missing", {})])

    async def ids(*where: Filter) -> list[str]:
        return [item["_id"] for item in (await store.list("things", where=where)).items]

    assert await ids(Filter("v", "==", 1)) == ["one", "onef"]
    assert await ids(Filter("v", "==", True)) == ["t"]
    assert await ids(Filter("v", ">=", 1)) == ["one", "onef"]
    assert await ids(Filter("v", ">", "")) == ["s"]
    assert await ids(Filter("v", "!=", 1)) == ["f", "l", "s", "t"]
    assert await ids(Filter("v", "==", None)) == ["n"]
    with pytest.raises(BadRequest):
        await ids(Filter("v", "<", None))


async def test_a_cursor_works_on_another_client(
    store: FirestoreDocumentStore, emulators: Emulators
) -> None:
    await scores(store, 6)
    first = await store.list("players", order_by="score", limit=3)
    other = FirestoreDocumentStore.connect(
        emulators.project, store.database, emulator_host=emulators.firestore_host
    )
    try:
        rest = await other.list("players", order_by="score", limit=10, cursor=first.next_cursor)
    finally:
        await other.close()
    whole = await store.list("players", order_by="score")
    assert [i["_id"] for i in first.items + rest.items] == [i["_id"] for i in whole.items]


async def test_field_names_are_checked(store: FirestoreDocumentStore) -> None:
    for bad in ["a.b", "a b", "__name__", "~id"]:
        with pytest.raises(BadRequest):
            await store.list("things", order_by=bad)
        with pytest.raises(BadRequest):
            await store.list("things", where=[Filter(bad, "==", 1)])
    await store.apply([SetDoc("things/a", {"1st": 1, "é": 2})])
    assert len((await store.list("things", order_by="1st")).items) == 1
    assert len((await store.list("things", where=[Filter("é", "<", 3)])).items) == 1


# -- clients and databases -------------------------------------------------------------------


async def test_named_databases_hold_separate_documents(emulators: Emulators) -> None:
    names = [new_database(), new_database()]
    stores = [
        FirestoreDocumentStore.connect(
            emulators.project, name, emulator_host=emulators.firestore_host
        )
        for name in names
    ]
    try:
        await stores[0].apply([SetDoc("things/a", {"db": 0})])
        await stores[1].apply([SetDoc("things/a", {"db": 1})])
        assert [await s.get("things/a") for s in stores] == [{"db": 0}, {"db": 1}]
    finally:
        for s in stores:
            await s.close()
        emulators.reset_firestore(names)


async def test_the_client_finds_the_emulator_through_the_environment(
    emulators: Emulators, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert emulators.firestore_host
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulators.firestore_host)
    database = new_database()
    store = FirestoreDocumentStore.connect(emulators.project, database)
    try:
        await store.apply([SetDoc("things/a", {"x": 1})])
        assert await store.get("things/a") == {"x": 1}
    finally:
        await store.close()
        emulators.reset_firestore([database])


@contextlib.asynccontextmanager
async def locked(other: FirestoreDocumentStore, path: str) -> AsyncIterator[None]:
    """Another process's transaction reads `path` and keeps its lock until the block ends."""
    from google.cloud.firestore_v1.async_transaction import async_transactional

    holding, release = asyncio.Event(), asyncio.Event()

    async def hold(transaction: Any) -> None:
        ref = other._client.document(path)
        async for _ in other._client.get_all([ref], transaction=transaction):
            holding.set()
        await release.wait()

    holder = asyncio.create_task(async_transactional(hold)(other._client.transaction()))
    try:
        await holding.wait()
        yield
    finally:
        release.set()
        await holder


@pytest.fixture
async def other(
    store: FirestoreDocumentStore, emulators: Emulators
) -> AsyncIterator[FirestoreDocumentStore]:
    """A second client on the same database: another process, to Firestore."""
    documents = FirestoreDocumentStore.connect(
        emulators.project, store.database, emulator_host=emulators.firestore_host
    )
    yield documents
    await documents.close()


async def test_contention_outlasting_the_retries_is_unavailable_and_applies_nothing(
    store: FirestoreDocumentStore, other: FirestoreDocumentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.apply([SetDoc("counters/a", {"value": 1})])
    monkeypatch.setattr(firestore_module, "ATTEMPTS", 1)
    async with locked(other, "counters/a"):
        # The emulator breaks the wait for the lock by aborting the commit (after ~2 s).
        with pytest.raises(Unavailable):
            await store.apply([SetDoc("things/b", {}), Increment("counters/a", 1)])
    assert await store.get("counters/a") == {"value": 1}
    assert await store.get("things/b") is None


async def test_a_transaction_aborted_by_contention_is_retried_and_lands_once(
    store: FirestoreDocumentStore, other: FirestoreDocumentStore
) -> None:
    await store.apply([SetDoc("counters/a", {"value": 1})])
    async with locked(other, "counters/a"):
        applying = asyncio.create_task(store.apply([Increment("counters/a", 1)]))
        await asyncio.sleep(2.5)  # past the emulator's lock timeout: the first commit aborted
    assert await applying == [2]
    assert await store.get("counters/a") == {"value": 2}


async def test_an_empty_batch_does_nothing(store: FirestoreDocumentStore) -> None:
    assert await store.apply([]) == []


# -- the same batches as SQLite --------------------------------------------------------------

SMALL_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, 2.0, 2**64, "x", "", [[1]], {"": 1}, {"k": [1]}]),
)
DOCS = ["c/a", "c/b", "c/b/s/x", "cx/a"]
FIELDS = ["value", "other"]


def writes() -> st.SearchStrategy[Write]:
    data = st.dictionaries(st.sampled_from([*FIELDS, "~json", ""]), SMALL_VALUES, max_size=3)
    doc = st.sampled_from(DOCS)
    field = st.sampled_from(FIELDS)
    return st.one_of(
        st.builds(SetDoc, doc, data),
        st.builds(CreateDoc, doc, data),
        st.builds(DeleteDoc, doc),
        st.builds(DeleteCollection, st.sampled_from(["c", "c/b/s"])),
        st.builds(MergeDoc, doc, data, field),
        st.builds(Increment, doc, st.integers(-5, 5) | st.just(0.5), field),
        st.builds(CompareAndSet, doc, st.just(ABSENT) | SMALL_VALUES, data, field),
    )


def under(prefix: str, write: Write) -> Write:
    return dataclasses.replace(write, path=prefix + write.path)


async def outcome(store: Any, batch: list[Write]) -> Any:
    try:
        return strict(await store.apply(batch))
    except Conflict:
        return "Conflict"


async def contents(store: Any, prefix: str) -> str:
    docs = {path: await store.get(prefix + path) for path in DOCS}
    listed = {c: (await store.list(prefix + c)).items for c in ["c", "c/b/s", "cx"]}
    return strict([docs, listed])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=st.lists(st.lists(writes(), min_size=1, max_size=5), min_size=1, max_size=4))
async def test_batches_apply_exactly_as_in_sqlite(
    store: FirestoreDocumentStore, local: SqliteDocumentStore, batches: list[list[Write]]
) -> None:
    # One fixture pair serves every example, so each example works under its own prefix.
    prefix = f"runs/{uuid.uuid4().hex[:12]}/"
    for batch in batches:
        moved = [under(prefix, w) for w in batch]
        assert await outcome(store, moved) == await outcome(local, moved)
        assert await contents(store, prefix) == await contents(local, prefix)
