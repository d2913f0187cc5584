"""The audit log: appends hash-chained records in the same store transaction as the action they
record, lists them and verifies a chain.

Each chain (`system`, `tenant/{t}`) is a collection of blocks, one per record, plus a head
document `{seq, hash, time}` naming its last record. An append reads the head, builds the next
records, and applies — in one `DocumentStore.apply` with the action's own writes — a
compare-and-set of the head on its `seq` and a create of each block. Two writers that read the
same head cannot both commit: the loser's compare-and-set fails, it reads the new head and tries
again. So every chain keeps one total order, with no gap and no fork, however many processes
append; within one process, appends to a chain take turns instead of racing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from cfp.domain.audit import (
    ZERO_HASH,
    AuditEntry,
    AuditRecord,
    ChainHead,
    ChainPaths,
    ChainVerifier,
    Verification,
    block_document,
    block_id,
    chain_paths,
    public_record,
    record_time,
)
from cfp.domain.documents import (
    ABSENT,
    CompareAndSet,
    CreateDoc,
    DeleteCollection,
    Filter,
    Page,
    Write,
    parent,
)
from cfp.errors import BadRequest, CfpError, Conflict, Unavailable
from cfp.ports import DocumentStore
from cfp.services.paging import every

ATTEMPTS = 32  # appends tried while other processes keep moving the head, then Unavailable
BACKOFF_BASE = 0.005  # full-jitter exponential backoff between them, so that two processes
BACKOFF_MAX = 0.25  # that keep meeting at the head fall out of step
MAX_PAGE = 500
VERIFY_PAGE = 500
_AUDIT_COLLECTIONS = frozenset({"audit_blocks", "audit_head", "audit_checkpoints"})

TimeBound = float | datetime | str


class ChainDamaged(CfpError):
    """A chain's stored head and blocks disagree, so nothing more can be appended to it."""

    status, code = 500, "audit_chain_damaged"


class AuditLog:
    """Appends, lists and verifies audit records in a `DocumentStore`.

    `commit(writes, entries)` is how an action is recorded: the action's writes and its records
    commit together or not at all, so a failed action leaves no record and a recorded action
    always happened. (An action that fails and must still be recorded, as a failed sign-in is,
    appends its `outcome="failure"` record on its own with `append`.)
    """

    def __init__(
        self,
        documents: DocumentStore,
        *,
        clock: Callable[[], float] = time.time,
        attempts: int = ATTEMPTS,
    ) -> None:
        self.documents = documents
        self.clock = clock
        self.attempts = attempts
        self._turns: dict[str, asyncio.Lock] = {}
        self._listeners: list[Callable[[str, int], None]] = []

    def on_append(self, listener: Callable[[str, int], None]) -> None:
        """Call `listener(chain, last seq)` after each commit that appended to `chain` (the
        checkpointer counts records with it)."""
        self._listeners.append(listener)

    async def commit(self, writes: Sequence[Write], entries: Sequence[AuditEntry]) -> list[Any]:
        """Apply `writes` and append a record per entry in one transaction; returns the results
        of `writes`. A Conflict from `writes` propagates, with nothing applied or appended."""
        results, _ = await self._commit(list(writes), list(entries))
        return results

    async def append(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """Append a record per entry (in one transaction); returns the records."""
        _, records = await self._commit([], list(entries))
        return records

    async def plan(self, entries: Sequence[AuditEntry]) -> list[Write]:
        """The writes that append `entries` after the chains' current heads, for a caller that
        applies them with its own writes in one transaction: the heads' compare-and-set makes
        that transaction fail with Conflict when another append came first (read again, plan
        again). `commit` does all of this itself; this is for callers with their own retry."""
        chains: dict[str, list[AuditEntry]] = {}
        for entry in entries:
            chains.setdefault(entry.chain, []).append(entry)
        now = record_time(self.clock())
        writes: list[Write] = []
        for chain, chain_entries in chains.items():
            paths = chain_paths(chain)
            head = await self._read_head(paths)
            writes += _plan(paths, head, chain_entries, now)[0]
        return writes

    async def head(self, chain: str) -> ChainHead | None:
        """The last record of `chain` (None while it has none)."""
        return await self._read_head(chain_paths(chain))

    async def list(
        self,
        chain: str,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        oldest_first: bool = False,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """One page of `chain`'s records, newest first unless `oldest_first`.

        Filters: `actor` (actor id), `action`, `target` (`type` or `type/id`), `since`
        (inclusive) and `until` (exclusive) as epoch seconds, aware datetimes or RFC 3339.
        Items are the stored records: the record's fields (unset optional ones absent) with
        `hash` and `prev_hash`."""
        if not 1 <= limit <= MAX_PAGE:
            raise BadRequest(f"limit is 1 to {MAX_PAGE}", details={"limit": limit})
        where: list[Filter] = []
        if actor is not None:
            where.append(Filter("actor_id", "==", actor))
        if action is not None:
            where.append(Filter("action", "==", action))
        if target is not None:
            kind, has_id, ident = target.partition("/")
            where.append(Filter("target_type", "==", kind))
            if has_id:
                where.append(Filter("target_id", "==", ident))
        if since is not None:
            where.append(Filter("time", ">=", record_time(since)))
        if until is not None:
            where.append(Filter("time", "<", record_time(until)))
        # Time never goes backwards along a chain and ties fall back to the block id (the
        # zero-padded seq), so this is seq order, and the time bounds are a range of it.
        page = await self.documents.list(
            chain_paths(chain).blocks,
            where=where,
            order_by="time",
            descending=not oldest_first,
            limit=limit,
            cursor=cursor,
        )
        return Page([public_record(doc) for doc in page.items], page.next_cursor)

    async def blocks(self, chain: str, first: int = 0) -> AsyncIterator[dict[str, Any]]:
        """The stored blocks of `chain` from seq `first` on, in seq order (as stored: checking
        them is the caller's, with a ChainVerifier)."""
        where = [Filter("seq", ">=", first)] if first else []
        async for document in every(
            self.documents,
            chain_paths(chain).blocks,
            where=where,
            order_by="seq" if first else None,
        ):
            yield document

    async def verify(self, chain: str) -> Verification:
        """Check every record of `chain` and its head: the first bad seq and why, if any."""
        paths = chain_paths(chain)
        # The stored head, as it is: the verifier judges a malformed one too.
        head = await self.documents.get(paths.head)
        verifier = ChainVerifier(chain)
        cursor: str | None = None
        while True:
            page = await self.documents.list(paths.blocks, limit=VERIFY_PAGE, cursor=cursor)
            refreshed = False
            for document in page.items:
                seq = _head_seq(head)
                if not refreshed and (seq is None or document["_id"] > block_id(seq)):
                    # Appended since the head was read, or put there by someone else: a head
                    # read after this page covers every block of it appended the proper way.
                    head = await self.documents.get(paths.head)
                    refreshed = True
                if not verifier.feed(document):
                    return verifier.finish(head)
            if page.next_cursor is None:
                return verifier.finish(head)
            cursor = page.next_cursor

    # -- appending ---------------------------------------------------------------------------

    async def _commit(
        self, writes: list[Write], entries: list[AuditEntry]
    ) -> tuple[list[Any], list[AuditRecord]]:
        if not entries:
            return await self.documents.apply(writes), []
        _refuse_audit_writes(writes)
        chains: dict[str, list[AuditEntry]] = {}
        for entry in entries:
            chains.setdefault(entry.chain, []).append(entry)
        paths = {chain: chain_paths(chain) for chain in chains}
        moved: Conflict | None = None
        async with self._turn(chains):
            for attempt in range(self.attempts):
                if attempt:
                    delay = min(BACKOFF_MAX, BACKOFF_BASE * 2**attempt)
                    await asyncio.sleep(random.uniform(0, delay))
                heads = {chain: await self._read_head(paths[chain]) for chain in chains}
                now = record_time(self.clock())
                appends: list[Write] = []
                records: list[AuditRecord] = []
                for chain, chain_entries in chains.items():
                    planned = _plan(paths[chain], heads[chain], chain_entries, now)
                    appends += planned[0]
                    records += planned[1]
                try:
                    results = await self.documents.apply([*writes, *appends])
                except Conflict as exc:
                    if not await self._head_moved(exc, heads, paths):
                        raise
                    moved = exc
                    continue
                self._appended(records)
                return results[: len(writes)], records
        raise Unavailable(
            "the audit chain kept moving under concurrent appends; try again",
            details={"chains": sorted(chains), "attempts": self.attempts},
        ) from moved

    def _appended(self, records: list[AuditRecord]) -> None:
        last: dict[str, int] = {}
        for record in records:
            last[record.chain] = max(record.seq, last.get(record.chain, -1))
        for listener in self._listeners:
            for chain, seq in last.items():
                listener(chain, seq)

    async def _head_moved(
        self,
        exc: Conflict,
        heads: dict[str, ChainHead | None],
        paths: dict[str, ChainPaths],
    ) -> bool:
        """Whether `exc` came from a head another writer moved, not from the caller's writes."""
        path = exc.details.get("path") if isinstance(exc.details, dict) else None
        head_paths = {p.head for p in paths.values()}
        if path is not None and path not in head_paths:
            if any(parent(path)[0] == p.blocks for p in paths.values()):
                raise ChainDamaged(
                    "an audit record exists beyond its chain's head", details={"path": path}
                ) from exc
            return False  # the caller's own precondition
        # The head's compare-and-set failed (or the store did not say which write did): the
        # head as it is now tells whether it moved.
        for chain, seen in heads.items():
            if await self._read_head(paths[chain]) != seen:
                return True
        return False

    async def _read_head(self, paths: ChainPaths) -> ChainHead | None:
        document = await self.documents.get(paths.head)
        if document is None:
            return None
        try:
            return ChainHead.from_dict(document)
        except ValueError as exc:
            raise ChainDamaged(str(exc), details={"path": paths.head}) from exc

    @contextlib.asynccontextmanager
    async def _turn(self, chains: Iterable[str]) -> AsyncIterator[None]:
        """This process's appends to a chain take turns (sorted: no deadlock across chains)."""
        async with contextlib.AsyncExitStack() as stack:
            for chain in sorted(chains):
                await stack.enter_async_context(self._turns.setdefault(chain, asyncio.Lock()))
            yield


def _head_seq(document: dict[str, Any] | None) -> int | None:
    try:
        return None if document is None else ChainHead.from_dict(document).seq
    except ValueError:
        return None


def _plan(
    paths: ChainPaths, head: ChainHead | None, entries: list[AuditEntry], now: str
) -> tuple[list[Write], list[AuditRecord]]:
    """The writes that append `entries` after `head`: the head's compare-and-set, then a block
    per record. A record's time is never before the head's."""
    seq = 0 if head is None else head.seq + 1
    previous = ZERO_HASH if head is None else bytes.fromhex(head.hash)
    when = now if head is None else max(now, head.time)
    blocks: list[Write] = []
    records: list[AuditRecord] = []
    new_head = head
    for offset, entry in enumerate(entries):
        record = AuditRecord.of(entry, seq=seq + offset, time=when)
        document, new_head = block_document(record, previous)
        previous = bytes.fromhex(new_head.hash)
        blocks.append(CreateDoc(paths.block(record.seq), document))
        records.append(record)
    assert new_head is not None
    expected = ABSENT if head is None else head.seq
    cas = CompareAndSet(paths.head, expected, new_head.to_dict(), field="seq")
    return [cas, *blocks], records


def _refuse_audit_writes(writes: Sequence[Write]) -> None:
    """Only the log writes a chain: a caller's write into one is refused."""
    for write in writes:
        collection = write.path if isinstance(write, DeleteCollection) else parent(write.path)[0]
        if collection.rpartition("/")[2] in _AUDIT_COLLECTIONS:
            raise BadRequest(
                "audit chains are written by the audit log only", details={"path": write.path}
            )
