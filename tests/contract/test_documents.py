"""DocumentStore contract: what every adapter (SQLite, Firestore) must do the same way."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
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
    doc_id,
    raw_id,
)
from cfp.errors import BadRequest, Conflict
from cfp.ports import DocumentStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


async def all_items(store: DocumentStore, collection: str, *, page: int, **query: Any) -> list:
    """Walk every page of a query; fail if the cursor chain loops."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        result = await store.list(collection, limit=page, cursor=cursor, **query)
        assert len(result.items) <= page
        items += result.items
        cursor = result.next_cursor
        if cursor is None:
            return items
    raise AssertionError("cursor chain did not end")


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["_id"] for item in items]


# -- single documents ----------------------------------------------------------------------


async def test_get_missing_is_none(documents: DocumentStore) -> None:
    assert await documents.get("things/nope") is None


async def test_set_then_get_round_trips_json_values(documents: DocumentStore) -> None:
    data = {"s": "héllo", "n": 3, "f": 1.5, "b": True, "z": None, "l": [1, "2"], "d": {"k": [{}]}}
    assert await documents.apply([SetDoc("things/a", data)]) == [None]
    assert await documents.get("things/a") == data


async def test_set_replaces_the_whole_document(documents: DocumentStore) -> None:
    await documents.apply([SetDoc("things/a", {"x": 1, "y": 2})])
    await documents.apply([SetDoc("things/a", {"y": 3})])
    assert await documents.get("things/a") == {"y": 3}


async def test_create_of_new_document(documents: DocumentStore) -> None:
    await documents.apply([CreateDoc("things/a", {"x": 1})])
    assert await documents.get("things/a") == {"x": 1}


async def test_create_of_existing_document_conflicts_and_applies_nothing(
    documents: DocumentStore,
) -> None:
    await documents.apply([SetDoc("things/a", {"x": 1})])
    with pytest.raises(Conflict):
        await documents.apply([SetDoc("things/b", {"y": 1}), CreateDoc("things/a", {"x": 2})])
    assert await documents.get("things/a") == {"x": 1}
    assert await documents.get("things/b") is None


async def test_delete_document_and_missing_document(documents: DocumentStore) -> None:
    await documents.apply([SetDoc("things/a", {"x": 1}), SetDoc("things/b", {"x": 2})])
    await documents.apply([DeleteDoc("things/a"), DeleteDoc("things/never")])
    assert await documents.get("things/a") is None
    assert await documents.get("things/b") == {"x": 2}


async def test_delete_collection_removes_only_its_direct_documents(
    documents: DocumentStore,
) -> None:
    await documents.apply(
        [
            SetDoc("groups/g1/members/a", {"n": 1}),
            SetDoc("groups/g1/members/b", {"n": 2}),
            SetDoc("groups/g1/members/b/notes/x", {"n": 3}),
            SetDoc("groups/g1/membersx/c", {"n": 4}),
            SetDoc("groups/g2/members/a", {"n": 5}),
        ]
    )
    await documents.apply([DeleteCollection("groups/g1/members")])
    assert (await documents.list("groups/g1/members")).items == []
    assert await documents.get("groups/g1/members/b/notes/x") == {"n": 3}
    assert await documents.get("groups/g1/membersx/c") == {"n": 4}
    assert await documents.get("groups/g2/members/a") == {"n": 5}


async def test_writes_in_one_batch_apply_in_order(documents: DocumentStore) -> None:
    results = await documents.apply(
        [
            SetDoc("things/a", {"value": 1}),
            Increment("things/a", 2),
            DeleteDoc("things/a"),
            Increment("things/a", 5),
        ]
    )
    assert results == [None, 3, None, 5]
    assert await documents.get("things/a") == {"value": 5}


# -- merge and increment ---------------------------------------------------------------------


async def test_merge_creates_then_merges_shallowly_and_returns_the_merged_value(
    documents: DocumentStore,
) -> None:
    assert await documents.apply([MergeDoc("things/a", {"x": 1, "y": {"k": 1}})]) == [
        {"x": 1, "y": {"k": 1}}
    ]
    result = await documents.apply([MergeDoc("things/a", {"y": {"j": 2}, "z": 3})])
    assert result == [{"x": 1, "y": {"j": 2}, "z": 3}]
    assert await documents.get("things/a") == {"value": {"x": 1, "y": {"j": 2}, "z": 3}}


async def test_merge_into_a_named_field_keeps_the_rest_of_the_document(
    documents: DocumentStore,
) -> None:
    await documents.apply([SetDoc("things/a", {"other": True, "meta": {"a": 1}})])
    await documents.apply([MergeDoc("things/a", {"b": 2}, field="meta")])
    assert await documents.get("things/a") == {"other": True, "meta": {"a": 1, "b": 2}}


async def test_increment_returns_the_new_value_and_counts_absent_as_zero(
    documents: DocumentStore,
) -> None:
    assert await documents.apply([Increment("counters/a", 5)]) == [5]
    assert await documents.apply([Increment("counters/a", -2)]) == [3]
    assert await documents.apply([Increment("counters/a", 0.5)]) == [3.5]
    assert await documents.apply([Increment("counters/a", 1, field="hits")]) == [1]
    assert await documents.get("counters/a") == {"value": 3.5, "hits": 1}


async def test_increment_of_a_non_number_conflicts_and_applies_nothing(
    documents: DocumentStore,
) -> None:
    await documents.apply([SetDoc("counters/a", {"value": "three"})])
    with pytest.raises(Conflict):
        await documents.apply([Increment("counters/b", 1), Increment("counters/a", 1)])
    assert await documents.get("counters/a") == {"value": "three"}
    assert await documents.get("counters/b") is None


async def test_concurrent_increments_are_not_lost(documents: DocumentStore) -> None:
    await asyncio.gather(*(documents.apply([Increment("counters/a", 1)]) for _ in range(50)))
    assert await documents.get("counters/a") == {"value": 50}


# -- compare-and-set -------------------------------------------------------------------------


async def test_compare_and_set_on_absent_document(documents: DocumentStore) -> None:
    await documents.apply([CompareAndSet("locks/a", ABSENT, {"value": "me"})])
    assert await documents.get("locks/a") == {"value": "me"}
    with pytest.raises(Conflict):
        await documents.apply([CompareAndSet("locks/a", ABSENT, {"value": "you"})])
    assert await documents.get("locks/a") == {"value": "me"}


async def test_compare_and_set_when_the_field_matches(documents: DocumentStore) -> None:
    await documents.apply([SetDoc("locks/a", {"owner": "me", "n": 1})])
    await documents.apply([CompareAndSet("locks/a", "me", {"owner": "you"}, field="owner")])
    assert await documents.get("locks/a") == {"owner": "you"}


async def test_failed_compare_and_set_applies_nothing_of_its_batch(
    documents: DocumentStore,
) -> None:
    await documents.apply([SetDoc("locks/a", {"value": 1}), SetDoc("things/keep", {"v": 1})])
    with pytest.raises(Conflict):
        await documents.apply(
            [
                SetDoc("things/new", {"v": 1}),
                Increment("counters/c", 1),
                DeleteDoc("things/keep"),
                MergeDoc("things/keep", {"m": 1}),
                CompareAndSet("locks/a", 2, {"value": 3}),
            ]
        )
    assert await documents.get("locks/a") == {"value": 1}
    assert await documents.get("things/keep") == {"v": 1}
    assert await documents.get("things/new") is None
    assert await documents.get("counters/c") is None


async def test_a_failed_batch_does_not_spoil_concurrent_batches(documents: DocumentStore) -> None:
    await documents.apply([SetDoc("locks/a", {"value": 1})])
    outcomes = await asyncio.gather(
        documents.apply([Increment("counters/c", 1)]),
        documents.apply([Increment("counters/c", 10), CompareAndSet("locks/a", 9, {})]),
        documents.apply([Increment("counters/c", 100)]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], Conflict)
    assert await documents.get("counters/c") == {"value": 101}


# -- listing ---------------------------------------------------------------------------------


async def people(documents: DocumentStore) -> None:
    await documents.apply(
        [
            SetDoc("people/carol", {"age": 35, "team": "b"}),
            SetDoc("people/alice", {"age": 30, "team": "a"}),
            SetDoc("people/dave", {"age": 30, "team": "b"}),
            SetDoc("people/bob", {"age": 25, "team": "a"}),
            SetDoc("people/erin", {"age": 41, "team": "c"}),
            SetDoc("people/alice/pets/rex", {"age": 3}),
            SetDoc("peoplex/zed", {"age": 1}),
        ]
    )


async def test_list_orders_by_id_and_holds_only_direct_documents(
    documents: DocumentStore,
) -> None:
    await people(documents)
    page = await documents.list("people")
    assert ids(page.items) == ["alice", "bob", "carol", "dave", "erin"]
    assert page.items[0] == {"_id": "alice", "age": 30, "team": "a"}
    assert page.next_cursor is None
    assert ids((await documents.list("people", descending=True)).items) == [
        "erin",
        "dave",
        "carol",
        "bob",
        "alice",
    ]
    assert (await documents.list("nobody")).items == []


async def test_list_orders_by_field_then_id(documents: DocumentStore) -> None:
    await people(documents)
    ascending = await documents.list("people", order_by="age")
    assert ids(ascending.items) == ["bob", "alice", "dave", "carol", "erin"]
    descending = await documents.list("people", order_by="age", descending=True)
    assert ids(descending.items) == ["erin", "carol", "dave", "alice", "bob"]


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("==", 30, ["alice", "dave"]),
        ("!=", 30, ["bob", "carol", "erin"]),
        ("<", 30, ["bob"]),
        ("<=", 30, ["alice", "bob", "dave"]),
        (">", 30, ["carol", "erin"]),
        (">=", 30, ["alice", "carol", "dave", "erin"]),
    ],
)
async def test_list_filters(
    documents: DocumentStore, op: str, value: int, expected: list[str]
) -> None:
    await people(documents)
    page = await documents.list("people", where=[Filter("age", op, value)])
    assert ids(page.items) == expected


async def test_list_combines_filters_with_order(documents: DocumentStore) -> None:
    await people(documents)
    page = await documents.list(
        "people",
        where=[Filter("team", "==", "b"), Filter("age", ">=", 30)],
        order_by="age",
        descending=True,
    )
    assert ids(page.items) == ["carol", "dave"]
    strings = await documents.list("people", where=[Filter("team", "<", "b")])
    assert ids(strings.items) == ["alice", "bob"]


async def test_list_refuses_an_unknown_operator(documents: DocumentStore) -> None:
    with pytest.raises(BadRequest):
        await documents.list("people", where=[Filter("age", "~", 1)])


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("order_by", [None, "rank"])
@pytest.mark.parametrize("page", [1, 3, 7, 50])
async def test_cursor_pages_cover_every_document_exactly_once(
    documents: DocumentStore, order_by: str | None, descending: bool, page: int
) -> None:
    # Many ties on `rank` so the cursor must break them by id; null sorts before any number.
    await documents.apply(
        [SetDoc(f"items/i{n:02d}", {"rank": None if n % 5 == 0 else n % 4}) for n in range(23)]
    )
    whole = await documents.list("items", order_by=order_by, descending=descending, limit=100)
    paged = await all_items(documents, "items", page=page, order_by=order_by, descending=descending)
    assert ids(paged) == ids(whole.items)
    assert sorted(ids(paged)) == [f"i{n:02d}" for n in range(23)]
    if order_by:
        ranks = [-1 if item["rank"] is None else item["rank"] for item in paged]
        assert ranks == sorted(ranks, reverse=descending)


async def test_ordering_on_a_field_skips_documents_without_it(documents: DocumentStore) -> None:
    await documents.apply(
        [
            SetDoc("items/a", {"rank": 2}),
            SetDoc("items/b", {}),
            SetDoc("items/c", {"rank": None}),
            SetDoc("items/d", {"rank": 1}),
        ]
    )
    assert ids((await documents.list("items", order_by="rank")).items) == ["c", "d", "a"]
    assert ids((await documents.list("items")).items) == ["a", "b", "c", "d"]


async def test_cursor_pages_with_filters(documents: DocumentStore) -> None:
    await documents.apply([SetDoc(f"items/i{n:02d}", {"rank": n}) for n in range(20)])
    paged = await all_items(
        documents, "items", page=4, where=[Filter("rank", ">=", 5)], order_by="rank"
    )
    assert [item["rank"] for item in paged] == list(range(5, 20))


async def test_an_exact_last_page_has_no_cursor(documents: DocumentStore) -> None:
    await documents.apply([SetDoc(f"items/i{n}", {}) for n in range(4)])
    first = await documents.list("items", limit=2)
    second = await documents.list("items", limit=2, cursor=first.next_cursor)
    assert ids(first.items + second.items) == ["i0", "i1", "i2", "i3"]
    assert second.next_cursor is None


async def test_a_foreign_cursor_is_refused(documents: DocumentStore) -> None:
    with pytest.raises(BadRequest):
        await documents.list("items", cursor="not a cursor!")


ODD_IDS = [
    "a/b",
    "..",
    ".",
    "__reserved__",
    "",
    " spaced out ",
    "100%",
    "a?b#c&d=e",
    "ünïcødé ✓",
    "tab\there",
    "new\nline",
    "quote'\"",
    "back\\slash",
    "-",
    "%2F",
    "%",
    "\x00",
]


async def test_any_string_is_an_id_through_doc_id(documents: DocumentStore) -> None:
    writes = [SetDoc(f"odd/{doc_id(raw)}", {"raw": raw}) for raw in ODD_IDS]
    await documents.apply(writes)
    for raw in ODD_IDS:
        assert await documents.get(f"odd/{doc_id(raw)}") == {"raw": raw}
    listed = await all_items(documents, "odd", page=4)
    assert sorted(raw_id(item["_id"]) for item in listed) == sorted(ODD_IDS)
    assert all(raw_id(item["_id"]) == item["raw"] for item in listed)
    await documents.apply([DeleteDoc(f"odd/{doc_id('a/b')}")])
    assert await documents.get(f"odd/{doc_id('a/b')}") is None
    assert len((await documents.list("odd")).items) == len(ODD_IDS) - 1


# -- property --------------------------------------------------------------------------------

increments = st.lists(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(-1000, 1000)),
        min_size=1,
        max_size=6,
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(batches=increments)
async def test_increments_in_random_batches_sum_up(
    documents: DocumentStore, batches: list[list[tuple[str, int]]]
) -> None:
    # One fixture serves every example, so each example counts in its own collection.
    collection = f"sums-{uuid.uuid4().hex}"
    await asyncio.gather(
        *(
            documents.apply([Increment(f"{collection}/{name}", by) for name, by in batch])
            for batch in batches
        )
    )
    expected: dict[str, int] = {}
    for batch in batches:
        for name, by in batch:
            expected[name] = expected.get(name, 0) + by
    for name, total in expected.items():
        assert await documents.get(f"{collection}/{name}") == {"value": total}
