"""Signed, anchored checkpoints of the audit chains.

A checkpoint of a chain at tree size N is the RFC 6962 Merkle root over the leaf hashes of its
records 0…N-1 (leaf index = `seq`), written as a C2SP signed note (origin line, tree size,
base64 root) and signed by the region's checkpoint key in the KeyService (Ed25519 where the key
service offers it, else ECDSA P-256 with SHA-256; the algorithm is kept with the public key).

Each checkpoint goes to two places: the chain's `audit_checkpoints` collection beside its blocks,
and an *anchor sink* outside the platform's own store — a Cloud Storage bucket with a locked
retention policy in Google Cloud, the directory CFP_AUDIT_ANCHOR_DIR locally — together with an
RFC 3161 timestamp token when a Time-Stamp Authority is configured. Whoever rewrites the store
cannot rewrite the anchors: a chain shorter than its last anchored size, or a record that no
longer hashes to an anchored root, is caught by the verifier.

Checkpoints are made on a schedule (every `interval` seconds for every chain with new records)
and as soon as `every` records have accumulated on a chain since its last one. Making one reads
only the records since the previous checkpoint: the previous one keeps the compact range (the
roots of the perfect subtrees covering its leaves), so the new root costs O(new + log N).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cfp.domain.audit import (
    CHECKPOINT_KEY,
    SYSTEM_CHAIN,
    ChainHead,
    ChainVerifier,
    anchor_name,
    chain_paths,
    checkpoint_key_name,
    checkpoint_origin,
    record_time,
    tenant_chain,
)
from cfp.domain.documents import CreateDoc, SetDoc, raw_id
from cfp.domain.merkle import CompactRange
from cfp.domain.notes import (
    Checkpoint,
    NoteError,
    key_id,
    signature_line,
    signed_note,
    verifier_key,
    verify_checkpoint,
)
from cfp.errors import CfpError, Conflict, NotFound
from cfp.ports import BlobStore, DocumentStore, KeyService, PublicKey
from cfp.services.audit import AuditLog, ChainDamaged
from cfp.services.paging import every

log = logging.getLogger("cfp.audit")

DEFAULT_INTERVAL = 60.0  # seconds between scheduled checkpoints of a chain with new records
DEFAULT_EVERY = 1000  # records since the last checkpoint that make one at once
KEYS_COLLECTION = "system/platform/audit_keys"


_SIZE = re.compile(r"[0-9]{20}")
_KEY_FIELDS = {"name", "key_id", "version", "algorithm", "public_key_pem", "note_key_id", "vkey"}


def _is_key_entry(entry: dict[str, Any]) -> bool:
    return (
        set(entry) == _KEY_FIELDS
        and isinstance(entry["version"], int)
        and entry["algorithm"] in ("ed25519", "ecdsa-p256-sha256")
        and all(isinstance(entry[k], str) for k in _KEY_FIELDS - {"version"})
    )


class TimestampClient:
    """What the checkpointer needs of a Time-Stamp Authority (cfp.adapters.tsa)."""

    async def timestamp(self, data: bytes) -> bytes:  # pragma: no cover - a protocol
        raise NotImplementedError


class MemoryAnchors:
    """Anchors kept in memory: for a control plane built without a sink (offline tools)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    async def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> None:
        self.blobs[key] = bytes(data)

    async def create(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> None:
        if key in self.blobs:
            raise Conflict(f"anchor {key!r} exists")
        self.blobs[key] = bytes(data)

    async def get(self, key: str) -> bytes:
        if key not in self.blobs:
            raise NotFound(f"no anchor {key!r}")
        return self.blobs[key]

    async def delete(self, key: str) -> None:
        self.blobs.pop(key, None)

    async def list(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.blobs if k.startswith(prefix))


class AnchorSink:
    """Write-once storage outside the platform's store (a retention-locked bucket; a local
    directory beside the data dir). An anchor is never replaced: writing other bytes under an
    existing name is a Conflict, writing the same bytes again is harmless."""

    def __init__(
        self,
        blobs: BlobStore,
        *,
        location: str,
        check: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.blobs = blobs
        self.location = location  # gs://bucket or file:///dir, for people and for records
        self._check = check  # that the sink really is write-once (a locked retention policy)

    async def put(self, name: str, data: bytes, *, content_type: str = "text/plain") -> str:
        """Store `data` as anchor `name` once; returns where it is."""
        if self._check is not None:
            await self._check()  # raises while the sink is not fit; passes once, then skipped
            self._check = None
        try:
            await self.blobs.create(name, data, content_type=content_type)
        except Conflict:
            if await self.get(name) != data:  # the same bytes again are harmless
                raise Conflict("an anchor is never replaced", details={"anchor": name}) from None
        return self.ref(name)

    async def get(self, name: str) -> bytes | None:
        try:
            return await self.blobs.get(name)
        except NotFound:
            return None

    async def list(self, prefix: str) -> list[str]:
        return await self.blobs.list(prefix)

    def ref(self, name: str) -> str:
        return f"{self.location.rstrip('/')}/{name}"


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A chain's checkpoint as stored (and as `GET /v1/audit/checkpoints` lists it)."""

    chain: str
    size: int
    root: str  # hex
    note: str
    origin: str
    key: dict[str, Any]  # {name, key_id, version, algorithm}
    head: ChainHead
    range: dict[str, Any]  # the compact range at `size`
    created_at: str
    anchors: dict[str, str]  # {"note": ref, "timestamp": ref}
    timestamp_error: str | None = None

    def to_document(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "size": self.size,
            "root": self.root,
            "note": self.note,
            "origin": self.origin,
            "key": self.key,
            "head": self.head.to_dict(),
            "range": self.range,
            "created_at": self.created_at,
            "anchors": self.anchors,
            **({"timestamp_error": self.timestamp_error} if self.timestamp_error else {}),
        }

    @classmethod
    def from_document(cls, data: dict[str, Any]) -> StoredCheckpoint:
        try:
            return cls(
                chain=data["chain"],
                size=int(data["size"]),
                root=data["root"],
                note=data["note"],
                origin=data["origin"],
                key=dict(data["key"]),
                head=ChainHead.from_dict(data["head"]),
                range=dict(data["range"]),
                created_at=data["created_at"],
                anchors=dict(data.get("anchors") or {}),
                timestamp_error=data.get("timestamp_error"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ChainDamaged(f"a stored checkpoint is malformed: {exc}") from exc

    def public(self) -> dict[str, Any]:
        """The checkpoint as the API shows it (without its compact range)."""
        data = self.to_document()
        data.pop("range")
        return data


class Checkpointer:
    """Makes, stores, anchors and lists the signed checkpoints of the audit chains."""

    def __init__(
        self,
        documents: DocumentStore,
        audit: AuditLog,
        keys: KeyService,
        anchors: AnchorSink,
        *,
        region: str,
        tsa: TimestampClient | None = None,
        interval: float = DEFAULT_INTERVAL,
        every: int = DEFAULT_EVERY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.documents = documents
        self.audit = audit
        self.keys = keys
        self.anchors = anchors
        self.region = region
        self.tsa = tsa
        self.interval = interval
        self.every = every
        self.clock = clock
        self.key_name = checkpoint_key_name(region)
        self._sizes: dict[str, int] = {}  # chain → size of its last checkpoint (this process)
        self._locks: dict[str, asyncio.Lock] = {}
        self._pending: set[asyncio.Task[Any]] = set()
        self._loading: set[str] = set()
        self._catching_up: set[str] = set()
        self._anchored: dict[str, int] = {}  # chain → largest anchored size known here
        self._current: PublicKey | None = None  # the signing key's current version
        self._public_keys: dict[int, PublicKey] = {}  # by version
        self._registered: set[str] = set()  # key documents known to be stored
        audit.on_append(self._appended)

    def origin(self, chain: str) -> str:
        """The signed-note origin of `chain`'s checkpoints."""
        return checkpoint_origin(self.region, chain)

    # -- making them ---------------------------------------------------------------------------

    async def checkpoint(self, chain: str) -> StoredCheckpoint | None:
        """A checkpoint of `chain` at its current head, if it has records since its last one.
        Refuses (ChainDamaged) to sign over records that do not verify."""
        lock = self._locks.setdefault(chain, asyncio.Lock())
        async with lock:
            return await self._checkpoint(chain)

    async def checkpoint_all(self) -> list[StoredCheckpoint]:
        """Checkpoint every chain with new records: the system chain and every tenant's."""
        made: list[StoredCheckpoint] = []
        for chain in await self.chains():
            try:
                done = await self.checkpoint(chain)
            except Exception as exc:  # one chain's trouble never stops the others'
                log.error("audit chain %s not checkpointed: %s", chain, exc)
                continue
            if done is not None:
                made.append(done)
        return made

    async def run(self) -> None:
        """Checkpoint every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.checkpoint_all()
            except Exception:  # the next round tries again; the loop must not die
                log.exception("scheduled audit checkpoints failed")

    async def chains(self) -> list[str]:
        """Every chain there is: `system` and one per tenant (deleted tenants included)."""
        tenants = [
            tenant_chain(raw_id(doc["_id"])) async for doc in every(self.documents, "tenants")
        ]
        return [SYSTEM_CHAIN, *tenants]

    def _appended(self, chain: str, seq: int) -> None:
        known = self._sizes.get(chain)
        if known is None:
            if chain not in self._loading:  # first append seen here: read its last checkpoint
                self._loading.add(chain)
                self._spawn(self._learn(chain))
        elif seq + 1 - known >= self.every:
            self._kick(chain)

    async def _learn(self, chain: str) -> None:
        try:
            latest = await self.latest(chain)
            self._sizes.setdefault(chain, latest.size if latest else 0)
        finally:
            self._loading.discard(chain)
        await self._catch_up(chain)

    def _kick(self, chain: str) -> None:
        if chain not in self._catching_up:
            self._spawn(self._catch_up(chain))

    async def _catch_up(self, chain: str) -> None:
        """Checkpoint `chain` until fewer than `every` records follow its last checkpoint
        (appends made while one is being signed are caught by the next round)."""
        self._catching_up.add(chain)
        try:
            while True:
                head = await self.audit.head(chain)
                size = self._sizes.get(chain, 0)
                if head is None or head.seq + 1 - size < self.every:
                    return
                if await self.checkpoint(chain) is None:
                    return
        finally:
            self._catching_up.discard(chain)

    def _spawn(self, work: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(work)
        except RuntimeError:  # no loop: nobody to run it; the schedule will
            work.close()
            return
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("audit checkpoint failed: %s", task.exception())

    async def close(self) -> None:
        """Wait for checkpoints under way (the schedule's loop is the caller's to cancel)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _checkpoint(self, chain: str) -> StoredCheckpoint | None:
        paths = chain_paths(chain)
        head = await self.audit.head(chain)
        last = await self.latest(chain)
        size = last.size if last else 0
        if head is None or head.seq + 1 <= size:
            if last:
                self._sizes[chain] = last.size
            return None
        await self._check_anchored(chain, last)
        compact = await self._trusted_range(chain, last)
        verifier = ChainVerifier(chain, start=last.head if last else None)
        async for document in self.audit.blocks(chain, size):
            if document.get("seq", -1) > head.seq:
                break  # appended since the head was read: the next checkpoint's
            if not verifier.feed(document):
                break
            assert verifier.last_leaf is not None
            compact.append(verifier.last_leaf)
        verdict = verifier.finish(head)
        if not verdict.ok:
            raise ChainDamaged(
                f"audit chain {chain} fails verification at record {verdict.first_bad_seq}: "
                f"{verdict.reason}; no checkpoint is signed over it",
                details={"chain": chain, "seq": verdict.first_bad_seq},
            )
        new_size = head.seq + 1
        root = compact.root()
        origin = self.origin(chain)
        body = Checkpoint(origin, new_size, root).body()
        public = await self.signing_key()
        signature = await self.keys.sign(CHECKPOINT_KEY, body)
        if signature.version != public.version:
            public = await self.register_key(signature.version)
        kid = key_id(self.key_name, public.algorithm, public.pem)
        note = signed_note(body, [signature_line(self.key_name, kid, signature.value)])
        anchors = {
            "note": await self.anchors.put(
                anchor_name(chain, new_size, "note"), note, content_type="text/plain"
            )
        }
        self._anchored[chain] = max(new_size, self._anchored.get(chain, 0))
        timestamp_error = None
        if self.tsa is not None:
            try:
                token = await self.tsa.timestamp(note)
                anchors["timestamp"] = await self.anchors.put(
                    anchor_name(chain, new_size, "tsr"),
                    token,
                    content_type="application/timestamp-reply",
                )
            except Exception as exc:  # the checkpoint stands; the token is missing, and says so
                timestamp_error = f"{type(exc).__name__}: {exc}"
                log.error("timestamp of checkpoint %s/%d failed: %s", chain, new_size, exc)
        stored = StoredCheckpoint(
            chain=chain,
            size=new_size,
            root=root.hex(),
            note=note.decode(),
            origin=origin,
            key={
                "name": self.key_name,
                "key_id": public.key_id,
                "version": public.version,
                "algorithm": public.algorithm,
            },
            head=verdict.head or head,
            range=compact.to_json(),
            created_at=record_time(self.clock()),
            anchors=anchors,
            timestamp_error=timestamp_error,
        )
        try:
            await self.documents.apply(
                [CreateDoc(paths.checkpoint(new_size), stored.to_document())]
            )
        except Conflict:  # another process checkpointed the same size first
            existing = await self.get(chain, new_size)
            if existing is None:
                raise
            stored = existing
        self._sizes[chain] = new_size
        return stored

    async def _check_anchored(self, chain: str, last: StoredCheckpoint | None) -> None:
        """The store's latest checkpoint is the latest anchored one: a store that lost (or had
        removed) checkpoints the anchor sink holds would have the next one signed over whatever
        history it now holds. The sink is listed once per process and chain; after that this
        process knows what it anchored, and a later checkpoint of another process is in the
        store, where it is checked against its own anchor."""
        anchored = self._anchored.get(chain)
        if anchored is None:
            sizes = [size for size, _ in await self._anchor_names(chain)]
            anchored = self._anchored[chain] = max(sizes, default=0)
        size = last.size if last else 0
        if size < anchored:
            raise ChainDamaged(
                f"audit chain {chain}: checkpoint {anchored} is anchored at "
                f"{self.anchors.location} but the store's latest is {size or 'none'}; no "
                "checkpoint is signed until the store is restored",
                details={"chain": chain, "anchored": anchored, "stored": size},
            )

    async def _trusted_range(self, chain: str, last: StoredCheckpoint | None) -> CompactRange:
        """The compact range to extend: the previous checkpoint's, once its note is the
        anchored one, its signature is this platform's, and the range gives the signed root."""
        if last is None:
            return CompactRange()
        problem = None
        anchor = await self.anchors.get(anchor_name(chain, last.size, "note"))
        try:
            compact = CompactRange.from_json(last.range)
        except ValueError:
            compact = None
        if anchor is None or anchor.decode(errors="replace") != last.note:
            problem = "differs from its anchor"
        elif not await self._signed_here(chain, last):
            problem = "is not signed by this platform's checkpoint key"
        elif compact is None or compact.size != last.size or compact.root().hex() != last.root:
            problem = "keeps a compact range that does not give its signed root"
        elif last.head.seq != last.size - 1:
            problem = "names a head that is not its last record"
        if problem:
            raise ChainDamaged(
                f"audit chain {chain}: checkpoint {last.size} {problem}; no checkpoint is "
                "signed over it",
                details={"chain": chain, "checkpoint": last.size},
            )
        assert compact is not None
        return compact

    async def _signed_here(self, chain: str, stored: StoredCheckpoint) -> bool:
        try:
            public = await self.public_key(int(stored.key.get("version", 0)))
            checkpoint = verify_checkpoint(
                stored.note.encode(), self.key_name, public, origin=self.origin(chain)
            )
        except (NoteError, ValueError, TypeError, CfpError):
            return False
        return checkpoint.size == stored.size and checkpoint.root_hash.hex() == stored.root

    async def _anchor_names(self, chain: str) -> list[tuple[int, str]]:
        """(size, name) of `chain`'s anchored notes, smallest first."""
        found = []
        for name in await self.anchors.list(f"{chain}/"):
            stem, _, suffix = name.rpartition("/")[2].partition(".")
            if suffix == "note" and _SIZE.fullmatch(stem):
                found.append((int(stem), name))
        return sorted(found)

    # -- keys ------------------------------------------------------------------------------

    async def signing_key(self) -> PublicKey:
        """The checkpoint key's current public key, created (and registered) on first use; then
        known here, a rotation being noticed by the version of the next signature."""
        if self._current is None:
            self._current = await self.keys.create_signing_key(CHECKPOINT_KEY)
            await self._remember(self._current)
        return self._current

    async def register_key(self, version: int) -> PublicKey:
        """The public key of `version`, made the current one and registered."""
        self._current = await self.public_key(version)
        await self._remember(self._current)
        return self._current

    async def public_key(self, version: int) -> PublicKey:
        """A version's public key, asked of the key service once per process."""
        if version not in self._public_keys:
            self._public_keys[version] = await self.keys.public_key(CHECKPOINT_KEY, version)
        return self._public_keys[version]

    async def _remember(self, public: PublicKey) -> None:
        """Keep every version's public key in the store and at the anchor sink: verifiers need
        them long after a rotation (and a destroyed key no longer hands them out)."""
        self._public_keys[public.version] = public
        path = f"{KEYS_COLLECTION}/{public.key_id}-v{public.version}"
        if path in self._registered or await self.documents.get(path) is not None:
            self._registered.add(path)
            return
        entry = self.key_entry(public)
        await self.anchors.put(
            f"keys/{public.key_id}-v{public.version}.json",
            json.dumps(entry, sort_keys=True, indent=2).encode(),
            content_type="application/json",
        )
        with contextlib.suppress(Conflict):
            await self.documents.apply([SetDoc(path, entry)])
        self._registered.add(path)

    def key_entry(self, public: PublicKey) -> dict[str, Any]:
        kid = key_id(self.key_name, public.algorithm, public.pem)
        return {
            "name": self.key_name,
            "key_id": public.key_id,
            "version": public.version,
            "algorithm": public.algorithm,
            "public_key_pem": public.pem,
            "note_key_id": kid.hex(),
            "vkey": verifier_key(self.key_name, public),
        }

    async def keys_known(self) -> list[dict[str, Any]]:
        """Every checkpoint key version ever used, oldest first."""
        entries: list[dict[str, Any]] = []
        async for doc in every(self.documents, KEYS_COLLECTION):
            entry = {k: v for k, v in doc.items() if k != "_id"}
            if _is_key_entry(entry):
                entries.append(entry)
            else:  # not a key this platform wrote: never trusted, never a crash
                log.error("ignoring a malformed audit key document %s", doc.get("_id"))
        return sorted(entries, key=lambda e: (e["key_id"], e["version"]))

    # -- reading them -------------------------------------------------------------------------

    async def latest(self, chain: str) -> StoredCheckpoint | None:
        page = await self.documents.list(
            chain_paths(chain).checkpoints, order_by="size", descending=True, limit=1
        )
        return StoredCheckpoint.from_document(page.items[0]) if page.items else None

    async def get(self, chain: str, size: int) -> StoredCheckpoint | None:
        document = await self.documents.get(chain_paths(chain).checkpoint(size))
        return None if document is None else StoredCheckpoint.from_document(document)

    async def list(
        self, chain: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[StoredCheckpoint], str | None]:
        """One page of `chain`'s checkpoints, newest first."""
        page = await self.documents.list(
            chain_paths(chain).checkpoints,
            order_by="size",
            descending=True,
            limit=limit,
            cursor=cursor,
        )
        return [StoredCheckpoint.from_document(d) for d in page.items], page.next_cursor

    async def all(self, chain: str) -> list[StoredCheckpoint]:
        """Every checkpoint of `chain`, smallest first."""
        return [
            StoredCheckpoint.from_document(d)
            async for d in every(self.documents, chain_paths(chain).checkpoints, order_by="size")
        ]

    async def anchored(self, chain: str) -> list[tuple[int, str, bytes | None]]:
        """The anchored checkpoints of `chain`: (size, note text, timestamp token or None),
        smallest first, as the anchor sink holds them."""
        found: list[tuple[int, str, bytes | None]] = []
        for size, name in await self._anchor_names(chain):
            note = await self.anchors.get(name)
            if note is None:
                continue
            token = await self.anchors.get(anchor_name(chain, size, "tsr"))
            found.append((size, note.decode(errors="replace"), token))
        return sorted(found, key=lambda item: item[0])
