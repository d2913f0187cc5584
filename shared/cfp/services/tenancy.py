"""Tenants, teams, projects, environments and role bindings: the control plane's directory.

Every change is authorized against the caller's bindings (`cfp.domain.rbac`) and commits in one
store transaction with its audit record (`AuditLog.commit`), so a recorded action happened and a
failed one left no record. Documents carry a `version`; updates take the version the caller read
(`If-Match`) and fail with 412 when it moved.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cfp.domain.callers import Caller
from cfp.domain.documents import (
    CompareAndSet,
    CreateDoc,
    DeleteDoc,
    Filter,
    Page,
    SetDoc,
    Write,
    doc_id,
)
from cfp.domain.rbac import AccessScope, Binding, InvalidScope, can_grant, check_binding
from cfp.domain.tenancy import (
    Env,
    EnvIn,
    Project,
    ProjectIn,
    ProjectPatch,
    Team,
    TeamIn,
    TeamPatch,
    Tenant,
    TenantIn,
    TenantPatch,
    TenantPaths,
    directory_path,
    slugify,
    tenant_path,
)
from cfp.errors import BadRequest, CfpError, Conflict, Forbidden, NotFound
from cfp.ports import DocumentStore, KeyService
from cfp.services.audit import AuditLog

ROLE_BINDINGS = "role_bindings"  # global: a principal's bindings in every tenant, one query


LOOKUP_TTL = 1.0  # seconds another process's change to a tenant or project may go unseen


class PreconditionFailed(CfpError):
    status, code = 412, "precondition_failed"


class WrongRegion(CfpError):
    """The tenant lives in another region; its data is read and written only there."""

    status, code = 421, "wrong_region"


def _path_scope(make: Callable[..., AccessScope], *ids: str, what: str) -> AccessScope:
    """The scope an id from a URL path names; an id no resource can have is not found."""
    try:
        return make(*ids)
    except InvalidScope:
        raise NotFound(f"{what} {ids[-1]!r} not found") from None


def binding_id(principal: str, role: str, scope: str) -> str:
    """One binding per (principal, role, scope): granting it again is a conflict, not a copy
    that would outlive a revoke."""
    return hashlib.sha256(f"{principal}\0{role}\0{scope}".encode()).hexdigest()[:32]


def now_iso(clock: Callable[[], float]) -> str:
    return datetime.fromtimestamp(clock(), UTC).isoformat(timespec="milliseconds")


def _stored(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "_id"}


class Tenancy:
    """The directory service; every method takes the caller it acts for."""

    def __init__(
        self,
        documents: DocumentStore,
        audit: AuditLog,
        keys: KeyService,
        *,
        region: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.documents = documents
        self.audit = audit
        self.keys = keys
        self.region = region
        self.clock = clock
        self._status_listeners: list[Callable[[str, str], None]] = []
        self._lookups: dict[str, tuple[float, dict[str, Any] | None]] = {}

    def on_status(self, listener: Callable[[str, str], None]) -> None:
        """Call `listener(tenant, status)` after this process changed a tenant's status."""
        self._status_listeners.append(listener)

    def _status_changed(self, tenant: str, status: str) -> None:
        for listener in self._status_listeners:
            listener(tenant, status)

    # -- shared ---------------------------------------------------------------------------

    async def _update(
        self,
        caller: Caller,
        path: str,
        changes: dict[str, Any],
        if_match: int | None,
        entry_args: tuple[str, str, str, str],
        what: str,
    ) -> dict[str, Any]:
        """Apply `changes` to the document at `path` if it is still at the version the caller
        read (`if_match`, when given); audited as `entry_args` (action, type, id, scope)."""
        doc = await self.documents.get(path)
        if doc is None:
            raise NotFound(f"{what} not found")
        current = _stored(doc)
        if if_match is not None and current.get("version") != if_match:
            raise PreconditionFailed(
                f"{what} changed since it was read (version {current.get('version')}, "
                f"If-Match {if_match})",
                details={"version": current.get("version")},
            )
        updated = {
            **current,
            **changes,
            "version": current["version"] + 1,
            "updated_at": now_iso(self.clock),
        }
        action, kind, ident, scope = entry_args
        fields = sorted(k for k, v in changes.items() if current.get(k) != v)
        try:
            await self._commit(
                [CompareAndSet(path, current["version"], updated, field="version")],
                [caller.entry(action, kind, ident, scope, details={"fields": fields})],
            )
        except Conflict:
            raise PreconditionFailed(f"{what} changed while it was being updated") from None
        return updated

    # -- tenants --------------------------------------------------------------------------

    async def _commit(self, writes: list[Write], entries: list[Any]) -> list[Any]:
        """Every change commits with its audit record, and is read back at once here."""
        try:
            return await self.audit.commit(writes, entries)
        finally:
            self._lookups.clear()

    async def _read(self, path: str) -> dict[str, Any] | None:
        """A directory document as of at most LOOKUP_TTL ago: every request reads the tenant and
        its project, which change rarely; this process's own changes clear the cache at once,
        another process's are seen within LOOKUP_TTL. (Role bindings are never cached: a change
        applies to the very next request.)"""
        now = time.monotonic()
        hit = self._lookups.get(path)
        if hit is not None and now - hit[0] < LOOKUP_TTL:
            return hit[1]
        doc = await self.documents.get(path)
        self._lookups[path] = (now, doc)
        return doc

    async def resolve_tenant(self, tenant: str) -> dict[str, Any]:
        """The tenant a tenant-scoped request names, checked for residency and status."""
        entry = await self._read(directory_path(tenant))
        if entry is not None and entry.get("region") != self.region:
            raise WrongRegion(
                f"tenant {tenant} lives in region {entry['region']}, not {self.region}",
                details={"region": entry["region"]},
            )
        doc = await self._read(tenant_path(tenant))
        if doc is None or doc.get("status") == "deleted":
            raise NotFound(f"tenant {tenant!r} not found")
        return _stored(doc)

    async def create_tenant(self, caller: Caller, body: TenantIn) -> Tenant:
        caller.check("tenant.manage", AccessScope.system())
        ident = body.id or slugify(body.name)[:50]
        key_id = f"tenant-{ident}"
        if await self.documents.get(directory_path(ident)) is not None:
            raise Conflict(f"tenant {ident!r} exists", details={"id": ident})
        await self.keys.create_key(key_id)  # idempotent: a retried create reuses it
        stamp = now_iso(self.clock)
        tenant = Tenant(
            id=ident,
            name=body.name,
            region=body.region,
            status="active",
            kms_key_id=key_id,
            created_at=stamp,
            updated_at=stamp,
            version=1,
        )
        writes: list[Write] = [
            CreateDoc(directory_path(ident), {"tenant": ident, "region": body.region}),
            CreateDoc(tenant_path(ident), tenant.model_dump()),
        ]
        try:
            await self._commit(
                writes,
                [
                    caller.entry(
                        "tenant.create", "tenant", ident, "system", details={"region": body.region}
                    )
                ],
            )
        except Conflict:
            raise Conflict(f"tenant {ident!r} exists", details={"id": ident}) from None
        return tenant

    async def get_tenant(self, caller: Caller, tenant: str) -> Tenant:
        scope = _path_scope(AccessScope.for_tenant, tenant, what="tenant")
        if not (caller.is_system_admin or caller.may("tenant.read", scope)):
            raise Forbidden(f"not allowed to read tenant {tenant!r}")
        doc = await self.documents.get(tenant_path(tenant))
        if doc is None:
            raise NotFound(f"tenant {tenant!r} not found")
        return Tenant(**_stored(doc))

    async def list_tenants(self, caller: Caller, *, limit: int, cursor: str | None) -> Page:
        """System admins see every tenant; anyone else the tenants they are bound in."""
        if caller.is_system_admin:
            page = await self.documents.list("tenants", limit=limit, cursor=cursor)
            return Page([Tenant(**_stored(d)).model_dump() for d in page.items], page.next_cursor)
        items = []
        for tenant in sorted(caller.tenants()):
            if caller.may("tenant.read", AccessScope.for_tenant(tenant)):
                doc = await self.documents.get(tenant_path(tenant))
                if doc is not None:
                    items.append(Tenant(**_stored(doc)).model_dump())
        return Page(items, None)

    async def update_tenant(
        self, caller: Caller, tenant: str, body: TenantPatch, if_match: int | None
    ) -> Tenant:
        caller.check("tenant.manage", AccessScope.system())
        changes = body.model_dump(exclude_none=True)
        action = "tenant.update"
        if changes.get("status") == "suspended":
            action = "tenant.suspend"
        elif changes.get("status") == "active":
            action = "tenant.resume"
        updated = await self._update(
            caller,
            tenant_path(tenant),
            changes,
            if_match,
            (action, "tenant", tenant, "system"),
            f"tenant {tenant!r}",
        )
        self._status_changed(tenant, updated["status"])
        return Tenant(**updated)

    async def delete_tenant(self, caller: Caller, tenant: str, if_match: int | None) -> Tenant:
        """Soft delete: the tenant is marked deleted and answers as not found from then on."""
        caller.check("tenant.manage", AccessScope.system())
        updated = await self._update(
            caller,
            tenant_path(tenant),
            {"status": "deleted"},
            if_match,
            ("tenant.delete", "tenant", tenant, "system"),
            f"tenant {tenant!r}",
        )
        self._status_changed(tenant, "deleted")
        return Tenant(**updated)

    # -- teams ----------------------------------------------------------------------------

    async def create_team(self, caller: Caller, tenant: str, body: TeamIn) -> Team:
        caller.check("team.manage", AccessScope.for_tenant(tenant))
        paths = TenantPaths(tenant)
        ident = f"{slugify(body.name)[:40]}-{uuid.uuid4().hex[:6]}"
        stamp = now_iso(self.clock)
        team = Team(
            id=ident,
            name=body.name,
            lead_user_id=body.lead_user_id,
            created_at=stamp,
            updated_at=stamp,
            version=1,
        )
        await self._commit(
            [CreateDoc(paths.team(ident), team.model_dump())],
            [caller.entry("team.create", "team", ident, f"tenant/{tenant}")],
        )
        return team

    async def get_team(self, caller: Caller, tenant: str, team: str) -> Team:
        caller.check("team.read", _path_scope(AccessScope.for_team, tenant, team, what="team"))
        doc = await self.documents.get(TenantPaths(tenant).team(team))
        if doc is None:
            raise NotFound(f"team {team!r} not found")
        return Team(**_stored(doc))

    async def list_teams(
        self, caller: Caller, tenant: str, *, limit: int, cursor: str | None
    ) -> Page:
        paths = TenantPaths(tenant)
        if caller.may("team.read", AccessScope.for_tenant(tenant)):
            page = await self.documents.list(paths.teams(), limit=limit, cursor=cursor)
            return Page([Team(**_stored(d)).model_dump() for d in page.items], page.next_cursor)
        items = []  # team-scoped roles see their own teams
        for binding in caller.bindings:
            scope = binding.scope
            if scope.tenant == tenant and scope.team and caller.may("team.read", scope):
                doc = await self.documents.get(paths.team(scope.team))
                if doc is not None:
                    items.append(Team(**_stored(doc)).model_dump())
        if not items:
            caller.check("team.read", AccessScope.for_tenant(tenant))
        return Page(items, None)

    async def update_team(
        self, caller: Caller, tenant: str, team: str, body: TeamPatch, if_match: int | None
    ) -> Team:
        caller.check("team.manage", AccessScope.for_team(tenant, team))
        updated = await self._update(
            caller,
            TenantPaths(tenant).team(team),
            body.model_dump(exclude_none=True),
            if_match,
            ("team.update", "team", team, f"tenant/{tenant}"),
            f"team {team!r}",
        )
        return Team(**updated)

    # -- projects and environments --------------------------------------------------------

    async def _project_doc(self, tenant: str, project: str) -> dict[str, Any]:
        doc = await self.documents.get(TenantPaths(tenant).project(project))
        if doc is None:
            raise NotFound(f"project {project!r} not found")
        return _stored(doc)

    async def project_team(self, tenant: str, project: str) -> str | None:
        doc = await self._read(TenantPaths(tenant).project(project))
        return None if doc is None else doc.get("team_id")

    async def create_project(self, caller: Caller, tenant: str, body: ProjectIn) -> Project:
        if body.team_id:
            caller.check("project.manage", AccessScope.for_team(tenant, body.team_id))
            if await self.documents.get(TenantPaths(tenant).team(body.team_id)) is None:
                raise BadRequest(
                    f"team {body.team_id!r} not found", details={"team_id": body.team_id}
                )
        else:
            caller.check("project.manage", AccessScope.for_tenant(tenant))
        slug = body.slug or slugify(body.name)
        stamp = now_iso(self.clock)
        project = Project(
            id=slug,
            slug=slug,
            name=body.name,
            team_id=body.team_id,
            created_at=stamp,
            updated_at=stamp,
            version=1,
        )
        try:
            await self._commit(
                [CreateDoc(TenantPaths(tenant).project(slug), project.model_dump())],
                [
                    caller.entry(
                        "project.create", "project", slug, f"tenant/{tenant}/project/{slug}"
                    )
                ],
            )
        except Conflict:
            raise Conflict(f"project {slug!r} exists", details={"slug": slug}) from None
        return project

    async def get_project(self, caller: Caller, tenant: str, project: str) -> Project:
        doc = await self._project_doc(tenant, project)
        caller.check(
            "project.read", AccessScope.for_project(tenant, project), team=doc.get("team_id")
        )
        return Project(**doc)

    async def list_projects(
        self, caller: Caller, tenant: str, *, limit: int, cursor: str | None
    ) -> Page:
        """The projects the caller may read (all of them for a tenant-wide role)."""
        paths = TenantPaths(tenant)
        if caller.may("project.read", AccessScope.for_tenant(tenant)):
            page = await self.documents.list(paths.projects(), limit=limit, cursor=cursor)
            return Page([Project(**_stored(d)).model_dump() for d in page.items], page.next_cursor)
        teams = {b.scope.team for b in caller.bindings if b.scope.tenant == tenant and b.scope.team}
        items = []
        for team in sorted(t for t in teams if t):
            page = await self.documents.list(
                paths.projects(), where=[Filter("team_id", "==", team)], limit=500
            )
            items += [
                d
                for d in page.items
                if caller.may("project.read", AccessScope.for_project(tenant, d["slug"]), team=team)
            ]
        for binding in caller.bindings:
            scope = binding.scope
            if (
                scope.tenant == tenant
                and scope.project
                and scope.project not in {i["slug"] for i in items}
            ):
                doc = await self.documents.get(paths.project(scope.project))
                if doc is not None and caller.may("project.read", scope, team=doc.get("team_id")):
                    items.append(doc)
        if not items and not caller.tenants() & {tenant}:
            caller.check("project.read", AccessScope.for_tenant(tenant))
        return Page([Project(**_stored(d)).model_dump() for d in items], None)

    async def update_project(
        self, caller: Caller, tenant: str, project: str, body: ProjectPatch, if_match: int | None
    ) -> Project:
        doc = await self._project_doc(tenant, project)
        caller.check(
            "project.manage", AccessScope.for_project(tenant, project), team=doc.get("team_id")
        )
        updated = await self._update(
            caller,
            TenantPaths(tenant).project(project),
            body.model_dump(exclude_none=True),
            if_match,
            ("project.update", "project", project, f"tenant/{tenant}/project/{project}"),
            f"project {project!r}",
        )
        return Project(**updated)

    async def create_env(self, caller: Caller, tenant: str, project: str, body: EnvIn) -> Env:
        doc = await self._project_doc(tenant, project)
        caller.check(
            "project.manage", AccessScope.for_project(tenant, project), team=doc.get("team_id")
        )
        env = Env(name=body.name, project=project, created_at=now_iso(self.clock))
        try:
            await self._commit(
                [CreateDoc(TenantPaths(tenant).env(project, body.name), env.model_dump())],
                [
                    caller.entry(
                        "env.create",
                        "env",
                        f"{project}/{body.name}",
                        f"tenant/{tenant}/project/{project}",
                    )
                ],
            )
        except Conflict:
            raise Conflict(
                f"environment {body.name!r} exists", details={"env": body.name}
            ) from None
        return env

    async def list_envs(self, caller: Caller, tenant: str, project: str) -> Page:
        doc = await self._project_doc(tenant, project)
        caller.check(
            "project.read", AccessScope.for_project(tenant, project), team=doc.get("team_id")
        )
        page = await self.documents.list(TenantPaths(tenant).envs(project), limit=500)
        return Page([Env(**_stored(d)).model_dump() for d in page.items], None)

    # -- role bindings --------------------------------------------------------------------

    async def bindings_of(self, principal: str) -> tuple[Binding, ...]:
        """Every binding of a principal, read at each request: a change applies to the next."""
        page = await self.documents.list(
            ROLE_BINDINGS, where=[Filter("principal", "==", principal)], limit=500
        )
        return tuple(
            Binding(d["principal"], d["role"], AccessScope.parse(d["scope"])) for d in page.items
        )

    async def _scope_team(self, scope: AccessScope) -> str | None:
        if scope.tenant and scope.project:
            return await self.project_team(scope.tenant, scope.project)
        return None

    async def grant(
        self, caller: Caller, tenant: str, principal: str, role: str, scope: str
    ) -> dict[str, Any]:
        target = AccessScope.parse(scope)
        if target.tenant != tenant:
            raise BadRequest(f"scope {scope} is not in tenant {tenant}", details={"scope": scope})
        check_binding(role, target)
        decision = can_grant(caller.bindings, role, target, team=await self._scope_team(target))
        if not decision.allowed:
            raise Forbidden(decision.reason, details=decision.details())
        ident = binding_id(principal, role, str(target))
        record = {
            "id": ident,
            "principal": principal,
            "role": role,
            "scope": str(target),
            "tenant": tenant,
            "created_at": now_iso(self.clock),
            "created_by": caller.principal_id,
        }
        try:
            await self._commit(
                [CreateDoc(f"{ROLE_BINDINGS}/{ident}", record)],
                [
                    caller.entry(
                        "role_binding.create",
                        "role_binding",
                        ident,
                        f"tenant/{tenant}",
                        details={"principal": principal, "role": role, "scope": str(target)},
                    )
                ],
            )
        except Conflict:
            raise Conflict(
                f"{principal} already holds {role} on {target}", details={"id": ident}
            ) from None
        return record

    async def binding_records(self, principal: str) -> list[dict[str, Any]]:
        page = await self.documents.list(
            ROLE_BINDINGS, where=[Filter("principal", "==", principal)], limit=500
        )
        return [_stored(d) for d in page.items]

    async def list_bindings(
        self, caller: Caller, tenant: str, *, scope: str | None = None
    ) -> list[dict[str, Any]]:
        """The tenant's bindings on the scopes the caller may read bindings of."""
        where = [Filter("tenant", "==", tenant)]
        if scope is not None:
            try:
                parsed = AccessScope.parse(scope)
            except InvalidScope as exc:  # a query parameter: the request is malformed
                raise BadRequest(exc.message, details={"parameter": "scope"}) from None
            where.append(Filter("scope", "==", str(parsed)))
        page = await self.documents.list(ROLE_BINDINGS, where=where, limit=500)
        items = []
        for doc in page.items:
            target = AccessScope.parse(doc["scope"])
            if caller.may("role_binding.read", target, team=await self._scope_team(target)):
                items.append(_stored(doc))
        if not items:
            caller.check("role_binding.read", AccessScope.parse(scope or f"tenant/{tenant}"))
        return items

    async def revoke(self, caller: Caller, tenant: str, binding_id: str) -> None:
        """Remove a binding; revoking needs what granting it needs."""
        path = f"{ROLE_BINDINGS}/{binding_id}"
        doc = await self.documents.get(path)
        if doc is None or doc.get("tenant") != tenant:
            raise NotFound(f"role binding {binding_id!r} not found")
        target = AccessScope.parse(doc["scope"])
        team = await self._scope_team(target)
        if not caller.may("role_binding.read", target, team=team):  # not even visible to them
            raise NotFound(f"role binding {binding_id!r} not found")
        decision = can_grant(caller.bindings, doc["role"], target, team=team)
        if not decision.allowed:
            raise Forbidden(decision.reason, details=decision.details())
        await self._commit(
            [DeleteDoc(path)],
            [
                caller.entry(
                    "role_binding.delete",
                    "role_binding",
                    binding_id,
                    f"tenant/{tenant}",
                    details={
                        "principal": doc["principal"],
                        "role": doc["role"],
                        "scope": doc["scope"],
                    },
                )
            ],
        )

    async def bind_system(self, principal: str, role: str, scope: str) -> None:
        """A binding made by the platform itself (bootstrap), audited on the system chain."""
        target = AccessScope.parse(scope)
        check_binding(role, target)
        ident = binding_id(principal, role, str(target))
        if await self.documents.get(f"{ROLE_BINDINGS}/{ident}") is not None:
            return  # already bound
        record = {
            "id": ident,
            "principal": principal,
            "role": role,
            "scope": str(target),
            "tenant": target.tenant,
            "created_at": now_iso(self.clock),
            "created_by": "system",
        }
        chain_scope = f"tenant/{target.tenant}" if target.tenant else "system"
        await self._commit(
            [SetDoc(f"{ROLE_BINDINGS}/{ident}", record)],
            [
                Caller.system().entry(
                    "role_binding.create",
                    "role_binding",
                    ident,
                    chain_scope,
                    details={"principal": principal, "role": role, "scope": str(target)},
                )
            ],
        )

    # -- flows ----------------------------------------------------------------------------

    async def register_flows(
        self, caller: Caller, tenant: str, project: str, env: str, flows: dict[str, Any]
    ) -> list[str]:
        """Record each flow of a loaded or deployed project, and a new version of it whenever
        its graph changed (versions are content hashes, so reloading unchanged code adds
        nothing). Returns the flows that got a new version; each is audited."""
        paths = TenantPaths(tenant)
        changed = []
        for name, graph in sorted(flows.items()):
            canonical = json.dumps(graph, sort_keys=True, separators=(",", ":"), default=str)
            version = hashlib.sha256(canonical.encode()).hexdigest()[:16]
            flow_path = f"{paths.project(project)}/flows/{doc_id(name)}"
            current = await self.documents.get(flow_path)
            if current is not None and current.get("versions", {}).get(env) == version:
                continue
            stamp = now_iso(self.clock)
            versions = {**(current or {}).get("versions", {}), env: version}
            writes: list[Write] = [
                SetDoc(
                    flow_path,
                    {"name": name, "project": project, "versions": versions, "updated_at": stamp},
                ),
                SetDoc(
                    f"{flow_path}/versions/{version}",
                    {"version": version, "graph": canonical, "created_at": stamp, "env": env},
                ),
            ]
            await self._commit(
                writes,
                [
                    caller.entry(
                        "flow.version.create",
                        "flow",
                        f"{project}/{name}",
                        f"tenant/{tenant}/project/{project}",
                        details={"version": version, "env": env},
                    )
                ],
            )
            changed.append(name)
        return changed
