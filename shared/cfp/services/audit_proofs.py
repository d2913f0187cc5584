"""What an auditor asks of a chain: verification against its signed and anchored checkpoints,
RFC 6962 inclusion and consistency proofs, and the offline-verifiable export bundle
(`cfp.domain.bundles`).

Proofs need every leaf hash up to the tree size asked about. They are read once from the
blocks (each checked against the hash chain on the way) and kept per chain in this process:
the chain only grows, so later reads add the new records alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import secrets
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import rfc8785

from cfp.domain.audit import (
    DERIVED_FIELDS,
    HASH_FIELDS,
    INDEX_FIELDS,
    ZERO_HASH,
    AuditEntry,
    ChainHead,
    ChainVerifier,
    chain_paths,
    record_time,
)
from cfp.domain.bundles import (
    FORMAT,
    KEYS,
    MANIFEST,
    RECORDS,
    anchor_file,
    checkpoint_file,
    record_line,
)
from cfp.domain.documents import CreateDoc
from cfp.domain.merkle import CompactRange, MerkleTree
from cfp.domain.notes import Checkpoint, NoteError, parse_signed_note, verify_checkpoint
from cfp.errors import BadRequest, NotFound
from cfp.ports import BlobStore, DocumentStore, PublicKey
from cfp.services.audit import AuditLog, ChainDamaged
from cfp.services.checkpoints import Checkpointer


@dataclass
class _Leaves:
    tree: MerkleTree = field(default_factory=MerkleTree)
    head: ChainHead | None = None


@dataclass(frozen=True, slots=True)
class Export:
    """An export bundle stored as an artifact."""

    id: str
    chain: str
    key: str  # the blob key of the zip
    size: int
    sha256: str
    records: int
    checkpoints: int
    created_at: str

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "chain": self.chain,
            "size": self.size,
            "sha256": self.sha256,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "created_at": self.created_at,
            "download": f"/v1/audit/exports/{self.id}",
        }


class AuditProofs:
    """Verification, proofs and exports over the audit log and its checkpoints."""

    def __init__(
        self,
        documents: DocumentStore,
        audit: AuditLog,
        checkpoints: Checkpointer,
        blobs: BlobStore | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.documents = documents
        self.audit = audit
        self.checkpoints = checkpoints
        self.blobs = blobs
        self.clock = clock
        self._leaves: dict[str, _Leaves] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # -- proofs ---------------------------------------------------------------------------------

    async def tree(self, chain: str, size: int) -> MerkleTree:
        """The Merkle tree of at least records 0…size-1, each block checked against the chain
        as it was read."""
        cached = self._leaves.setdefault(chain, _Leaves())
        async with self._locks.setdefault(chain, asyncio.Lock()):
            if cached.tree.size < size:
                verifier = ChainVerifier(chain, start=cached.head)
                first = cached.tree.size
                async for document in self.audit.blocks(chain, first):
                    if not verifier.feed(document):
                        bad = verifier.finish(None)
                        raise ChainDamaged(
                            f"record {bad.first_bad_seq} of {chain} does not verify: {bad.reason}",
                            details={"chain": chain, "seq": bad.first_bad_seq},
                        )
                    assert verifier.last_leaf is not None
                    cached.tree.append(verifier.last_leaf)
                    cached.head = verifier.last
                    if cached.tree.size >= size:
                        break
        if cached.tree.size < size:
            raise NotFound(
                f"the chain has {cached.tree.size} records, fewer than the tree size {size}",
                details={"chain": chain, "tree_size": size, "records": cached.tree.size},
            )
        return cached.tree

    async def inclusion(self, chain: str, seq: int, tree_size: int) -> dict[str, Any]:
        """An RFC 6962 inclusion proof of record `seq` in the tree of size `tree_size`."""
        if not 0 <= seq < tree_size:
            raise BadRequest(
                "seq is at least 0 and below tree_size",
                details={"seq": seq, "tree_size": tree_size},
            )
        tree = await self.tree(chain, tree_size)
        proof = tree.inclusion_proof(seq, tree_size)
        return {
            "chain": chain,
            "seq": seq,
            "leaf_index": seq,
            "tree_size": tree_size,
            "leaf_hash": tree.leaf(seq).hex(),
            "proof": [h.hex() for h in proof],
            "root": tree.root(tree_size).hex(),
            "checkpoint": await self._checkpoint_note(chain, tree_size),
        }

    async def consistency(self, chain: str, first: int, second: int) -> dict[str, Any]:
        """An RFC 6962 consistency proof between the trees of sizes `first` ≤ `second`."""
        if not 0 < first <= second:
            raise BadRequest(
                "first is at least 1 and at most second",
                details={"first": first, "second": second},
            )
        tree = await self.tree(chain, second)
        proof = tree.consistency_proof(first, second)
        return {
            "chain": chain,
            "first": first,
            "second": second,
            "first_root": tree.root(first).hex(),
            "second_root": tree.root(second).hex(),
            "proof": [h.hex() for h in proof],
            "first_checkpoint": await self._checkpoint_note(chain, first),
            "second_checkpoint": await self._checkpoint_note(chain, second),
        }

    async def _checkpoint_note(self, chain: str, size: int) -> str | None:
        stored = await self.checkpoints.get(chain, size)
        return None if stored is None else stored.note

    # -- verification ----------------------------------------------------------------------

    async def verify(
        self, chain: str, *, from_seq: int | None = None, to_seq: int | None = None
    ) -> dict[str, Any]:
        """Check records `from_seq`…`to_seq` (default: all) of `chain`: the hash chain, the
        Merkle roots its checkpoints signed, their signatures, their anchors, and that the chain
        reaches every anchored size. `{ok, checked, first_bad_seq, reason, latest_checkpoint}`."""
        if (from_seq is not None and from_seq < 0) or (to_seq is not None and to_seq < 0):
            raise BadRequest("from_seq and to_seq are at least 0")
        if from_seq is not None and to_seq is not None and to_seq < from_seq:
            raise BadRequest(
                f"to_seq ({to_seq}) is below from_seq ({from_seq})",
                details={"from_seq": from_seq, "to_seq": to_seq},
            )
        start = from_seq or 0
        outcome = await self._verify(chain, start, to_seq)
        try:
            latest = await self.checkpoints.latest(chain)
        except ChainDamaged:  # the verdict above says what is wrong with it
            latest = None
        outcome["latest_checkpoint"] = None if latest is None else latest.public()
        return outcome

    async def _verify(self, chain: str, start: int, to_seq: int | None) -> dict[str, Any]:
        paths = chain_paths(chain)
        # The head first: records appended while the blocks are read are then past it, and
        # are checked against the head as it is at the end (below).
        head_before = await self.documents.get(paths.head)
        last_seq = _seq(head_before)
        if start and last_seq is not None and start > last_seq:
            raise BadRequest(
                f"from_seq {start} is beyond the chain's last record {last_seq}",
                details={"from_seq": start, "last_seq": last_seq},
            )

        def bad(seq: int | None, reason: str, checked: int = 0) -> dict[str, Any]:
            return {"ok": False, "checked": checked, "first_bad_seq": seq, "reason": reason}

        # Checkpoints and anchors first: each signature, each anchor equal to its checkpoint,
        # each checkpoint anchored.
        keys = await self._keys()
        try:
            stored = await self.checkpoints.all(chain)
        except ChainDamaged as exc:
            return bad(None, exc.message)
        anchored = await self.checkpoints.anchored(chain)
        roots: dict[int, bytes] = {}
        notes = {c.size: c.note for c in stored}
        for checkpoint in stored:
            problem = self._check_note(chain, checkpoint.note, checkpoint.size, keys)
            if problem:
                return bad(*problem)
            if checkpoint.root != _note_root(checkpoint.note).hex():
                return bad(
                    checkpoint.size - 1,
                    f"checkpoint {checkpoint.size}'s root differs from its note",
                )
            roots[checkpoint.size] = bytes.fromhex(checkpoint.root)
        anchored_sizes = {size for size, _, _ in anchored}
        for size, note, _token in anchored:
            problem = self._check_note(chain, note, size, keys)
            if problem:
                return bad(*problem)
            if size in notes and notes[size] != note:
                return bad(size - 1, f"checkpoint {size} differs from its anchor")
            roots.setdefault(size, _note_root(note))
        for checkpoint in stored:
            if checkpoint.size not in anchored_sizes:
                where = self.checkpoints.anchors.location
                return bad(
                    checkpoint.size - 1, f"checkpoint {checkpoint.size} has no anchor at {where}"
                )

        # Start from the largest checkpoint at or before `start`, whose compact range must give
        # its signed root. A range is read on, without being counted, to the first checkpoint
        # after it, so that a rewrite the range holds is caught by that checkpoint's root.
        base = max((c for c in stored if c.size <= start), key=lambda c: c.size, default=None)
        compact = CompactRange()
        if base is not None:
            try:
                compact = CompactRange.from_json(base.range)
            except ValueError:
                compact = CompactRange(0)
            if compact.size != base.size or compact.root().hex() != base.root:
                return bad(
                    base.size - 1, f"checkpoint {base.size}'s stored range does not give its root"
                )
        later = [size for size in roots if to_seq is not None and size > to_seq + 1]
        stop = None if to_seq is None else (min(later) - 1 if later else to_seq)
        verifier = ChainVerifier(chain, start=base.head if base else None)
        checked = 0
        covered = base.size if base else 0  # records 0…covered-1 match a signed root
        async for document in self.audit.blocks(chain, compact.size):
            seq = document.get("seq")
            if stop is not None and isinstance(seq, int) and seq > stop:
                break
            if not verifier.feed(document):
                break
            assert verifier.last_leaf is not None
            compact.append(verifier.last_leaf)
            if compact.size > start and (to_seq is None or compact.size - 1 <= to_seq):
                checked += 1
            expected = roots.get(compact.size)
            if expected is not None:
                if compact.root() != expected:
                    reason = (
                        f"records {covered}…{compact.size - 1} do not hash to the root "
                        f"checkpoint {compact.size} signed"
                    )
                    return bad(covered, reason, checked)
                covered = compact.size
        whole = stop is None or (last_seq is not None and stop >= last_seq)
        if whole:
            head: Any = head_before
            if verifier.last is not None and (last_seq is None or verifier.last.seq > last_seq):
                head = await self.documents.get(paths.head)  # appended while reading
            verdict = verifier.finish(head)
        else:
            verdict = verifier.finish(verifier.last)
        if not verdict.ok:
            return bad(verdict.first_bad_seq, verdict.reason or "failed", checked)
        if whole and roots and max(roots) > compact.size:
            largest = max(roots)
            what = "anchored" if largest in anchored_sizes else "signed"
            reason = (
                f"record {compact.size} is missing: the chain ends after {compact.size} "
                f"records but checkpoint {largest} is {what}"
            )
            return bad(compact.size, reason, checked)
        return {"ok": True, "checked": checked, "first_bad_seq": None, "reason": None}

    def _check_note(
        self, chain: str, note: str, size: int, keys: list[tuple[str, PublicKey]]
    ) -> tuple[int, str] | None:
        origin = self.checkpoints.origin(chain)
        reasons: list[str] = []
        for name, public in keys:
            try:
                checkpoint = verify_checkpoint(note.encode(), name, public, origin=origin)
            except NoteError as exc:
                reasons.append(str(exc))
                continue
            if checkpoint.size != size:
                return size - 1, f"checkpoint {size} holds tree size {checkpoint.size}"
            return None
        return max(size - 1, 0), f"checkpoint {size}'s signature: {'; '.join(reasons) or 'no key'}"

    async def _keys(self) -> list[tuple[str, PublicKey]]:
        return [
            (
                entry["name"],
                PublicKey(
                    entry["key_id"], entry["version"], entry["algorithm"], entry["public_key_pem"]
                ),
            )
            for entry in await self.checkpoints.keys_known()
        ]

    # -- export -----------------------------------------------------------------------------

    async def export(self, chain: str, entry: AuditEntry) -> Export:
        """Record the export (`entry`, on the chain exported), then write the whole chain with
        its checkpoints, keys and anchors into a bundle stored as an artifact."""
        if self.blobs is None:
            raise BadRequest("this deployment stores no artifacts, so it cannot export")
        await self.audit.append([entry])
        # A checkpoint over everything up to the export's own record, so that every record in
        # the bundle is vouched for by a signed, anchored checkpoint. A damaged chain is
        # exported whole, as it is: the bundle's verifier names the damage.
        try:
            await self.checkpoints.checkpoint(chain)
            latest = await self.checkpoints.latest(chain)
            upto = None if latest is None else latest.size
        except ChainDamaged:
            upto = None
        export_id = f"exp_{secrets.token_hex(8)}"
        data, records, count = await self._bundle(chain, upto)
        key = f"{chain_paths(chain).root}/artifacts/audit-exports/{export_id}.zip"
        await self.blobs.put(key, data, content_type="application/zip")
        export = Export(
            id=export_id,
            chain=chain,
            key=key,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            records=records,
            checkpoints=count,
            created_at=record_time(self.clock()),
        )
        path = f"{chain_paths(chain).root}/audit_exports/{export_id}"
        await self.documents.apply([CreateDoc(path, _as_doc(export))])
        return export

    async def get_export(self, chain: str, export_id: str) -> tuple[Export, bytes]:
        document = await self.documents.get(f"{chain_paths(chain).root}/audit_exports/{export_id}")
        if document is None or self.blobs is None:
            raise NotFound(f"no audit export {export_id!r}", details={"export": export_id})
        export = Export(**{k: v for k, v in document.items() if k != "_id"})
        return export, await self.blobs.get(export.key)

    async def _bundle(self, chain: str, upto: int | None = None) -> tuple[bytes, int, int]:
        """The bundle of `chain`'s records 0…upto-1 (None: all there are) with every
        checkpoint, anchor and key."""
        buffer = io.BytesIO()
        stored = [c for c in await self.checkpoints.all(chain) if upto is None or c.size <= upto]
        anchored = await self.checkpoints.anchored(chain)
        head: dict[str, Any] | None = None
        count = 0
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            with bundle.open(RECORDS, "w") as out:
                previous = ZERO_HASH.hex()
                async for document in self.audit.blocks(chain, 0):
                    if upto is not None and count >= upto:
                        break
                    fields = {
                        k: v
                        for k, v in document.items()
                        if k not in {*HASH_FIELDS, *INDEX_FIELDS, *DERIVED_FIELDS, "_id"}
                    }
                    line = record_line(
                        int(document.get("seq", count)),
                        str(document.get("hash", "")),
                        str(document.get("prev_hash", previous)),
                        rfc8785.dumps(fields),
                    )
                    out.write(line + b"\n")
                    previous = str(document.get("hash", ""))
                    head = {
                        "seq": document.get("seq"),
                        "hash": previous,
                        "time": document.get("time"),
                    }
                    count += 1
            for checkpoint in stored:
                bundle.writestr(checkpoint_file(checkpoint.size, "note"), checkpoint.note)
                bundle.writestr(
                    checkpoint_file(checkpoint.size, "json"),
                    json.dumps(checkpoint.public(), indent=2, sort_keys=True),
                )
            for size, note, token in anchored:
                if upto is not None and size > upto:
                    continue
                bundle.writestr(anchor_file(size, "note"), note)
                if token is not None:
                    bundle.writestr(anchor_file(size, "tsr"), token)
            keys = await self.checkpoints.keys_known()
            bundle.writestr(KEYS, json.dumps(keys, indent=2, sort_keys=True))
            manifest = {
                "format": FORMAT,
                "chain": chain,
                "origin": self.checkpoints.origin(chain),
                "region": self.checkpoints.region,
                "exported_at": record_time(self.clock()),
                "records": count,
                "head": head,
                "checkpoints": len(stored),
                "anchor_sink": self.checkpoints.anchors.location,
                "verify": (
                    "cfp audit verify BUNDLE.zip --key <the anchor sink's keys/*.json> "
                    "--checkpoint <its latest note of this chain>"
                ),
            }
            bundle.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
        return buffer.getvalue(), count, len(stored)


def _as_doc(export: Export) -> dict[str, Any]:
    return {
        "id": export.id,
        "chain": export.chain,
        "key": export.key,
        "size": export.size,
        "sha256": export.sha256,
        "records": export.records,
        "checkpoints": export.checkpoints,
        "created_at": export.created_at,
    }


def _seq(head: dict[str, Any] | None) -> int | None:
    """The seq a stored head names (None: no head, or a malformed one)."""
    seq = None if head is None else head.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _note_root(note: str) -> bytes:
    """The root hash a checkpoint note's body states (its signature is checked elsewhere)."""
    body, _ = parse_signed_note(note.encode())
    return Checkpoint.parse(body).root_hash
