"""Who is calling, for every control-plane route: the bearer token (an access token or a service
account's API key) resolved to a `Caller` with its role bindings, read at each request so a
binding change applies to the very next one; and the tenant named by `x-tenant-id`, checked for
membership, status and region."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from cfp.domain.callers import Caller
from cfp.domain.rbac import AccessScope
from cfp.errors import BadRequest, Forbidden, NotFound, Unauthorized

TENANT_HEADER = "x-tenant-id"


def control(request: Request) -> Any:
    """The control plane of the platform serving the request."""
    return request.app.state.platform.control


async def optional_caller(request: Request) -> Caller | None:
    """The caller, or None when the request carries no credentials; 401 for bad ones."""
    if hasattr(request.state, "caller"):
        return request.state.caller
    header = request.headers.get("authorization", "")
    caller = None
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be `Bearer <access token or API key>`")
        caller = await control(request).authenticate(
            token.strip(),
            correlation_id=getattr(request.state, "correlation_id", None),
            trace_id=getattr(request.state, "trace_id", None),
            client_address=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
        )
    request.state.caller = caller
    return caller


async def caller(request: Request) -> Caller:
    """The authenticated caller; 401 without credentials."""
    found = await optional_caller(request)
    if found is None:
        raise Unauthorized("this route needs credentials: `Authorization: Bearer …`")
    return found


async def tenant_caller(request: Request, tenant: str | None = None) -> tuple[Caller, str]:
    """The caller and the tenant of a tenant-scoped route. 400 without `x-tenant-id`; 403 —
    the same answer whether or not the tenant exists — unless the caller holds a binding in it
    (or is a system admin); 403 for a suspended tenant; 421 for a tenant of another region."""
    who = await caller(request)
    tenant = tenant or request.headers.get(TENANT_HEADER, "").strip()
    if not tenant:
        raise BadRequest(
            f"this route is tenant-scoped: send the `{TENANT_HEADER}` header",
            details={"header": TENANT_HEADER},
        )
    if not (who.is_system_admin or tenant in who.tenants()):
        raise Forbidden(f"no access to tenant {tenant!r}", details={"tenant": tenant})
    try:
        record = await control(request).tenancy.resolve_tenant(tenant)
    except NotFound:
        raise Forbidden(f"no access to tenant {tenant!r}", details={"tenant": tenant}) from None
    if record["status"] == "suspended" and not who.is_system_admin:
        raise Forbidden(f"tenant {tenant!r} is suspended", details={"tenant": tenant})
    return who, tenant


def scope_of(tenant: str) -> AccessScope:
    return AccessScope.for_tenant(tenant)
