"""Reporting: a tenant's contracts (with their documents in the blob store), project status
reports, session logs, and the executive report over them and the runtime's executions.

Authorization: contracts and the executive report are tenant-level (`report.read` to read,
`report.manage` to change, on the tenant); status reports and session logs are checked on their
project (`report.manage` there to write; `report.read` to read, and for a session log what its
visibility allows, `cfp.domain.reporting.can_see_session_log`). Every change commits in one
transaction with its audit record (`AuditLog.commit`); a record names what changed and keeps a
`payload_hash` of any content (a document's bytes, a log's text), never the content itself.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from cfp.domain.audit import AuditEntry, payload_hash
from cfp.domain.callers import Caller
from cfp.domain.documents import (
    ABSENT,
    CompareAndSet,
    CreateDoc,
    Filter,
    Page,
    doc_id,
)
from cfp.domain.paths import Scope
from cfp.domain.rbac import AccessScope
from cfp.domain.reporting import (
    MAX_DOCUMENTS,
    Contract,
    ContractDocument,
    ContractIn,
    ContractPatch,
    ExecutiveReport,
    FlowTally,
    Report,
    ReportIn,
    ReportingPaths,
    Series,
    SessionLog,
    SessionLogIn,
    Window,
    can_see_session_log,
    check_transition,
    content_hash,
    contract_summary,
    document_name,
    flows_of_execution,
    iso,
    media_type,
    merged_dates_problem,
    new_id,
    project_summary,
    reads_reports_in,
    report_window,
)
from cfp.domain.tenancy import SLUG, TenantPaths
from cfp.errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable, ValidationFailed
from cfp.ports import BlobStore, DocumentStore
from cfp.services.audit import AuditLog
from cfp.services.paging import every
from cfp.services.tenancy import PreconditionFailed

_SLUG = re.compile(SLUG)
SCAN_PAGE = 200  # documents a filtered listing reads from the store at a time
ATTEMPTS = 8  # compare-and-set retries of a contract or a project's latest report


def stored(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "_id"}


def with_hash(entry: AuditEntry, digest: str) -> AuditEntry:
    """`entry` keeping the SHA-256 of the content it is about, instead of the content."""
    return entry.model_copy(update={"payload_hash": digest})


def project_param(raw: str | None) -> str | None:
    """The `?project=` filter: a project id, or BadRequest naming the parameter."""
    if raw is None or raw == "":
        return None
    if not _SLUG.fullmatch(raw):
        raise BadRequest(
            "project must be a project id (lower-case letters, digits and '-')",
            details={"parameter": "project"},
        )
    return raw


async def project_teams(documents: DocumentStore, tenant: str) -> dict[str, str | None]:
    """Every project of the tenant's directory, with its team."""
    return {
        doc["slug"]: doc.get("team_id")
        async for doc in every(documents, TenantPaths(tenant).projects())
    }


async def project_envs(documents: DocumentStore, tenant: str) -> list[Scope]:
    """Every environment of every project in the tenant's directory: where the runtime keeps
    executions, traces and logs."""
    paths = TenantPaths(tenant)
    scopes = []
    for project in sorted(await project_teams(documents, tenant)):
        async for env in every(documents, paths.envs(project)):
            scopes.append(Scope(tenant, project, env["name"]))
    return scopes


class Reporting:
    """Contracts, status reports, session logs and the executive report of tenants; every
    method takes the caller it acts for."""

    def __init__(
        self,
        documents: DocumentStore,
        audit: AuditLog,
        blobs: BlobStore | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.documents = documents
        self.audit = audit
        self.blobs = blobs
        self.clock = clock

    # -- shared -----------------------------------------------------------------------------

    async def _project(self, caller: Caller, tenant: str, project: str, action: str) -> str | None:
        """The project's team, once `caller` may do `action` on it: 403 without the right
        (whether or not it exists), 404 for a project that does not exist."""
        doc = await self.documents.get(TenantPaths(tenant).project(project))
        team = None if doc is None else doc.get("team_id")
        caller.check(action, AccessScope.for_project(tenant, project), team=team)
        if doc is None:
            raise NotFound(f"project {project!r} not found", details={"project_id": project})
        return team

    async def _scan(
        self,
        collection: str,
        *,
        keep: Callable[[dict[str, Any]], bool],
        where: Sequence[Filter] = (),
        limit: int,
        cursor: str | None,
    ) -> Page:
        """Newest first, the documents `keep` admits (what the caller may not see is skipped
        silently). The next cursor is always the one after the page's last item, which the
        caller sees: a cursor never names, nor gives away, a document it may not see. So the
        scan reads on until the page is full or the collection ends."""
        items: list[dict[str, Any]] = []

        async def read(size: int, after: str | None) -> Page:
            return await self.documents.list(
                collection,
                where=where,
                order_by="created_at",
                descending=True,
                limit=size,
                cursor=after,
            )

        batch = max(limit, SCAN_PAGE)
        while True:
            page = await read(batch, cursor)
            for index, doc in enumerate(page.items):
                if not keep(doc):
                    continue
                items.append(stored(doc))
                if len(items) == limit:
                    if index == len(page.items) - 1:
                        return Page(items, page.next_cursor)
                    # the store's cursor after this very document: the same read, cut there
                    return Page(items, (await read(index + 1, cursor)).next_cursor)
            if page.next_cursor is None:
                return Page(items, None)
            cursor = page.next_cursor

    def _reads_anywhere(self, caller: Caller, tenant: str, what: str) -> None:
        if not reads_reports_in(caller.bindings, tenant):
            raise Forbidden(
                f"reading {what} needs report.read somewhere in tenant {tenant!r}",
                details={"action": "report.read", "scope": f"tenant/{tenant}"},
            )

    # -- contracts --------------------------------------------------------------------------

    async def create_contract(self, caller: Caller, tenant: str, body: ContractIn) -> Contract:
        caller.check("report.manage", AccessScope.for_tenant(tenant))
        now = self.clock()
        ident = new_id("ctr", now)
        paths = ReportingPaths(tenant)
        # Documents sent with the contract become artifacts first; if the contract does not
        # commit, they are removed again (nothing half-written stays).
        documents: list[ContractDocument] = []
        keys: list[str] = []
        try:
            for sent in body.documents:
                raw = sent.data()
                document = ContractDocument(
                    id=new_id("doc", now),
                    name=document_name(sent.name),
                    content_type=media_type(sent.content_type),
                    size=len(raw),
                    sha256=payload_hash(raw),
                    uploaded_at=iso(now),
                    uploaded_by=caller.principal_id,
                )
                key = paths.document_key(ident, document.id)
                await self._blob_store().put(key, raw, content_type=document.content_type)
                keys.append(key)
                documents.append(document)
            contract = Contract(
                id=ident,
                **body.model_dump(exclude={"documents"}),
                documents=documents,
                created_at=iso(now),
                created_by=caller.principal_id,
                updated_at=iso(now),
                version=1,
            )
            data = contract.model_dump(mode="json")
            entry = caller.entry(
                "contract.create",
                "contract",
                ident,
                f"tenant/{tenant}",
                details={
                    "status": contract.status,
                    "currency": contract.currency,
                    "documents": len(documents),
                },
            )
            await self.audit.commit(
                [CreateDoc(paths.contract(ident), data)],
                [with_hash(entry, content_hash(_content(data)))],
            )
        except BaseException:
            for key in keys:
                with contextlib.suppress(Exception):
                    await self._blob_store().delete(key)
            raise
        return contract

    async def _contract_doc(self, tenant: str, contract: str) -> dict[str, Any]:
        doc = await self.documents.get(ReportingPaths(tenant).contract(contract))
        if doc is None:
            raise NotFound(f"contract {contract!r} not found", details={"contract": contract})
        return stored(doc)

    async def get_contract(self, caller: Caller, tenant: str, contract: str) -> Contract:
        caller.check("report.read", AccessScope.for_tenant(tenant))
        return Contract(**await self._contract_doc(tenant, contract))

    async def list_contracts(
        self,
        caller: Caller,
        tenant: str,
        *,
        status: str | None = None,
        limit: int,
        cursor: str | None,
    ) -> Page:
        """The tenant's contracts, newest first (`status`: only those in it)."""
        caller.check("report.read", AccessScope.for_tenant(tenant))
        where = []
        if status is not None:
            if status not in ("draft", "active", "expired", "terminated"):
                raise BadRequest(
                    "status must be draft, active, expired or terminated",
                    details={"parameter": "status"},
                )
            where.append(Filter("status", "==", status))
        page = await self.documents.list(
            ReportingPaths(tenant).contracts(),
            where=where,
            order_by="created_at",
            descending=True,
            limit=limit,
            cursor=cursor,
        )
        items = [Contract(**stored(d)).model_dump(mode="json") for d in page.items]
        return Page(items, page.next_cursor)

    async def update_contract(
        self,
        caller: Caller,
        tenant: str,
        contract: str,
        body: ContractPatch,
        if_match: int | None,
    ) -> Contract:
        """Change fields of a contract at the version the caller read (`if_match`, when given;
        412 when it moved); a status change must be one the lifecycle allows (409)."""
        caller.check("report.manage", AccessScope.for_tenant(tenant))
        path = ReportingPaths(tenant).contract(contract)
        current = await self._contract_doc(tenant, contract)
        if if_match is not None and current["version"] != if_match:
            raise PreconditionFailed(
                f"contract {contract!r} changed since it was read (version "
                f"{current['version']}, If-Match {if_match})",
                details={"version": current["version"]},
            )
        changes = body.changes()
        if "status" in changes:
            check_transition(current["status"], changes["status"])
        problem = merged_dates_problem(current, changes)
        if problem is not None:
            raise ValidationFailed(
                "request body is invalid", details=[{"pointer": "/end_date", "message": problem}]
            )
        fields = sorted(k for k, v in changes.items() if current.get(k) != v)
        if not fields:  # nothing changes: no new version, no record, ETags stay valid
            return Contract(**current)
        now = self.clock()
        updated = {**current, **changes, "version": current["version"] + 1, "updated_at": iso(now)}
        details: dict[str, Any] = {"fields": fields}
        action = "contract.update"
        if "status" in changes:
            action = "contract.status.change"
            details |= {"from": current["status"], "to": changes["status"]}
        entry = caller.entry(action, "contract", contract, f"tenant/{tenant}", details=details)
        try:
            await self.audit.commit(
                [CompareAndSet(path, current["version"], updated, field="version")],
                [with_hash(entry, content_hash(_content(updated)))],
            )
        except Conflict:
            raise PreconditionFailed(
                f"contract {contract!r} changed while it was being updated"
            ) from None
        return Contract(**updated)

    # -- contract documents -----------------------------------------------------------------

    def _blob_store(self) -> BlobStore:
        if self.blobs is None:
            raise Unavailable("this control plane has no blob store for documents")
        return self.blobs

    async def add_document(
        self,
        caller: Caller,
        tenant: str,
        contract: str,
        *,
        name: str | None,
        content_type: str | None,
        data: bytes,
    ) -> ContractDocument:
        """Store `data` as a new document of the contract: the bytes in the blob store under
        the tenant's key, their record (name, type, size, SHA-256) in the contract. `name`
        defaults to `document`, `content_type` to application/octet-stream."""
        caller.check("report.manage", AccessScope.for_tenant(tenant))
        await self._contract_doc(tenant, contract)
        name = document_name(name)
        content_type = media_type(content_type)
        if not data:
            raise BadRequest("the document is empty: send its bytes as the request body")
        paths = ReportingPaths(tenant)
        now = self.clock()
        digest = payload_hash(data)
        document = ContractDocument(
            id=new_id("doc", now),
            name=name,
            content_type=content_type,
            size=len(data),
            sha256=digest,
            uploaded_at=iso(now),
            uploaded_by=caller.principal_id,
        )
        key = paths.document_key(contract, document.id)
        blobs = self._blob_store()
        await blobs.put(key, data, content_type=content_type)
        try:
            for _ in range(ATTEMPTS):
                current = await self._contract_doc(tenant, contract)
                if len(current["documents"]) >= MAX_DOCUMENTS:
                    raise Conflict(
                        f"a contract holds at most {MAX_DOCUMENTS} documents",
                        code="too_many_documents",
                        details={"contract": contract, "limit": MAX_DOCUMENTS},
                    )
                updated = {
                    **current,
                    "documents": [*current["documents"], document.model_dump(mode="json")],
                    "version": current["version"] + 1,
                    "updated_at": iso(now),
                }
                entry = caller.entry(
                    "contract.document.create",
                    "contract",
                    contract,
                    f"tenant/{tenant}",
                    details={
                        "document": document.id,
                        "size": document.size,
                        "content_type": content_type,
                    },
                )
                try:
                    await self.audit.commit(
                        [
                            CompareAndSet(
                                paths.contract(contract), current["version"], updated, "version"
                            )
                        ],
                        [with_hash(entry, digest)],
                    )
                    return document
                except Conflict:
                    continue  # the contract changed meanwhile: add to what it is now
            raise Unavailable("the contract kept changing; try again")
        except BaseException:
            with contextlib.suppress(Exception):
                await blobs.delete(key)  # recorded nowhere: nobody can address it
            raise

    async def read_document(
        self, caller: Caller, tenant: str, contract: str, document: str
    ) -> tuple[ContractDocument, bytes]:
        caller.check("report.read", AccessScope.for_tenant(tenant))
        current = await self._contract_doc(tenant, contract)
        found = [d for d in current["documents"] if d["id"] == document]
        if not found:
            raise NotFound(
                f"contract {contract!r} has no document {document!r}",
                details={"document": document},
            )
        record = ContractDocument(**found[0])
        try:
            data = await self._blob_store().get(
                ReportingPaths(tenant).document_key(contract, document)
            )
        except NotFound:
            raise NotFound(
                f"the bytes of document {document!r} are gone", details={"document": document}
            ) from None
        return record, data

    # -- project status reports -------------------------------------------------------------

    async def create_report(self, caller: Caller, tenant: str, body: ReportIn) -> Report:
        """A new status report of a project (each is kept); it becomes the project's latest."""
        await self._project(caller, tenant, body.project_id, "report.manage")
        paths = ReportingPaths(tenant)
        now = self.clock()
        report = Report(
            id=new_id("rpt", now),
            **body.model_dump(),
            author=caller.principal_id,
            created_at=iso(now),
        )
        data = report.model_dump(mode="json")
        entry = caller.entry(
            "report.create",
            "report",
            report.id,
            f"tenant/{tenant}/project/{report.project_id}",
            details={"project": report.project_id, "status": report.status},
        )
        entry = with_hash(entry, content_hash(_report_content(data)))
        latest = paths.latest_report(report.project_id)
        for _ in range(ATTEMPTS):
            previous = await self.documents.get(latest)
            expected = ABSENT if previous is None else previous["id"]
            writes: list[Any] = [CreateDoc(paths.report(report.id), data)]
            # The latest moves only forwards: a newer report that came first stays the latest
            # (ids sort by creation time), and this one joins the history alone.
            if previous is None or (previous["created_at"], previous["id"]) < (
                report.created_at,
                report.id,
            ):
                writes.append(CompareAndSet(latest, expected, data, field="id"))
            try:
                await self.audit.commit(writes, [entry])
                return report
            except Conflict:
                continue  # another report of the project came first: look again
        raise Unavailable("the project's reports kept changing; try again")

    async def get_report(self, caller: Caller, tenant: str, report: str) -> Report:
        """A report; 404 also for one of a project the caller may not read."""
        self._reads_anywhere(caller, tenant, "status reports")
        doc = await self.documents.get(ReportingPaths(tenant).report(report))
        if doc is not None:
            project = await self.documents.get(TenantPaths(tenant).project(doc["project_id"]))
            team = None if project is None else project.get("team_id")
            scope = AccessScope.for_project(tenant, doc["project_id"])
            if caller.may("report.read", scope, team=team):
                return Report(**stored(doc))
        raise NotFound(f"report {report!r} not found", details={"report": report})

    async def _readable(self, caller: Caller, tenant: str) -> Callable[[dict[str, Any]], bool]:
        """Whether a document of a project (`project_id`) is one the caller reads reports of."""
        if caller.may("report.read", AccessScope.for_tenant(tenant)):
            return lambda doc: True
        teams = await project_teams(self.documents, tenant)

        def keep(doc: dict[str, Any]) -> bool:
            project = doc["project_id"]
            scope = AccessScope.for_project(tenant, project)
            return caller.may("report.read", scope, team=teams.get(project))

        return keep

    async def list_reports(
        self,
        caller: Caller,
        tenant: str,
        *,
        project: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page:
        """Every report (history included), newest first, of `project` (403 unless the caller
        reads its reports) or of every project the caller reads reports of."""
        if project is not None:
            await self._project(caller, tenant, project, "report.read")
            return await self._scan(
                ReportingPaths(tenant).reports(),
                keep=lambda doc: True,
                where=[Filter("project_id", "==", project)],
                limit=limit,
                cursor=cursor,
            )
        self._reads_anywhere(caller, tenant, "status reports")
        return await self._scan(
            ReportingPaths(tenant).reports(),
            keep=await self._readable(caller, tenant),
            limit=limit,
            cursor=cursor,
        )

    async def latest_reports(
        self, caller: Caller, tenant: str, *, project: str | None
    ) -> list[Report]:
        """The latest report of each project the caller reads reports of (of `project` only,
        when named: none while it has none)."""
        paths = ReportingPaths(tenant)
        if project is not None:
            await self._project(caller, tenant, project, "report.read")
            doc = await self.documents.get(paths.latest_report(project))
            return [] if doc is None else [Report(**stored(doc))]
        self._reads_anywhere(caller, tenant, "status reports")
        keep = await self._readable(caller, tenant)
        found = [
            Report(**stored(doc))
            async for doc in every(self.documents, paths.latest_reports())
            if keep(doc)
        ]
        return sorted(found, key=lambda r: r.project_id)

    # -- session logs -----------------------------------------------------------------------

    async def create_session_log(
        self, caller: Caller, tenant: str, body: SessionLogIn
    ) -> SessionLog:
        """A session log of a project by the caller (its author), seen as its visibility says."""
        await self._project(caller, tenant, body.project_id, "report.manage")
        now = self.clock()
        log = SessionLog(
            id=new_id("log", now),
            **body.model_dump(),
            author=caller.principal_id,
            created_at=iso(now),
        )
        entry = caller.entry(
            "session_log.create",
            "session_log",
            log.id,
            f"tenant/{tenant}/project/{log.project_id}",
            details={"project": log.project_id, "visibility": log.visibility},
        )
        await self.audit.commit(
            [CreateDoc(ReportingPaths(tenant).session_log(log.id), log.model_dump(mode="json"))],
            [with_hash(entry, content_hash(log.content))],
        )
        return log

    async def _visible(self, caller: Caller, tenant: str) -> Callable[[dict[str, Any]], bool]:
        teams = await project_teams(self.documents, tenant)

        def keep(doc: dict[str, Any]) -> bool:
            return can_see_session_log(
                caller.principal_id,
                caller.bindings,
                tenant=tenant,
                team=teams.get(doc["project_id"]),
                log=doc,
            )

        return keep

    async def list_session_logs(
        self,
        caller: Caller,
        tenant: str,
        *,
        project: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page:
        """The session logs the caller may see, newest first (of `project`, when named); the
        others are left out silently."""
        self._reads_anywhere(caller, tenant, "session logs")
        where = [] if project is None else [Filter("project_id", "==", project)]
        return await self._scan(
            ReportingPaths(tenant).session_logs(),
            keep=await self._visible(caller, tenant),
            where=where,
            limit=limit,
            cursor=cursor,
        )

    async def get_session_log(self, caller: Caller, tenant: str, log: str) -> SessionLog:
        """A session log; 404 for one the caller may not see, as for one that does not exist."""
        self._reads_anywhere(caller, tenant, "session logs")
        doc = await self.documents.get(ReportingPaths(tenant).session_log(log))
        if doc is None or not (await self._visible(caller, tenant))(doc):
            raise NotFound(f"session log {log!r} not found", details={"log": log})
        return SessionLog(**stored(doc))

    # -- the executive report ---------------------------------------------------------------

    async def executive_report(
        self, caller: Caller, tenant: str, *, since: str | None, until: str | None
    ) -> ExecutiveReport:
        """Contracts by status with totals per currency, projects by the status of their latest
        report, and per flow the executions in the window `[since, until)` (`report_window`:
        RFC 3339 times or dates; by default the 30 days to the end of today) with error rate
        and p95 latency."""
        caller.check("report.read", AccessScope.for_tenant(tenant))
        start, end = report_window(since, until, self.clock())
        paths = ReportingPaths(tenant)
        contracts = [doc async for doc in every(self.documents, paths.contracts())]
        latest = {
            doc["project_id"]: stored(doc)
            async for doc in every(self.documents, paths.latest_reports())
        }
        teams = await project_teams(self.documents, tenant)
        flows = []
        series = Series(start, end)
        for scope in await project_envs(self.documents, tenant):
            step_flows = await self._step_flows(scope)
            tallies: dict[str | None, FlowTally] = {}
            async for execution in every(
                self.documents,
                scope.executions(),
                where=[Filter("started_at", ">=", start), Filter("started_at", "<", end)],
                order_by="started_at",
            ):
                series.add(execution)
                for flow in flows_of_execution(execution, step_flows):
                    tallies.setdefault(flow, FlowTally()).add(execution)
            for flow in sorted(tallies, key=lambda f: (f is None, f or "")):
                flows.append(tallies[flow].stats(scope.project, scope.env, flow))
        return ExecutiveReport(
            window=Window(**{"from": iso(start), "to": iso(end)}),
            contracts=contract_summary(contracts),
            projects=project_summary(teams, latest),
            flows=flows,
            series=series.points(),
        )

    async def _step_flows(self, scope: Scope) -> dict[str, list[str]]:
        """Step → the flows it belongs to in this environment, from the flow versions the
        directory records (`Tenancy.register_flows`)."""
        flows_path = f"{TenantPaths(scope.tenant).project(scope.project)}/flows"
        found: dict[str, list[str]] = {}
        async for flow in every(self.documents, flows_path):
            version = flow.get("versions", {}).get(scope.env)
            if version is None:
                continue
            record = await self.documents.get(
                f"{flows_path}/{doc_id(flow['name'])}/versions/{version}"
            )
            if record is None:
                continue
            graph = json.loads(record["graph"])
            for node in graph.get("nodes", []):
                found.setdefault(node["id"], []).append(flow["name"])
        return found


def _content(contract: dict[str, Any]) -> dict[str, Any]:
    """What a contract says (hashed into its audit record), without its bookkeeping."""
    fields = ("title", "counterparty", "status", "value", "currency", "start_date", "end_date")
    return {name: contract.get(name) for name in fields}


def _report_content(report: dict[str, Any]) -> dict[str, Any]:
    return {name: report[name] for name in ("period", "summary", "highlights", "risks")}
