"""Audit records' canonical bytes and hashes (known answers written by hand), and the verifier of
a stored chain."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cfp.domain.audit import (
    ZERO_HASH,
    AuditEntry,
    AuditRecord,
    ChainHead,
    block_document,
    block_id,
    canonical_bytes,
    chain_hash,
    chain_of_scope,
    chain_paths,
    leaf_hash,
    payload_hash,
    public_record,
    record_time,
    tenant_chain,
    verify_chain,
)
from cfp.errors import BadRequest
from pydantic import ValidationError

FULL = AuditRecord(
    seq=7,
    chain="tenant/acme",
    time="2025-03-04T05:06:07.089000Z",
    actor={"id": "u_123", "kind": "user"},
    action="project.create",
    target={"type": "project", "id": "p-9"},
    scope="tenant/acme/team/core",
    outcome="success",
    correlation_id="c-1",
    trace_id="0af7651916cd43dd8448eb211c80319c",
    client_address="203.0.113.7",
    user_agent="curl/8.5",
    details={
        "tags": ["b", "a"],
        "size": 1.5,
        "n": 10,
        "name": "Café ☕",
        "note": 'a\nb"c',
        "tiny": 1e-7,
        "big": 1e21,
        "zero": None,
    },
    payload_hash="ab" * 32,
)
# RFC 8785 by hand: keys sorted, no whitespace, non-ASCII as UTF-8, only the required escapes,
# numbers in ECMAScript's shortest form (1e+21, 1e-7).
FULL_CANONICAL = (
    '{"action":"project.create","actor":{"id":"u_123","kind":"user"},"chain":"tenant/acme",'
    '"client_address":"203.0.113.7","correlation_id":"c-1","details":{"big":1e+21,"n":10,'
    '"name":"Café ☕","note":"a\\nb\\"c","size":1.5,"tags":["b","a"],"tiny":1e-7,"zero":null},'
    '"outcome":"success","payload_hash":"'
    + "ab"
    * 32
    + '","scope":"tenant/acme/team/core","seq":7,"target":{"id":"p-9","type":"project"},'
    '"time":"2025-03-04T05:06:07.089000Z","trace_id":"0af7651916cd43dd8448eb211c80319c",'
    '"user_agent":"curl/8.5"}'
)
FULL_LEAF = "5f0dfb99682054d4206c13a86545e5a1bc0baf60098ae76603972faf308c136a"
PREV = hashlib.sha256(b"prev").digest()
FULL_CHAIN = "6bc8a585bd8de054f3ecc0e897bdb0ca300248b607d3e4af07e2076d1469ac7c"

MINIMAL = AuditRecord(
    seq=0,
    chain="system",
    time="2025-01-01T00:00:00.000000Z",
    actor={"id": "anonymous", "kind": "anonymous"},
    action="auth.signin",
    target={"type": "principal", "id": "someone@example.com"},
    scope="system",
    outcome="failure",
)
MINIMAL_CANONICAL = (
    '{"action":"auth.signin","actor":{"id":"anonymous","kind":"anonymous"},"chain":"system",'
    '"outcome":"failure","scope":"system","seq":0,'
    '"target":{"id":"someone@example.com","type":"principal"},'
    '"time":"2025-01-01T00:00:00.000000Z"}'
)
MINIMAL_LEAF = "232e5853fc9d87e271c91d6fa8f60a36efa3cc40de2184ef503464a55a89f89a"
MINIMAL_CHAIN = "3fcb3f77bf6593de6621149e462ba8f94650f035ece5e95efee4319464ec0a6a"


def test_canonical_form_of_a_full_record() -> None:
    assert canonical_bytes(FULL) == FULL_CANONICAL.encode()


def test_unset_optional_fields_are_left_out_of_the_canonical_form() -> None:
    assert canonical_bytes(MINIMAL) == MINIMAL_CANONICAL.encode()
    assert canonical_bytes(MINIMAL.model_copy(update={"details": {}})) == canonical_bytes(MINIMAL)


def test_leaf_and_chain_hashes_are_the_known_answers() -> None:
    for canonical, leaf, prev, chained in [
        (FULL_CANONICAL, FULL_LEAF, PREV, FULL_CHAIN),
        (MINIMAL_CANONICAL, MINIMAL_LEAF, ZERO_HASH, MINIMAL_CHAIN),
    ]:
        expected_leaf = hashlib.sha256(b"\x00" + canonical.encode()).digest()
        assert expected_leaf.hex() == leaf
        assert hashlib.sha256(prev + expected_leaf).hexdigest() == chained
        assert leaf_hash(canonical.encode()) == expected_leaf
        assert chain_hash(prev, expected_leaf).hex() == chained


def test_the_leaf_hash_is_rfc_6962s() -> None:
    # RFC 6962's hash of the empty leaf: SHA-256 of the single byte 0x00.
    empty = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert leaf_hash(b"").hex() == empty
    assert ZERO_HASH == bytes(32)


def test_a_block_stores_the_record_its_hashes_derived_columns_and_index_fields() -> None:
    document, head = block_document(MINIMAL, ZERO_HASH)
    assert head == ChainHead(0, MINIMAL_CHAIN, "2025-01-01T00:00:00.000000Z")
    assert document["hash"] == MINIMAL_CHAIN
    assert document["prev_hash"] == "00" * 32
    assert (document["actor_id"], document["target_type"], document["target_id"]) == (
        "anonymous",
        "principal",
        "someone@example.com",
    )
    assert "correlation_id" not in document
    assert public_record({**document, "_id": block_id(0)}) == {
        **MINIMAL.fields(),
        "hash": MINIMAL_CHAIN,
        "prev_hash": "00" * 32,
        # the TDD's audit_blocks columns: id, hash, prev_hash, payload_ref, created_at
        "id": block_id(0),
        "created_at": "2025-01-01T00:00:00.000000Z",
        "leaf_hash": MINIMAL_LEAF,
    }


def test_payload_hash_is_hex_sha256_of_the_stored_bytes() -> None:
    assert payload_hash(b"abc") == hashlib.sha256(b"abc").hexdigest()
    entry = AuditEntry(**entry_fields(payload_hash=payload_hash(b"abc")))
    assert entry.payload_hash == hashlib.sha256(b"abc").hexdigest()
    with pytest.raises(ValidationError):
        AuditEntry(**entry_fields(payload_hash="ABC"))


# -- chains, scopes, times -------------------------------------------------------------------


def test_a_record_goes_to_the_chain_of_its_scope() -> None:
    assert chain_of_scope("system") == "system"
    assert chain_of_scope("tenant/acme") == "tenant/acme"
    assert chain_of_scope("tenant/acme/project/p1") == "tenant/acme"
    for scope in ["", "tenant", "tenant/", "tenant//x", "team/x", "systems"]:
        with pytest.raises(ValueError):
            chain_of_scope(scope)
    assert tenant_chain("acme") == "tenant/acme"
    with pytest.raises(BadRequest):
        tenant_chain("a/b")
    with pytest.raises(ValidationError):
        AuditRecord(**{**FULL.model_dump(), "chain": "tenant/other"})


def test_chain_paths_escape_the_tenant_id_and_keep_firestore_shape() -> None:
    paths = chain_paths("tenant/a b")
    assert paths.head == "tenants/a%20b/audit_head/head"
    assert paths.block(42) == "tenants/a%20b/audit_blocks/00000000000000000042"
    system = chain_paths("system")
    for path in [system.head, system.block(0), paths.head, paths.block(0)]:
        assert len(path.split("/")) % 2 == 0  # a document path: collection/doc pairs
    for bad in ["tenant", "tenant/", "tenant/a/b", "acme"]:
        with pytest.raises(BadRequest):
            chain_paths(bad)


def test_record_time_is_one_fixed_width_rfc3339_utc_form() -> None:
    expected = "2025-01-02T03:04:05.000006Z"
    moment = datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert record_time(moment) == expected
    assert record_time(moment.timestamp()) == expected
    assert record_time("2025-01-02T04:04:05.000006+01:00") == expected
    assert record_time(moment.astimezone(timezone(timedelta(hours=-5)))) == expected
    for bad in [datetime(2025, 1, 2), "yesterday", "2025-01-02T03:04:05", None]:
        with pytest.raises(BadRequest):
            record_time(bad)  # type: ignore[arg-type]
    for bad_time in ["2025-01-02T03:04:05Z", "2025-13-02T03:04:05.000000Z"]:
        with pytest.raises(ValidationError):
            AuditRecord(**{**FULL.model_dump(), "time": bad_time})


# -- entries ---------------------------------------------------------------------------------


def entry_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "actor": {"id": "u1", "kind": "user"},
        "action": "team.create",
        "target": {"type": "team", "id": "core"},
        "scope": "tenant/acme",
    }
    return {**fields, **overrides}


def test_an_entry_is_validated_strictly() -> None:
    entry = AuditEntry(**entry_fields())
    assert (entry.chain, entry.outcome, entry.details) == ("tenant/acme", "success", {})
    for bad in [
        {"action": "create"},
        {"action": "Team.Create"},
        {"actor": {"id": "u1", "kind": "robot"}},
        {"target": {"type": "Team", "id": "x"}},
        {"scope": "acme"},
        {"outcome": "maybe"},
        {"unknown": 1},
        {"details": {"n": float("nan")}},
        {"details": {"n": 2**60}},
        {"details": {"blob": "x" * 20_000}},
    ]:
        with pytest.raises(ValidationError):
            AuditEntry(**entry_fields(**bad))


@pytest.mark.parametrize(
    "details",
    [
        {"password": "hunter2"},
        {"new_API-Key": "k"},
        {"refresh_token": "t"},
        {"outer": {"totp_secret": "s"}},
        {"items": [{"clientSecret": "s"}]},
        {"key": "cfp_sk_abcdef"},
    ],
)
def test_an_entry_refuses_details_that_hold_secrets(details: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="never holds"):
        AuditEntry(**entry_fields(details=details))


# -- verification ----------------------------------------------------------------------------


def make_chain(count: int, chain: str = "tenant/acme") -> tuple[list[dict[str, Any]], ChainHead]:
    """`count` stored blocks (with their ids, as a store lists them) and the chain's head."""
    documents: list[dict[str, Any]] = []
    previous, head = ZERO_HASH, None
    for seq in range(count):
        record = AuditRecord(
            **entry_fields(action=f"team.update{seq % 3}", scope=chain),
            seq=seq,
            chain=chain,
            time=record_time(1_700_000_000 + seq),
        )
        document, head = block_document(record, previous)
        previous = bytes.fromhex(head.hash)
        documents.append({**document, "_id": block_id(seq)})
    assert head is not None
    return documents, head


def test_an_intact_chain_verifies() -> None:
    documents, head = make_chain(5)
    result = verify_chain("tenant/acme", documents, head)
    assert (result.ok, result.checked, result.first_bad_seq, result.reason) == (True, 5, None, None)
    assert result.head == head
    assert verify_chain("tenant/acme", [], None).ok


def test_verification_can_start_mid_chain() -> None:
    documents, head = make_chain(5)
    start = ChainHead(1, documents[1]["hash"], documents[1]["time"])
    result = verify_chain("tenant/acme", documents[2:], head, start=start)
    assert (result.ok, result.checked) == (True, 3)


def tampered(documents: list[dict[str, Any]], at: int, **changes: Any) -> list[dict[str, Any]]:
    return [{**d, **changes} if d["seq"] == at else d for d in documents]


@pytest.mark.parametrize(
    ("change", "bad_seq", "reason"),
    [
        (lambda d: tampered(d, 2, action="team.delete"), 2, "does not match its contents"),
        (lambda d: tampered(d, 0, details={"x": 1}), 0, "does not match its contents"),
        (lambda d: tampered(d, 3, outcome="failure"), 3, "does not match its contents"),
        (lambda d: tampered(d, 1, hash="00" * 32), 1, "does not match its contents"),
        (lambda d: tampered(d, 2, prev_hash="11" * 32), 2, "prev_hash"),
        (lambda d: tampered(d, 2, actor_id="someone-else"), 2, "index fields"),
        (lambda d: tampered(d, 2, time="2000-01-01T00:00:00.000000Z"), 2, "before the previous"),
        (lambda d: tampered(d, 1, action="not an action"), 1, "malformed record: action"),
        (lambda d: tampered(d, 1, extra=True), 1, "malformed record: extra"),
        (lambda d: tampered(d, 3, seq=4), 3, "holds seq 4"),
        (lambda d: [x for x in d if x["seq"] != 2], 2, "record 2 is missing"),
        (lambda d: [d[0], d[2], d[1], d[3], d[4]], 1, "record 1 is missing"),
        (lambda d: [*d[:3], {**d[2], "_id": block_id(9)}, *d[3:]], 3, "stored as"),
    ],
)
def test_a_tampered_chain_fails_at_the_first_bad_seq(
    change: Any, bad_seq: int, reason: str
) -> None:
    documents, head = make_chain(5)
    result = verify_chain("tenant/acme", change(documents), head)
    assert not result.ok
    assert result.first_bad_seq == bad_seq
    assert reason in (result.reason or "")
    assert result.checked == bad_seq


def test_a_record_of_another_chain_is_refused() -> None:
    documents, head = make_chain(3, chain="tenant/other")
    result = verify_chain("tenant/acme", documents, head)
    assert (result.ok, result.first_bad_seq) == (False, 0)
    assert "chain 'tenant/other'" in (result.reason or "")


def test_the_head_must_name_the_last_record() -> None:
    documents, head = make_chain(5)
    truncated = verify_chain("tenant/acme", documents[:3], head)
    assert (truncated.ok, truncated.first_bad_seq, truncated.reason) == (
        False,
        3,
        "record 3 is missing",
    )
    assert truncated.head is not None and truncated.head.seq == 2

    behind = ChainHead(2, documents[2]["hash"], documents[2]["time"])
    beyond = verify_chain("tenant/acme", documents, behind)
    assert (beyond.ok, beyond.first_bad_seq) == (False, 3)
    assert "beyond the head" in (beyond.reason or "")

    wrong = verify_chain("tenant/acme", documents, ChainHead(4, "ee" * 32, head.time))
    assert (wrong.ok, wrong.first_bad_seq) == (False, 4)

    headless = verify_chain("tenant/acme", documents, None)
    assert (headless.ok, headless.first_bad_seq, headless.reason) == (
        False,
        5,
        "the chain has records but no head",
    )
    empty = verify_chain("tenant/acme", [], head)
    assert (empty.ok, empty.first_bad_seq, empty.reason) == (False, 0, "record 0 is missing")


def test_a_malformed_head_is_refused() -> None:
    documents, head = make_chain(2)
    result = verify_chain("tenant/acme", documents, {**head.to_dict(), "seq": "1"})
    assert (result.ok, result.first_bad_seq, result.reason) == (
        False,
        2,
        "the chain's head is malformed",
    )
    assert verify_chain("tenant/acme", documents, head.to_dict()).ok
    for bad in [{}, {"seq": -1, "hash": "00" * 32, "time": MINIMAL.time}, {"seq": 0, "hash": "x"}]:
        with pytest.raises(ValueError):
            ChainHead.from_dict(bad)
