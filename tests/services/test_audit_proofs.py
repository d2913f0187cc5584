"""Tamper evidence, as properties: whatever is done to the stored records — a record modified,
deleted, inserted or two swapped, a modification with every later hash recomputed, a clean
truncation — verification detects it, online (POST /v1/audit/verify's service) and offline
(the export bundle under `cfp audit verify`'s verifier). The limits are stated, not hidden: a
rehashed rewrite is caught only below the last checkpoint, a truncation only below the last
anchored tree size (docs/audit.md)."""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cfp.adapters.local.blobs import FileBlobStore
from cfp.adapters.local.documents import SqliteDocumentStore
from cfp.adapters.local.keyring import LocalKeyring
from cfp.adapters.local.sqlite import Database
from cfp.domain.audit import (
    DERIVED_FIELDS,
    HASH_FIELDS,
    INDEX_FIELDS,
    ZERO_HASH,
    Actor,
    AuditEntry,
    AuditRecord,
    Target,
    block_document,
    chain_paths,
)
from cfp.domain.bundles import RECORDS, verify_bundle
from cfp.domain.documents import DeleteDoc, SetDoc
from cfp.domain.merkle import CompactRange
from cfp.domain.notes import key_id, parse_signed_note, signature_line, signed_note
from cfp.ports import PublicKey
from cfp.services.audit import AuditLog
from cfp.services.audit_proofs import AuditProofs
from cfp.services.checkpoints import AnchorSink, Checkpointer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CHAIN = "tenant/acme"
NEVER = 10**9  # no checkpoint by count: the tests choose when


@dataclass
class World:
    documents: SqliteDocumentStore
    audit: AuditLog
    checkpoints: Checkpointer
    proofs: AuditProofs
    anchors: AnchorSink

    async def records(self) -> list[dict[str, Any]]:
        page = await self.documents.list(chain_paths(CHAIN).blocks, limit=500)
        return page.items


def entry(index: int) -> AuditEntry:
    return AuditEntry(
        actor=Actor(id="u_ada", kind="user"),
        action="team.create",
        target=Target(type="team", id=f"team-{index}"),
        scope=CHAIN,
        details={"n": index},
    )


async def world_at(root: Path) -> World:
    documents = SqliteDocumentStore(Database(root / "data" / "cfp.db"))
    audit = AuditLog(documents)
    anchors = AnchorSink(FileBlobStore(root / "anchors"), location=(root / "anchors").as_uri())
    checkpoints = Checkpointer(
        documents,
        audit,
        LocalKeyring(root / "data" / "keyring.json"),
        anchors,
        region="local",
        every=NEVER,
    )
    proofs = AuditProofs(documents, audit, checkpoints, FileBlobStore(root / "data" / "blobs"))
    return World(documents, audit, checkpoints, proofs, anchors)


def run(scenario: Callable[[World], Awaitable[None]]) -> None:
    async def main() -> None:
        with tempfile.TemporaryDirectory() as folder:
            world = await world_at(Path(folder))
            try:
                await scenario(world)
            finally:
                await world.documents.close()

    asyncio.run(main())


async def fill(world: World, count: int, checkpoint_at: set[int]) -> None:
    for index in range(count):
        await world.audit.append([entry(index)])
        if index + 1 in checkpoint_at:
            await world.checkpoints.checkpoint(CHAIN)


def stored_record(document: dict[str, Any]) -> AuditRecord:
    fields = {
        k: v
        for k, v in document.items()
        if k not in {*HASH_FIELDS, *INDEX_FIELDS, *DERIVED_FIELDS, "_id"}
    }
    return AuditRecord.model_validate(fields)


async def rewrite_from(
    world: World, seq: int, change: Callable[[AuditRecord], AuditRecord]
) -> None:
    """What an attacker with write access to the store does: change record `seq` and recompute
    every hash after it, and the head, so the chain holds together again."""
    paths = chain_paths(CHAIN)
    documents = await world.records()
    previous = ZERO_HASH if seq == 0 else bytes.fromhex(documents[seq - 1]["hash"])
    writes: list[Any] = []
    head: Any = None
    for document in documents[seq:]:
        record = stored_record(document)
        if record.seq == seq:
            record = change(record)
        rebuilt, head = block_document(record, previous)
        previous = bytes.fromhex(head.hash)
        writes.append(SetDoc(paths.block(record.seq), rebuilt))
    writes.append(SetDoc(paths.head, head.to_dict()))
    await world.documents.apply(writes)


def renamed(record: AuditRecord) -> AuditRecord:
    return record.model_copy(update={"target": Target(type="team", id="someone-else")})


# -- tampering, one kind at a time -----------------------------------------------------------


async def modify(world: World, seq: int) -> None:
    path = chain_paths(CHAIN).block(seq)
    document = await world.documents.get(path)
    assert document is not None
    document = {k: v for k, v in document.items() if k != "_id"}
    document["details"] = {"n": -1}
    await world.documents.apply([SetDoc(path, document)])


async def delete(world: World, seq: int) -> None:
    await world.documents.apply([DeleteDoc(chain_paths(CHAIN).block(seq))])


async def insert(world: World, seq: int) -> None:
    """A forged record after the head, chained properly to the last one."""
    documents = await world.records()
    last = stored_record(documents[-1])
    forged = last.model_copy(update={"seq": last.seq + 1})
    document, _ = block_document(forged, bytes.fromhex(documents[-1]["hash"]))
    await world.documents.apply([SetDoc(chain_paths(CHAIN).block(forged.seq), document)])


async def swap(world: World, seq: int) -> None:
    documents = await world.records()
    other = (seq + 1) % len(documents)
    paths = chain_paths(CHAIN)
    a, b = ({k: v for k, v in d.items() if k != "_id"} for d in (documents[seq], documents[other]))
    await world.documents.apply([SetDoc(paths.block(seq), b), SetDoc(paths.block(other), a)])


TAMPERING = {"modify": modify, "delete": delete, "insert": insert, "swap": swap}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(2, 24),
    kind=st.sampled_from(sorted(TAMPERING)),
    data=st.data(),
)
def test_any_modification_deletion_insertion_or_reordering_is_detected(
    count: int, kind: str, data: st.DataObject
) -> None:
    seq = data.draw(st.integers(0, count - 1), label="seq")
    cuts = data.draw(st.sets(st.integers(1, count)), label="checkpoints")

    async def scenario(world: World) -> None:
        await fill(world, count, cuts)
        assert (await world.proofs.verify(CHAIN))["ok"] is True
        bundle = await export(world)
        await TAMPERING[kind](world, seq)
        verdict = await world.proofs.verify(CHAIN)
        assert verdict["ok"] is False, (kind, seq, verdict)
        assert verdict["first_bad_seq"] is not None and verdict["reason"]
        if kind in ("modify", "swap"):
            assert verdict["first_bad_seq"] == min(
                seq, (seq + 1) % count if kind == "swap" else seq
            )
        # the same, offline, on a bundle tampered with the same way
        assert offline(bundle).ok is True
        assert offline(tamper_bundle(bundle, kind, seq)).ok is False

    run(scenario)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(2, 24), data=st.data())
def test_a_rehashed_rewrite_is_caught_below_the_last_checkpoint(
    count: int, data: st.DataObject
) -> None:
    checkpoint = data.draw(st.integers(1, count), label="checkpoint")
    seq = data.draw(st.integers(0, count - 1), label="seq")

    async def scenario(world: World) -> None:
        await fill(world, count, {checkpoint})
        await rewrite_from(world, seq, renamed)
        verdict = await world.proofs.verify(CHAIN)
        if seq < checkpoint:
            assert verdict["ok"] is False
            assert verdict["first_bad_seq"] == 0 and "checkpoint" in verdict["reason"]
        else:  # after the last checkpoint: the chain alone, and the schedule (docs/audit.md)
            assert verdict["ok"] is True

    run(scenario)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(3, 24), data=st.data())
def test_truncation_below_the_last_anchored_size_is_caught_through_the_anchor(
    count: int, data: st.DataObject
) -> None:
    anchored = data.draw(st.integers(2, count), label="anchored size")
    keep = data.draw(st.integers(1, count - 1), label="records kept")

    async def scenario(world: World) -> None:
        await fill(world, count, {anchored})
        # A clean truncation: the last records, the head, and every checkpoint the store held
        # beyond the cut are rewritten. Only the anchor sink, outside the store, remembers.
        paths = chain_paths(CHAIN)
        documents = await world.records()
        writes: list[Any] = [DeleteDoc(paths.block(d["seq"])) for d in documents[keep:]]
        last = documents[keep - 1]
        writes.append(
            SetDoc(paths.head, {"seq": last["seq"], "hash": last["hash"], "time": last["time"]})
        )
        writes.append(DeleteDoc(paths.checkpoint(anchored)))
        await world.documents.apply(writes)
        verdict = await world.proofs.verify(CHAIN)
        if keep < anchored:
            assert verdict["ok"] is False
            assert verdict["first_bad_seq"] == keep
            assert "anchored" in verdict["reason"]
        else:
            assert verdict["ok"] is True

    run(scenario)


def test_a_checkpoint_re_signed_with_another_key_is_rejected() -> None:
    async def scenario(world: World) -> None:
        await fill(world, 6, {3, 6})
        bundle = await export(world)
        stored = await world.checkpoints.latest(CHAIN)
        assert stored is not None
        forged = resign(stored.note.encode(), stored.key["name"])
        path = chain_paths(CHAIN).checkpoint(stored.size)
        document = await world.documents.get(path)
        assert document is not None
        document = {k: v for k, v in document.items() if k != "_id"} | {"note": forged.decode()}
        await world.documents.apply([SetDoc(path, document)])
        verdict = await world.proofs.verify(CHAIN)
        assert verdict["ok"] is False and "signature" in verdict["reason"]
        # offline: the checkpoint and its anchor in the bundle both re-signed
        swapped = replace_files(
            bundle,
            {
                f"checkpoints/{stored.size:020d}.note": forged,
                f"anchors/{stored.size:020d}.note": forged,
            },
        )
        verdict_offline = offline(swapped)
        assert verdict_offline.ok is False and "signature" in (verdict_offline.reason or "")

    run(scenario)


def test_proofs_match_the_checkpoints_the_log_signed() -> None:
    from cfp.domain.merkle import verify_consistency, verify_inclusion

    async def scenario(world: World) -> None:
        await fill(world, 11, {4, 11})
        small, large = await world.checkpoints.get(CHAIN, 4), await world.checkpoints.get(CHAIN, 11)
        assert small is not None and large is not None
        for seq in range(11):
            proof = await world.proofs.inclusion(CHAIN, seq, 11)
            verify_inclusion(
                bytes.fromhex(proof["leaf_hash"]),
                seq,
                11,
                [bytes.fromhex(h) for h in proof["proof"]],
                bytes.fromhex(large.root),
            )
        consistency = await world.proofs.consistency(CHAIN, 4, 11)
        verify_consistency(
            4,
            11,
            [bytes.fromhex(h) for h in consistency["proof"]],
            bytes.fromhex(small.root),
            bytes.fromhex(large.root),
        )
        assert consistency["first_checkpoint"] == small.note

    run(scenario)


def test_the_checkpointer_refuses_to_sign_over_a_damaged_chain() -> None:
    from cfp.services.audit import ChainDamaged

    async def scenario(world: World) -> None:
        await fill(world, 5, {2})
        await modify(world, 3)
        with pytest.raises(ChainDamaged, match="record 3"):
            await world.checkpoints.checkpoint(CHAIN)
        assert (await world.checkpoints.latest(CHAIN)).size == 2  # type: ignore[union-attr]

    run(scenario)


def test_checkpoints_are_made_every_n_records_without_being_asked(tmp_path: Path) -> None:
    async def scenario(world: World) -> None:
        world.checkpoints.every = 4
        for index in range(9):
            await world.audit.append([entry(index)])
            await asyncio.sleep(0)
        await world.checkpoints.close()
        for _ in range(50):
            latest = await world.checkpoints.latest(CHAIN)
            if latest is not None and latest.size >= 8:
                break
            await asyncio.sleep(0.02)
            await world.checkpoints.close()
        assert latest is not None and latest.size >= 8
        sizes = [c.size for c in await world.checkpoints.all(CHAIN)]
        assert sizes == sorted(sizes) and all(s >= 4 for s in sizes)

    run(scenario)


# -- bundles ------------------------------------------------------------------------------------


async def export(world: World) -> bytes:
    """The bundle as POST /v1/audit/export writes it: checkpointed up to its last record."""
    await world.checkpoints.checkpoint(CHAIN)
    latest = await world.checkpoints.latest(CHAIN)
    assert latest is not None
    data, _, _ = await world.proofs._bundle(CHAIN, latest.size)
    return data


class _Zip:
    def __init__(self, data: bytes) -> None:
        self.archive = zipfile.ZipFile(io.BytesIO(data))

    def names(self) -> list[str]:
        return self.archive.namelist()

    def read(self, name: str) -> bytes:
        return self.archive.read(name)

    def lines(self, name: str) -> Any:
        return iter(self.archive.read(name).splitlines())


def offline(data: bytes) -> Any:
    return verify_bundle(_Zip(data))


def replace_files(data: bytes, files: dict[str, bytes | None]) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            content = files.get(name, source.read(name))
            if content is not None:
                target.writestr(name, content)
    return out.getvalue()


def tamper_bundle(data: bytes, kind: str, seq: int) -> bytes:
    lines = zipfile.ZipFile(io.BytesIO(data)).read(RECORDS).decode().splitlines()
    if kind == "modify":
        lines[seq] = lines[seq].replace('"n":', '"n":1', 1)
    elif kind == "delete":
        del lines[seq]
    elif kind == "insert":
        lines.insert(seq, lines[seq])
    else:
        other = (seq + 1) % len(lines)
        lines[seq], lines[other] = lines[other], lines[seq]
    return replace_files(data, {RECORDS: ("\n".join(lines) + "\n").encode()})


def resign(note: bytes, name: str) -> bytes:
    """The same checkpoint signed by another Ed25519 key under the same key name."""
    private = ed25519.Ed25519PrivateKey.generate()
    pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    public = PublicKey("impostor", 1, "ed25519", pem)
    body, _ = parse_signed_note(note)
    line = signature_line(name, key_id(name, public.algorithm, public.pem), private.sign(body))
    return signed_note(body, [line])


def test_checkpoints_carry_rfc_3161_timestamps_that_the_bundle_verifier_checks() -> None:
    from cfp.adapters.tsa import TimestampAuthority

    from tests.fakes.tsa import FakeTsa

    tsa = FakeTsa("ec")
    with tsa.serving() as url:

        async def scenario(world: World) -> None:
            authority = TimestampAuthority(url)
            world.checkpoints.tsa = authority
            try:
                await fill(world, 5, {3, 5})
            finally:
                await authority.close()
            latest = await world.checkpoints.latest(CHAIN)
            assert latest is not None and "timestamp" in latest.anchors
            assert latest.timestamp_error is None
            bundle = await export(world)
            verdict = offline(bundle)
            assert verdict.ok and verdict.timestamps == 2, verdict
            # a token over other bytes, put in place of the real one
            stranger = TimestampAuthority(url)
            other = await stranger.timestamp(b"another checkpoint")
            await stranger.close()
            forged = replace_files(bundle, {f"anchors/{5:020d}.tsr": other})
            bad = offline(forged)
            assert bad.ok is False and "timestamp" in (bad.reason or "")
            assert "imprint" in (bad.reason or "")

        run(scenario)


def test_a_failing_timestamp_authority_leaves_the_checkpoint_standing_and_says_so() -> None:
    from cfp.adapters.tsa import TimestampAuthority

    from tests.fakes.tsa import FakeTsa

    tsa = FakeTsa("ec")
    tsa.misbehave = "http_500"
    with tsa.serving() as url:

        async def scenario(world: World) -> None:
            authority = TimestampAuthority(url)
            world.checkpoints.tsa = authority
            try:
                await fill(world, 2, {2})
            finally:
                await authority.close()
            latest = await world.checkpoints.latest(CHAIN)
            assert latest is not None and latest.size == 2
            assert "timestamp" not in latest.anchors
            assert latest.timestamp_error and "Unavailable" in latest.timestamp_error
            assert (await world.proofs.verify(CHAIN))["ok"] is True

        run(scenario)


def test_anchors_are_write_once_and_an_unfit_sink_signs_nothing() -> None:
    from cfp.errors import Conflict, SettingsError

    async def scenario(world: World) -> None:
        assert await world.anchors.put("x/1.note", b"one") == world.anchors.ref("x/1.note")
        assert await world.anchors.put("x/1.note", b"one")  # the same bytes again: harmless
        with pytest.raises(Conflict, match="never replaced"):
            await world.anchors.put("x/1.note", b"other")

        async def unlocked() -> None:
            raise SettingsError("CFP_AUDIT_ANCHOR_BUCKET: no locked retention policy")

        world.checkpoints.anchors = AnchorSink(
            world.anchors.blobs, location=world.anchors.location, check=unlocked
        )
        await fill(world, 2, set())
        with pytest.raises(SettingsError, match="retention"):
            await world.checkpoints.checkpoint(CHAIN)
        assert await world.checkpoints.latest(CHAIN) is None

    run(scenario)


# -- what the store's rewriter may not get signed or verified (review findings) ---------------


def test_the_checkpointer_never_extends_a_forged_range_or_a_lost_checkpoint() -> None:
    from cfp.services.audit import ChainDamaged

    async def scenario(world: World) -> None:
        await fill(world, 6, {6})
        await rewrite_from(world, 2, renamed)  # the records, rehashed
        path = chain_paths(CHAIN).checkpoint(6)
        stored = await world.documents.get(path)
        assert stored is not None
        records = await world.records()
        forged_range = CompactRange()
        for document in records:
            forged_range.append(bytes.fromhex(document["leaf_hash"]))
        forged = {k: v for k, v in stored.items() if k != "_id"}
        last = records[-1]
        forged |= {
            "range": forged_range.to_json(),
            "head": {"seq": last["seq"], "hash": last["hash"], "time": last["time"]},
        }
        await world.documents.apply([SetDoc(path, forged)])
        for index in range(3):
            await world.audit.append([entry(100 + index)])
        with pytest.raises(ChainDamaged, match="checkpoint 6"):
            await world.checkpoints.checkpoint(CHAIN)
        # the store's checkpoints removed: a new process still finds the anchor
        await world.documents.apply([DeleteDoc(path)])
        fresh = Checkpointer(
            world.documents,
            world.audit,
            world.checkpoints.keys,
            world.anchors,
            region="local",
            every=NEVER,
        )
        with pytest.raises(ChainDamaged, match="checkpoint 6 is anchored"):
            await fresh.checkpoint(CHAIN)
        assert await fresh.latest(CHAIN) is None

    run(scenario)


def test_a_range_is_checked_against_the_checkpoint_after_it() -> None:
    async def scenario(world: World) -> None:
        await fill(world, 40, {10, 40})
        assert (await world.proofs.verify(CHAIN, from_seq=20, to_seq=30))["ok"] is True
        await rewrite_from(world, 25, renamed)
        ranged = await world.proofs.verify(CHAIN, from_seq=20, to_seq=30)
        assert ranged["ok"] is False and ranged["first_bad_seq"] == 10
        assert "checkpoint 40" in ranged["reason"] and ranged["checked"] == 11

    run(scenario)


def test_records_appended_while_verifying_are_no_false_alarm() -> None:
    async def scenario(world: World) -> None:
        await fill(world, 7, {7})
        listing = world.documents.list
        appended: list[int] = []

        async def list_then_append(collection: str, **kw: Any) -> Any:
            page = await listing(collection, **kw)
            if collection.endswith("audit_blocks") and not appended:
                appended.append(1)
                await world.audit.append([entry(99)])  # another request's record, meanwhile
            return page

        world.documents.list = list_then_append  # type: ignore[method-assign]
        verdict = await world.proofs.verify(CHAIN)
        world.documents.list = listing  # type: ignore[method-assign]
        assert appended and verdict["ok"] is True, verdict
        assert (await world.proofs.verify(CHAIN))["checked"] == 8

    run(scenario)


def test_malformed_stored_data_is_a_verdict_not_a_crash() -> None:
    from cfp.errors import BadRequest

    async def scenario(world: World) -> None:
        await fill(world, 5, {3})
        paths = chain_paths(CHAIN)
        await world.documents.apply([SetDoc("system/platform/audit_keys/stray", {"x": 1})])
        assert (await world.proofs.verify(CHAIN))["ok"] is True  # a stray key is ignored
        with pytest.raises(BadRequest, match="beyond"):
            await world.proofs.verify(CHAIN, from_seq=9)
        block = await world.documents.get(paths.block(4))
        assert block is not None
        block = {k: v for k, v in block.items() if k != "_id"} | {"seq": "x"}
        await world.documents.apply([SetDoc(paths.block(4), block)])
        verdict = await world.proofs.verify(CHAIN, to_seq=4)
        assert verdict["ok"] is False and verdict["first_bad_seq"] == 4
        checkpoint = await world.documents.get(paths.checkpoint(3))
        assert checkpoint is not None
        broken = {k: v for k, v in checkpoint.items() if k not in ("_id", "range")}
        await world.documents.apply([SetDoc(paths.checkpoint(3), broken)])
        verdict = await world.proofs.verify(CHAIN)
        assert verdict["ok"] is False and "malformed" in verdict["reason"]

    run(scenario)


def test_a_bundle_must_be_vouched_for_by_anchored_checkpoints_all_the_way() -> None:
    from cfp.domain.bundles import keys_from_json

    async def scenario(world: World) -> None:
        await fill(world, 10, {4})
        bundle = await export(world)  # checkpoints 4 and 10, each anchored
        keys = keys_from_json(zipfile.ZipFile(io.BytesIO(bundle)).read("keys.json"))
        pinned = verify_bundle(_Zip(bundle), trusted=keys)
        assert pinned.ok and pinned.tree_size == 10 and pinned.warnings == []
        names = zipfile.ZipFile(io.BytesIO(bundle)).namelist()
        stripped = replace_files(
            bundle, {n: None for n in names if n.startswith(("checkpoints/", "anchors/"))}
        )
        verdict = verify_bundle(_Zip(stripped), trusted=keys)
        assert not verdict.ok and "no signed checkpoint" in (verdict.reason or "")
        unanchored = replace_files(bundle, {f"anchors/{10:020d}.note": None})
        verdict = verify_bundle(_Zip(unanchored), trusted=keys)
        assert not verdict.ok and "checkpoint 10 has no anchor" in (verdict.reason or "")
        # cut back to checkpoint 4, manifest and all: only a checkpoint pinned from the anchor
        # sink tells it from an older export
        archive = zipfile.ZipFile(io.BytesIO(bundle))
        manifest = json.loads(archive.read("manifest.json"))
        lines = archive.read(RECORDS).splitlines()[:4]
        head = {"seq": 3, "hash": json.loads(lines[3])["hash"]}
        manifest |= {"records": 4, "head": head, "checkpoints": 1}
        cut = replace_files(
            bundle,
            {
                RECORDS: b"\n".join(lines) + b"\n",
                "manifest.json": json.dumps(manifest).encode(),
                f"checkpoints/{10:020d}.note": None,
                f"checkpoints/{10:020d}.json": None,
                f"anchors/{10:020d}.note": None,
            },
        )
        assert verify_bundle(_Zip(cut), trusted=keys).ok  # alone it looks like an older export
        note = (await world.checkpoints.get(CHAIN, 10)).note.encode()  # type: ignore[union-attr]
        verdict = verify_bundle(_Zip(cut), trusted=keys, pinned=[note])
        assert not verdict.ok and verdict.first_bad_seq == 4
        assert "checkpoint 10" in (verdict.reason or "")

    run(scenario)


def test_a_bundle_holds_its_own_files_once_and_nothing_else() -> None:
    async def scenario(world: World) -> None:
        await fill(world, 3, set())
        bundle = await export(world)
        for extra in ("notes.txt", "checkpoints/².note", "../escape", "anchors/1.note"):
            verdict = offline(_with_file(bundle, extra))
            assert not verdict.ok and "no part of a bundle" in (verdict.reason or ""), extra
        twice = _with_file(bundle, "keys.json")
        assert "twice" in (offline(twice).reason or "")
        uncovered = await _append_uncovered(world)
        verdict = offline(uncovered)
        assert not verdict.ok and "follow the last signed checkpoint" in (verdict.reason or "")

    run(scenario)


def _with_file(data: bytes, name: str) -> bytes:
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a") as archive:
        with pytest.warns(UserWarning) if name in archive.namelist() else _nothing():
            archive.writestr(name, b"{}")
    return out.getvalue()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


async def _append_uncovered(world: World) -> bytes:
    """A bundle with a record after its last checkpoint (as an older exporter could write)."""
    await world.audit.append([entry(50)])
    data, _, _ = await world.proofs._bundle(CHAIN)
    return data


def test_a_bundle_keeps_checkpoints_anchors_and_their_records_in_step() -> None:
    async def scenario(world: World) -> None:
        await fill(world, 6, {3})
        bundle = await export(world)  # checkpoints 3 and 6
        orphan = replace_files(bundle, {f"checkpoints/{6:020d}.note": None})
        assert "anchor 6 has no checkpoint" in (offline(orphan).reason or "")
        described = replace_files(
            bundle, {f"checkpoints/{3:020d}.note": None, f"anchors/{3:020d}.note": None}
        )
        assert "does not hold" in (offline(described).reason or "")
        bare = replace_files(bundle, {f"checkpoints/{3:020d}.json": None})
        assert "has no checkpoints/" in (offline(bare).reason or "")
        archive = zipfile.ZipFile(io.BytesIO(bundle))
        manifest = json.loads(archive.read("manifest.json")) | {"checkpoints": 7}
        miscounted = replace_files(bundle, {"manifest.json": json.dumps(manifest).encode()})
        assert "lists 7 checkpoints" in (offline(miscounted).reason or "")
        # re-zipped by hand (folders as entries of their own): still the same bundle
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as rezipped:
            rezipped.writestr("checkpoints/", b"")
            rezipped.writestr("anchors/", b"")
            for name in archive.namelist():
                rezipped.writestr(name, archive.read(name))
        assert offline(out.getvalue()).ok

    run(scenario)


def test_the_key_service_is_asked_for_the_checkpoint_key_once_per_process() -> None:
    async def scenario(world: World) -> None:
        keys = world.checkpoints.keys
        asked: list[str] = []
        create, public = keys.create_signing_key, keys.public_key

        async def counted_create(key_id: str) -> PublicKey:
            asked.append("create")
            return await create(key_id)

        async def counted_public(key_id: str, version: int | None = None) -> PublicKey:
            asked.append("public")
            return await public(key_id, version)

        keys.create_signing_key = counted_create  # type: ignore[method-assign]
        keys.public_key = counted_public  # type: ignore[method-assign]
        await fill(world, 6, {2, 4, 6})
        assert asked.count("create") == 1 and asked.count("public") == 0
        assert (await world.proofs.verify(CHAIN))["ok"] is True

    run(scenario)
