"""Control-plane routes: tenants, teams, projects and environments, roles and role bindings,
audit records, the caller's own identity. Thin: parse, resolve the caller, call a service,
shape the reply. Each route is declared once in `OPERATIONS`, which also makes the OpenAPI
document (`/v1/openapi.json`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cfp.api.callers import caller, control, tenant_caller
from cfp.api.operations import Operation, openapi_document
from cfp.api.runtime_routes import page_args, read_json
from cfp.domain.rbac import ROLES, AccessScope
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
)
from cfp.errors import BadRequest, NotFound

# -- wire shapes of this module ---------------------------------------------------------------


class BindingOut(BaseModel):
    id: str | None = None
    principal: str
    role: str
    scope: str
    tenant: str | None = None
    created_at: str | None = None


class BindingIn(BaseModel):
    principal: str
    role: str
    scope: str


class Me(BaseModel):
    id: str
    kind: str
    email: str | None
    bindings: list[BindingOut]


class RoleOut(BaseModel):
    id: str
    name: str
    description: str
    scopes: list[str]
    actions: list[str]


class AuditRecordOut(BaseModel):
    seq: int
    chain: str
    time: str
    actor: dict[str, Any]
    action: str
    target: dict[str, Any]
    scope: str
    outcome: str
    hash: str
    prev_hash: str
    correlation_id: str | None = None
    trace_id: str | None = None
    client_address: str | None = None
    user_agent: str | None = None
    details: dict[str, Any] | None = None
    payload_hash: str | None = None
    payload_ref: str | None = None
    id: str | None = None
    created_at: str | None = None
    leaf_hash: str | None = None


# -- helpers ------------------------------------------------------------------------------------


def resource(model: BaseModel, status: int = 200) -> JSONResponse:
    """A resource with its `ETag` (its version), for `If-Match` on the next update."""
    body = model.model_dump(mode="json")
    response = JSONResponse(body, status_code=status)
    if "version" in body:
        response.headers["etag"] = f'"{body["version"]}"'
    return response


def if_match(request: Request) -> int | None:
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise BadRequest(
            "If-Match must be the ETag of a read (a quoted version number)",
            details={"if_match": raw},
        )
    return int(value)


def listing(items: list[Any], next_cursor: str | None) -> JSONResponse:
    return JSONResponse({"items": items, "next_cursor": next_cursor})


# -- me and roles ---------------------------------------------------------------------------


async def get_me(request: Request) -> JSONResponse:
    who = await caller(request)
    bindings = await control(request).tenancy.binding_records(who.principal_id)
    me = Me(
        id=who.principal_id,
        kind=who.kind,
        email=who.email,
        bindings=[BindingOut(**b) for b in bindings],
    )
    return JSONResponse(me.model_dump(mode="json"))


async def list_roles(request: Request) -> JSONResponse:
    await caller(request)
    return listing([role.as_json() for role in ROLES.values()], None)


# -- tenants ------------------------------------------------------------------------------------


async def list_tenants(request: Request) -> JSONResponse:
    who = await caller(request)
    limit, cursor = page_args(request)
    page = await control(request).tenancy.list_tenants(who, limit=limit, cursor=cursor)
    return listing(page.items, page.next_cursor)


async def create_tenant(request: Request) -> JSONResponse:
    who = await caller(request)
    body = await read_json(request, TenantIn)
    return resource(await control(request).tenancy.create_tenant(who, body), 201)


async def get_tenant(request: Request) -> JSONResponse:
    who = await caller(request)
    return resource(await control(request).tenancy.get_tenant(who, request.path_params["id"]))


async def update_tenant(request: Request) -> JSONResponse:
    who = await caller(request)
    body = await read_json(request, TenantPatch)
    tenant = await control(request).tenancy.update_tenant(
        who, request.path_params["id"], body, if_match(request)
    )
    return resource(tenant)


async def delete_tenant(request: Request) -> JSONResponse:
    who = await caller(request)
    tenant = await control(request).tenancy.delete_tenant(
        who, request.path_params["id"], if_match(request)
    )
    return resource(tenant)


# -- teams and projects: the same four handlers over the tenancy service ---------------------


def _listing(method: str) -> Any:
    async def handler(request: Request) -> JSONResponse:
        who, tenant = await tenant_caller(request)
        limit, cursor = page_args(request)
        service = getattr(control(request).tenancy, method)
        page = await service(who, tenant, limit=limit, cursor=cursor)
        return listing(page.items, page.next_cursor)

    return handler


def _creating(method: str, model: type[BaseModel]) -> Any:
    async def handler(request: Request) -> JSONResponse:
        who, tenant = await tenant_caller(request)
        body = await read_json(request, model)
        created = await getattr(control(request).tenancy, method)(who, tenant, body)
        return resource(created, 201)

    return handler


def _reading(method: str, param: str) -> Any:
    async def handler(request: Request) -> JSONResponse:
        who, tenant = await tenant_caller(request)
        found = await getattr(control(request).tenancy, method)(
            who, tenant, request.path_params[param]
        )
        return resource(found)

    return handler


def _updating(method: str, param: str, model: type[BaseModel]) -> Any:
    async def handler(request: Request) -> JSONResponse:
        who, tenant = await tenant_caller(request)
        body = await read_json(request, model)
        updated = await getattr(control(request).tenancy, method)(
            who, tenant, request.path_params[param], body, if_match(request)
        )
        return resource(updated)

    return handler


list_teams = _listing("list_teams")
create_team = _creating("create_team", TeamIn)
get_team = _reading("get_team", "team")
update_team = _updating("update_team", "team", TeamPatch)
list_projects = _listing("list_projects")
create_project = _creating("create_project", ProjectIn)
get_project = _reading("get_project", "p")
update_project = _updating("update_project", "p", ProjectPatch)


async def list_envs(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    page = await control(request).tenancy.list_envs(who, tenant, request.path_params["p"])
    return listing(page.items, page.next_cursor)


async def create_env(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    body = await read_json(request, EnvIn)
    env = await control(request).tenancy.create_env(who, tenant, request.path_params["p"], body)
    return resource(env, 201)


# -- role bindings ------------------------------------------------------------------------------


async def list_bindings(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    scope = request.query_params.get("scope")
    items = await control(request).tenancy.list_bindings(who, tenant, scope=scope)
    return listing(items, None)


async def create_binding(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    body = await read_json(request, BindingIn)
    record = await control(request).tenancy.grant(
        who, tenant, body.principal, body.role, body.scope
    )
    return JSONResponse(BindingOut(**record).model_dump(mode="json"), status_code=201)


async def delete_binding(request: Request) -> Response:
    who, tenant = await tenant_caller(request)
    await control(request).tenancy.revoke(who, tenant, request.path_params["id"])
    return Response(status_code=204)


# -- audit records ------------------------------------------------------------------------------


async def list_audit_records(request: Request) -> JSONResponse:
    """A tenant's chain with `x-tenant-id`; without it, the `system` chain (system admins and
    system-wide auditors)."""
    if request.headers.get("x-tenant-id"):
        who, tenant = await tenant_caller(request)
        who.check("audit.read", AccessScope.for_tenant(tenant))
        chain = f"tenant/{tenant}"
    else:
        who = await caller(request)
        who.check("audit.read", AccessScope.system())
        chain = "system"
    limit, cursor = page_args(request)
    q = request.query_params
    page = await control(request).audit.list(
        chain,
        actor=q.get("actor"),
        action=q.get("action"),
        target=q.get("target"),
        since=q.get("since"),
        until=q.get("until"),
        limit=limit,
        cursor=cursor,
    )
    return listing(page.items, page.next_cursor)


# -- the document -------------------------------------------------------------------------------


async def get_openapi(request: Request) -> JSONResponse:
    from cfp.api.audit_routes import AUDIT_OPERATIONS
    from cfp.api.auth_routes import AUTH_OPERATIONS
    from cfp.api.member_routes import MEMBER_OPERATIONS
    from cfp.api.report_routes import REPORT_OPERATIONS
    from cfp.api.runtime_ops import RUNTIME_OPERATIONS

    document = openapi_document(
        [
            *AUTH_OPERATIONS,
            *OPERATIONS,
            *PROJECTS_OPERATIONS,
            *MEMBER_OPERATIONS,
            *REPORT_OPERATIONS,
            *RUNTIME_OPERATIONS,
            *AUDIT_OPERATIONS,
        ],
        title="CFP",
        version="1",
    )
    return JSONResponse(document)


def _op(
    method: str, path: str, handler: Any, op_id: str, summary: str, tag: str, **kw: Any
) -> Operation:
    return Operation(method, path, handler, op_id, summary, tag, **kw)


_WRITE_ERRORS = ("400", "401", "403", "404", "409", "412", "422")

OPERATIONS: list[Operation] = [
    _op(
        "GET",
        "/v1/openapi.json",
        get_openapi,
        "getOpenApi",
        "This document",
        "meta",
        scope="public",
        errors=(),
    ),
    _op(
        "GET",
        "/v1/me",
        get_me,
        "getMe",
        "The caller and its role bindings",
        "identity",
        scope="principal",
        response=Me,
        errors=("401",),
    ),
    _op(
        "GET",
        "/v1/roles",
        list_roles,
        "listRoles",
        "The built-in roles and their actions",
        "roles",
        scope="principal",
        response=RoleOut,
        paged=True,
        errors=("401",),
    ),
    _op(
        "GET",
        "/v1/tenants",
        list_tenants,
        "listTenants",
        "Tenants: all for a system admin, else the caller's",
        "tenants",
        scope="principal",
        response=Tenant,
        paged=True,
        errors=("400", "401"),
    ),
    _op(
        "POST",
        "/v1/tenants",
        create_tenant,
        "createTenant",
        "Create a tenant (system admin)",
        "tenants",
        scope="principal",
        body=TenantIn,
        response=Tenant,
        status=201,
        errors=("400", "401", "403", "409", "422"),
        idempotent=True,
    ),
    _op(
        "GET",
        "/v1/tenants/{id}",
        get_tenant,
        "getTenant",
        "A tenant",
        "tenants",
        scope="principal",
        response=Tenant,
        errors=("401", "403", "404"),
    ),
    _op(
        "PATCH",
        "/v1/tenants/{id}",
        update_tenant,
        "updateTenant",
        "Rename, suspend or resume a tenant (system admin)",
        "tenants",
        scope="principal",
        body=TenantPatch,
        response=Tenant,
        errors=_WRITE_ERRORS,
        headers=("if-match",),
    ),
    _op(
        "DELETE",
        "/v1/tenants/{id}",
        delete_tenant,
        "deleteTenant",
        "Delete a tenant (soft; system admin)",
        "tenants",
        scope="principal",
        response=Tenant,
        errors=("400", "401", "403", "404", "412"),
        headers=("if-match",),
    ),
    _op(
        "GET",
        "/v1/teams",
        list_teams,
        "listTeams",
        "The tenant's teams",
        "teams",
        response=Team,
        paged=True,
    ),
    _op(
        "POST",
        "/v1/teams",
        create_team,
        "createTeam",
        "Create a team",
        "teams",
        body=TeamIn,
        response=Team,
        status=201,
        errors=_WRITE_ERRORS,
        idempotent=True,
    ),
    _op("GET", "/v1/teams/{team}", get_team, "getTeam", "A team", "teams", response=Team),
    _op(
        "PATCH",
        "/v1/teams/{team}",
        update_team,
        "updateTeam",
        "Rename a team or set its lead",
        "teams",
        body=TeamPatch,
        response=Team,
        errors=_WRITE_ERRORS,
        headers=("if-match",),
    ),
    _op(
        "GET",
        "/v1/projects/{p}",
        get_project,
        "getProject",
        "A project",
        "projects",
        response=Project,
    ),
    _op(
        "PATCH",
        "/v1/projects/{p}",
        update_project,
        "updateProject",
        "Rename a project or move it to a team",
        "projects",
        body=ProjectPatch,
        response=Project,
        errors=_WRITE_ERRORS,
        headers=("if-match",),
    ),
    _op(
        "GET",
        "/v1/projects/{p}/envs",
        list_envs,
        "listEnvs",
        "A project's environments",
        "projects",
        response=Env,
        paged=True,
    ),
    _op(
        "POST",
        "/v1/projects/{p}/envs",
        create_env,
        "createEnv",
        "Add an environment",
        "projects",
        body=EnvIn,
        response=Env,
        status=201,
        errors=_WRITE_ERRORS,
        idempotent=True,
    ),
    _op(
        "GET",
        "/v1/role-bindings",
        list_bindings,
        "listRoleBindings",
        "Role bindings in the tenant (`?scope=` narrows)",
        "roles",
        response=BindingOut,
        paged=True,
        query=(("scope", "Only bindings on this scope"),),
    ),
    _op(
        "POST",
        "/v1/role-bindings",
        create_binding,
        "createRoleBinding",
        "Grant a role on a scope",
        "roles",
        body=BindingIn,
        response=BindingOut,
        status=201,
        errors=_WRITE_ERRORS,
        idempotent=True,
    ),
    _op(
        "DELETE",
        "/v1/role-bindings/{id}",
        delete_binding,
        "deleteRoleBinding",
        "Revoke a role binding",
        "roles",
        status=204,
    ),
    _op(
        "GET",
        "/v1/audit/records",
        list_audit_records,
        "listAuditRecords",
        "The tenant's audit records, newest first",
        "audit",
        response=AuditRecordOut,
        paged=True,
        query=(
            ("actor", "Actor id"),
            ("action", "Action, e.g. tenant.create"),
            ("target", "Target type, or type/id"),
            ("since", "From this time (RFC 3339), inclusive"),
            ("until", "Until this time (RFC 3339), exclusive"),
        ),
    ),
]
"""The control-plane operations; `GET /v1/projects` and `POST /v1/projects` are declared by the
app, which serves them beside the runtime's own listing of what the process serves."""

PROJECTS_OPERATIONS = [
    _op(
        "GET",
        "/v1/projects",
        list_projects,
        "listProjects",
        "The tenant's projects the caller may read",
        "projects",
        response=Project,
        paged=True,
    ),
    _op(
        "POST",
        "/v1/projects",
        create_project,
        "createProject",
        "Create a project",
        "projects",
        body=ProjectIn,
        response=Project,
        status=201,
        errors=_WRITE_ERRORS,
        idempotent=True,
    ),
]


def not_found(request: Request) -> None:
    raise NotFound("no such route")
