"""Retention and legal holds, per tenant: how long the runtime's executions (with their traces)
and logs, and the tenant's session logs, are kept; legal holds that suspend every deletion; and
the purge that deletes what is older than its period.

A purge deletes nothing while any legal hold is active, and says so. Its deletions commit in
transactions of at most `BATCH` documents, each with its audit record `retention.purge` (that
transaction's counts per kind, the cut-offs); a purge that fits one transaction — a periodic
purge, once caught up — is one record. Each transaction also checks that no hold was placed
since the purge looked (`ReportingPaths.hold_serial`), so a hold placed during a purge stops it
at once. Audit chains (`audit_blocks`, `audit_head`) are never purged: a purge reads and deletes
only the collections named in `_sources`, and the audit log refuses writes into a chain anyway.

`purge(tenant, now)` is what a periodic loop calls for one tenant, `purge_all(now)` for every
tenant of this region; `purge_as(caller, tenant)` is `POST /v1/retention/purge`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from cfp.domain.callers import Caller
from cfp.domain.documents import (
    ABSENT,
    CompareAndSet,
    CreateDoc,
    DeleteDoc,
    Filter,
    Page,
    Write,
)
from cfp.domain.rbac import AccessScope
from cfp.domain.reporting import (
    DEFAULT_RETENTION,
    LegalHold,
    LegalHoldIn,
    PurgeCounts,
    PurgeCutoffs,
    PurgeResult,
    ReportingPaths,
    RetentionIn,
    RetentionSettings,
    content_hash,
    cutoffs,
    iso,
    new_id,
)
from cfp.errors import CfpError, Conflict, Forbidden, NotFound
from cfp.ports import DocumentStore
from cfp.services.audit import AuditLog
from cfp.services.paging import every
from cfp.services.reporting import project_envs, stored, with_hash
from cfp.services.tenancy import PreconditionFailed, Tenancy

BATCH = 400  # deletions per transaction: with the audit record's writes, under Firestore's 500
MAX_HOLDS = 500  # listed at once
MAX_HOLD_IDS = 20  # named in a purge's audit record


@dataclass
class PurgeRun:
    """What `purge_all` did: a result per tenant purged, an error per tenant that failed."""

    results: list[PurgeResult] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class Retention:
    """Retention settings, legal holds and purges of tenants."""

    def __init__(
        self,
        documents: DocumentStore,
        audit: AuditLog,
        tenancy: Tenancy,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.documents = documents
        self.audit = audit
        self.tenancy = tenancy
        self.clock = clock

    # -- settings ---------------------------------------------------------------------------

    def _may_read(self, caller: Caller, tenant: str) -> None:
        scope = AccessScope.for_tenant(tenant)
        if not (caller.may("report.read", scope) or caller.may("retention.manage", scope)):
            raise Forbidden(
                f"reading retention needs report.read or retention.manage on tenant/{tenant}",
                details={"action": "report.read", "scope": str(scope)},
            )

    async def settings(self, tenant: str) -> RetentionSettings:
        """The tenant's periods: as set, or the defaults (version 0) while never set."""
        doc = await self.documents.get(ReportingPaths(tenant).retention())
        return DEFAULT_RETENTION if doc is None else RetentionSettings(**stored(doc))

    async def get(self, caller: Caller, tenant: str) -> RetentionSettings:
        self._may_read(caller, tenant)
        return await self.settings(tenant)

    async def put(
        self, caller: Caller, tenant: str, body: RetentionIn, if_match: int | None
    ) -> RetentionSettings:
        """Set all three periods, at the version the caller read (`if_match`: 412 if moved)."""
        caller.check("retention.manage", AccessScope.for_tenant(tenant))
        path = ReportingPaths(tenant).retention()
        current = await self.settings(tenant)
        if if_match is not None and current.version != if_match:
            raise PreconditionFailed(
                f"the retention settings changed since they were read (version "
                f"{current.version}, If-Match {if_match})",
                details={"version": current.version},
            )
        updated = RetentionSettings(
            **body.model_dump(),
            updated_at=iso(self.clock()),
            updated_by=caller.principal_id,
            version=current.version + 1,
        )
        expected = ABSENT if current.version == 0 else current.version
        try:
            await self.audit.commit(
                [CompareAndSet(path, expected, updated.model_dump(), field="version")],
                [
                    caller.entry(
                        "retention.update",
                        "tenant",
                        tenant,
                        f"tenant/{tenant}",
                        details=body.model_dump(),
                    )
                ],
            )
        except Conflict:
            raise PreconditionFailed(
                "the retention settings changed while they were being set"
            ) from None
        return updated

    # -- legal holds ------------------------------------------------------------------------

    async def _holds(self, tenant: str) -> list[LegalHold]:
        page = await self.documents.list(
            ReportingPaths(tenant).legal_holds(), order_by="created_at", limit=MAX_HOLDS
        )
        return [LegalHold(**stored(doc)) for doc in page.items]

    async def list_holds(
        self, caller: Caller, tenant: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """The tenant's active holds, oldest first."""
        self._may_read(caller, tenant)
        page = await self.documents.list(
            ReportingPaths(tenant).legal_holds(), order_by="created_at", limit=limit, cursor=cursor
        )
        items = [LegalHold(**stored(doc)).model_dump() for doc in page.items]
        return Page(items, page.next_cursor)

    async def _serial_write(self, tenant: str) -> Write:
        """Moves the hold serial: in the transaction of every hold placed or released."""
        path = ReportingPaths(tenant).hold_serial()
        doc = await self.documents.get(path)
        serial = 0 if doc is None else doc["serial"]
        return CompareAndSet(
            path, ABSENT if doc is None else serial, {"serial": serial + 1}, field="serial"
        )

    async def place_hold(self, caller: Caller, tenant: str, body: LegalHoldIn) -> LegalHold:
        """A legal hold: from now on, until it is released, purges delete nothing."""
        caller.check("retention.manage", AccessScope.for_tenant(tenant))
        now = self.clock()
        hold = LegalHold(
            id=new_id("hold", now),
            reason=body.reason,
            created_at=iso(now),
            created_by=caller.principal_id,
        )
        entry = caller.entry("legal_hold.create", "legal_hold", hold.id, f"tenant/{tenant}")
        paths = ReportingPaths(tenant)
        for _ in range(8):
            try:
                await self.audit.commit(
                    [
                        CreateDoc(paths.legal_hold(hold.id), hold.model_dump()),
                        await self._serial_write(tenant),
                    ],
                    [with_hash(entry, content_hash(body.reason))],
                )
                return hold
            except Conflict:
                continue  # another hold moved the serial first
        raise Conflict("legal holds kept changing; try again")

    async def release_hold(self, caller: Caller, tenant: str, hold: str) -> None:
        caller.check("retention.manage", AccessScope.for_tenant(tenant))
        path = ReportingPaths(tenant).legal_hold(hold)
        entry = caller.entry("legal_hold.delete", "legal_hold", hold, f"tenant/{tenant}")
        for _ in range(8):
            # The serial, read before the hold, orders every hold change: of two releases of
            # one hold, the second fails on it and then finds the hold gone.
            serial = await self._serial_write(tenant)
            doc = await self.documents.get(path)
            if doc is None:
                raise NotFound(f"legal hold {hold!r} not found", details={"hold": hold})
            try:
                await self.audit.commit(
                    [DeleteDoc(path), serial], [with_hash(entry, content_hash(doc["reason"]))]
                )
                return
            except Conflict:
                continue
        raise Conflict("legal holds kept changing; try again")

    # -- purging ----------------------------------------------------------------------------

    async def purge_as(self, caller: Caller, tenant: str) -> PurgeResult:
        """`POST /v1/retention/purge`: a purge now, recorded as the caller's."""
        caller.check("retention.manage", AccessScope.for_tenant(tenant))
        return await self.purge(tenant, self.clock(), actor=caller)

    async def purge(self, tenant: str, now: float, *, actor: Caller | None = None) -> PurgeResult:
        """Delete the tenant's executions, traces, logs and session logs older than their
        periods as of `now`, unless a legal hold is active (then nothing). Always audited."""
        actor = actor or Caller.system()
        paths = ReportingPaths(tenant)
        limits = cutoffs(await self.settings(tenant), now)
        shown = PurgeCutoffs(**{k: None if v is None else iso(v) for k, v in limits.items()})
        serial_doc = await self.documents.get(paths.hold_serial())
        serial = None if serial_doc is None else serial_doc["serial"]
        holds = [h.id for h in await self._holds(tenant)]
        total = PurgeCounts()

        def result() -> PurgeResult:
            return PurgeResult(
                tenant=tenant,
                at=iso(now),
                held=bool(holds),
                holds=holds,
                cutoffs=shown,
                deleted=total,
            )

        def record(batch: PurgeCounts, number: int, final: bool) -> Any:
            return actor.entry(
                "retention.purge",
                "tenant",
                tenant,
                f"tenant/{tenant}",
                details={
                    "held": bool(holds),
                    "holds": holds[:MAX_HOLD_IDS],
                    "cutoffs": shown.model_dump(),
                    "deleted": batch.model_dump(),
                    "total": total.model_dump(),
                    "batch": number,
                    "final": final,
                },
            )

        # No hold placed since the serial was read: the precondition of every deletion.
        guard = (
            CompareAndSet(paths.hold_serial(), ABSENT, {"serial": 0}, field="serial")
            if serial is None
            else CompareAndSet(paths.hold_serial(), serial, {"serial": serial}, field="serial")
        )
        if holds:
            await self.audit.commit([], [record(PurgeCounts(), 1, True)])
            return result()

        pending: list[tuple[str, str]] = []
        number = 0

        async def flush(final: bool) -> None:
            nonlocal pending, number, guard, serial
            batch = PurgeCounts()
            for kind, _ in pending:
                setattr(batch, kind, getattr(batch, kind) + 1)
                setattr(total, kind, getattr(total, kind) + 1)
            number += 1
            try:
                await self.audit.commit(
                    [guard, *(DeleteDoc(path) for _, path in pending)],
                    [record(batch, number, final)],
                )
            except Conflict:
                raise Conflict(
                    "a legal hold was placed or released during the purge: run it again",
                    code="legal_hold_changed",
                    details={"tenant": tenant, "deleted": total.model_dump()},
                ) from None
            if serial is None:  # the first batch created the serial
                serial = 0
                guard = CompareAndSet(paths.hold_serial(), 0, {"serial": 0}, field="serial")
            pending = []

        async for kind, path in self._expired(tenant, limits):
            pending.append((kind, path))
            if len(pending) >= BATCH:
                await flush(final=False)
        await flush(final=True)
        return result()

    async def _expired(
        self, tenant: str, limits: dict[str, float | None]
    ) -> AsyncIterator[tuple[str, str]]:
        """(kind, path) of every document older than its kind's cut-off."""
        for kind, collection, time_field in await self._sources(tenant):
            limit = limits[kind]
            if limit is None:
                continue
            bound: Any = iso(limit) if kind == "session_logs" else limit
            async for doc in every(
                self.documents,
                collection,
                where=[Filter(time_field, "<", bound)],
                order_by=time_field,
            ):
                yield kind, f"{collection}/{doc['_id']}"

    async def _sources(self, tenant: str) -> list[tuple[str, str, str]]:
        """What a purge may delete, and nothing else: (kind, collection, its time field)."""
        sources = []
        for scope in await project_envs(self.documents, tenant):
            sources += [
                ("executions", scope.executions(), "started_at"),
                ("traces", scope.traces(), "started_at"),
                ("logs", scope.logs(), "ts"),
            ]
        sources.append(("session_logs", ReportingPaths(tenant).session_logs(), "created_at"))
        return sources

    async def purge_all(self, now: float) -> PurgeRun:
        """Purge every tenant of this region as of `now` (a periodic loop's call): a tenant
        that fails is reported and the others still purged."""
        run = PurgeRun()
        async for doc in every(self.documents, "tenants"):
            tenant = doc.get("id") or doc["_id"]
            if doc.get("status") == "deleted":
                continue
            try:
                await self.tenancy.resolve_tenant(tenant)  # this region's, and not deleted
            except CfpError:
                continue
            try:
                run.results.append(await self.purge(tenant, now))
            except CfpError as exc:
                run.failed[tenant] = exc.message
            except Exception as exc:  # one tenant's trouble never stops the others' purges
                run.failed[tenant] = f"{type(exc).__name__}: {exc}"
        return run
