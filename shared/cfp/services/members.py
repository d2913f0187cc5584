"""A tenant's members — the people and service accounts that belong to it — with invites and the
service accounts' API keys.

Principals are global (`cfp.services.identity`); a membership `tenants/{t}/members/{principal}`
says that one belongs to a tenant. It is made when a person accepts an invite or a service account
is created in the tenant, in the same transaction; what a member may do comes from its role
bindings, not from the membership.

Authorization: `user.read` on the tenant to read, `user.manage` to change. Every change commits
with its audit record on the tenant's chain: membership changes through `AuditLog.commit`, the
identity changes (invites, status, MFA, service accounts, keys) in identity's own transaction,
whose audit event names the tenant.

Disabling a principal and resetting its MFA change the global principal, in every tenant it
belongs to. A tenant's administrator may do that only to a principal bound nowhere else (no
binding in another tenant or on the system); a principal shared with other tenants is removed
from this one instead, or disabled by a system-wide administrator, so one tenant cannot lock a
person out of another.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cfp.domain.callers import Caller
from cfp.domain.documents import CreateDoc, DeleteDoc, Filter, Page, SetDoc, Write
from cfp.domain.identity import (
    ApiKeyCreated,
    ApiKeyView,
    Client,
    InviteAccepted,
    InviteView,
    PrincipalView,
)
from cfp.domain.rbac import AccessScope, InvalidBinding, can_grant, check_binding
from cfp.domain.tenancy import TenantPaths
from cfp.errors import BadRequest, Conflict, Forbidden, NotFound
from cfp.ports import DocumentStore
from cfp.services.audit import AuditLog
from cfp.services.identity import IdentityService
from cfp.services.tenancy import ROLE_BINDINGS, Tenancy

MAX_BINDINGS = 500  # of one principal in one tenant, listed with the member


def iso(epoch: float | None) -> str | None:
    """Epoch seconds as the API shows times (RFC 3339, UTC, milliseconds)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- wire shapes --------------------------------------------------------------------------------


class MemberRole(BaseModel):
    binding_id: str
    role: str
    scope: str


class Member(BaseModel):
    """A member as `GET /v1/users` lists it: never a password hash, seed or key."""

    id: str
    kind: Literal["user", "service_account"]
    email: str | None
    display_name: str
    status: Literal["active", "disabled"]
    mfa_enabled: bool
    roles: list[MemberRole]
    joined_at: str
    joined_via: Literal["invite", "service_account", "added"]


class InviteIn(_Strict):
    email: str = Field(min_length=3, max_length=320)
    role: str | None = Field(default=None, max_length=100, description="A role to bind on accept")
    scope: str | None = Field(
        default=None, max_length=400, description="Where to bind the role; default: the tenant"
    )


class Invite(BaseModel):
    """An invite; `id` is its token's hash, enough to revoke it and useless to accept it."""

    id: str
    email: str
    role: str | None
    scope: str | None
    status: Literal["pending", "accepted", "revoked"]
    invited_by: str | None
    created_at: str
    expires_at: str


class InviteAcceptIn(_Strict):
    token: str = Field(min_length=1, max_length=400)
    password: str = Field(min_length=1, max_length=4096)
    display_name: str = Field(default="", max_length=200)


class InviteAcceptedOut(BaseModel):
    principal_id: str
    email: str | None
    tenant: str
    role: str | None
    scope: str | None
    created: bool  # a new account, rather than an existing one joining the tenant


class ServiceAccountIn(_Strict):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)


class ServiceAccount(BaseModel):
    id: str
    name: str
    description: str | None
    status: Literal["active", "disabled"]
    created_at: str
    created_by: str | None


class ApiKey(BaseModel):
    """An API key's record: never its secret."""

    key_id: str
    service_account_id: str
    status: Literal["active", "revoked"]
    created_at: str
    expires_at: str | None
    last_used_at: str | None


class ApiKeyCreatedOut(BaseModel):
    """Shown once: `key` is the whole credential `cfp_sk_…`, stored nowhere but as a hash."""

    key: str
    api_key: ApiKey


def _invite(view: InviteView) -> Invite:
    return Invite(
        id=view.id,
        email=view.email,
        role=view.role,
        scope=view.scope or (f"tenant/{view.tenant}" if view.role else None),
        status=view.status,
        invited_by=view.invited_by,
        created_at=iso(view.created_at) or "",
        expires_at=iso(view.expires_at) or "",
    )


def _api_key(view: ApiKeyView) -> ApiKey:
    return ApiKey(
        key_id=view.key_id,
        service_account_id=view.principal_id,
        status=view.status,
        created_at=iso(view.created_at) or "",
        expires_at=iso(view.expires_at),
        last_used_at=iso(view.last_used_at),
    )


def _created(created: ApiKeyCreated) -> ApiKeyCreatedOut:
    return ApiKeyCreatedOut(key=created.key, api_key=_api_key(created.api_key))


def _stored(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "_id"}


class Members:
    """Members, invites, service accounts and keys of tenants; every method takes its caller."""

    def __init__(
        self,
        documents: DocumentStore,
        audit: AuditLog,
        identity: IdentityService,
        tenancy: Tenancy,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.documents = documents
        self.audit = audit
        self.identity = identity
        self.tenancy = tenancy
        self.clock = clock

    # -- shared -----------------------------------------------------------------------------

    def _membership(self, view: PrincipalView, via: str, by: str | None) -> dict[str, Any]:
        return {
            "principal": view.id,
            "kind": view.kind,
            "joined_at": iso(self.clock()),
            "joined_via": via,
            "added_by": by,
        }

    async def _bindings(self, tenant: str, principal: str) -> list[dict[str, Any]]:
        page = await self.documents.list(
            ROLE_BINDINGS,
            where=[Filter("principal", "==", principal), Filter("tenant", "==", tenant)],
            limit=MAX_BINDINGS,
        )
        return [_stored(d) for d in page.items]

    async def _member(self, tenant: str, membership: dict[str, Any], view: PrincipalView) -> Member:
        bindings = await self._bindings(tenant, view.id)
        return Member(
            id=view.id,
            kind=view.kind,
            email=view.email,
            display_name=view.display_name,
            status=view.status,
            mfa_enabled=view.mfa_enabled,
            roles=[
                MemberRole(binding_id=b["id"], role=b["role"], scope=b["scope"]) for b in bindings
            ],
            joined_at=membership["joined_at"],
            joined_via=membership["joined_via"],
        )

    async def _member_principal(
        self, tenant: str, principal: str
    ) -> tuple[dict[str, Any], PrincipalView]:
        """The membership and principal of a member of `tenant`; NotFound for anyone else."""
        doc = await self.documents.get(TenantPaths(tenant).member(principal))
        missing = NotFound(f"no member {principal!r} in this tenant", details={"id": principal})
        if doc is None:
            raise missing
        try:
            return _stored(doc), await self.identity.get_principal(principal)
        except NotFound:
            raise missing from None

    async def _may_change_principal(self, caller: Caller, tenant: str, view: PrincipalView) -> None:
        """A tenant's administrator changes a global principal only if it is bound nowhere else."""
        if caller.may("user.manage", AccessScope.system()):
            return
        elsewhere = [b for b in await self.tenancy.bindings_of(view.id) if b.scope.tenant != tenant]
        if elsewhere:
            raise Forbidden(
                "this account belongs to other tenants too: remove it from this tenant instead, "
                "or ask a system administrator to disable it",
                code="principal_shared",
                details={"id": view.id},
            )

    async def _scope_team(self, scope: AccessScope) -> str | None:
        if scope.tenant and scope.project:
            return await self.tenancy.project_team(scope.tenant, scope.project)
        return None

    # -- members ----------------------------------------------------------------------------

    async def list_members(
        self, caller: Caller, tenant: str, *, limit: int, cursor: str | None
    ) -> Page:
        """The tenant's members, people and service accounts, with the roles they hold in it."""
        caller.check("user.read", AccessScope.for_tenant(tenant))
        page = await self.documents.list(TenantPaths(tenant).members(), limit=limit, cursor=cursor)
        items = []
        for doc in page.items:
            try:
                view = await self.identity.get_principal(doc["principal"])
            except NotFound:
                continue
            member = await self._member(tenant, _stored(doc), view)
            items.append(member.model_dump(mode="json"))
        return Page(items, page.next_cursor)

    async def get_member(self, caller: Caller, tenant: str, principal: str) -> Member:
        caller.check("user.read", AccessScope.for_tenant(tenant))
        membership, view = await self._member_principal(tenant, principal)
        return await self._member(tenant, membership, view)

    async def set_status(
        self, caller: Caller, tenant: str, principal: str, status: Literal["active", "disabled"]
    ) -> Member:
        """Disable (every session and API key stops working at once) or enable a member."""
        caller.check("user.manage", AccessScope.for_tenant(tenant))
        membership, view = await self._member_principal(tenant, principal)
        if status == "disabled" and principal == caller.principal_id:
            raise BadRequest("you cannot disable yourself", code="cannot_disable_self")
        await self._may_change_principal(caller, tenant, view)
        updated = await self.identity.set_status(
            principal, status, actor=caller.principal_id, tenant=tenant
        )
        return await self._member(tenant, membership, updated)

    async def reset_mfa(self, caller: Caller, tenant: str, principal: str) -> Member:
        """Turn a person's MFA off (a lost authenticator and codes); every session ends."""
        caller.check("user.manage", AccessScope.for_tenant(tenant))
        membership, view = await self._member_principal(tenant, principal)
        if view.kind != "user":
            raise BadRequest("a service account has no MFA", code="not_a_person")
        await self._may_change_principal(caller, tenant, view)
        updated = await self.identity.reset_mfa(principal, actor=caller.principal_id, tenant=tenant)
        return await self._member(tenant, membership, updated)

    async def remove(self, caller: Caller, tenant: str, principal: str) -> None:
        """Remove a member from the tenant with its role bindings there; the principal itself
        stays (it may belong to other tenants). A service account is disabled first, so that
        no key of it outlives its membership."""
        caller.check("user.manage", AccessScope.for_tenant(tenant))
        _, view = await self._member_principal(tenant, principal)
        paths = TenantPaths(tenant)
        if view.kind == "service_account" and view.status == "active":
            raise Conflict(
                "disable the service account before removing it: "
                f"POST /v1/users/{principal}/disable",
                code="service_account_active",
                details={"id": principal},
            )
        bindings = await self._bindings(tenant, principal)
        for binding in bindings:  # removing a binding needs what granting it needs
            target = AccessScope.parse(binding["scope"])
            decision = can_grant(
                caller.bindings, binding["role"], target, team=await self._scope_team(target)
            )
            if not decision.allowed:
                raise Forbidden(decision.reason, details=decision.details())
        writes: list[Write] = [DeleteDoc(paths.member(principal))]
        writes += [DeleteDoc(f"{ROLE_BINDINGS}/{b['id']}") for b in bindings]
        if view.kind == "service_account":
            writes.append(DeleteDoc(paths.service_account(principal)))
        await self.audit.commit(
            writes,
            [
                caller.entry(
                    "member.remove",
                    "principal",
                    principal,
                    f"tenant/{tenant}",
                    details={
                        "kind": view.kind,
                        "bindings": [f"{b['role']} on {b['scope']}" for b in bindings],
                    },
                )
            ],
        )

    # -- invites ----------------------------------------------------------------------------

    async def invite(self, caller: Caller, tenant: str, body: InviteIn) -> Invite:
        """Mail a one-time invite; a role in it is granted on accept, so inviting with a role
        needs what granting that role needs."""
        caller.check("user.manage", AccessScope.for_tenant(tenant))
        scope = None
        if body.role is not None:
            target = AccessScope.parse(body.scope or f"tenant/{tenant}")
            if target.tenant != tenant:
                raise BadRequest(
                    f"scope {target} is not in tenant {tenant}", details={"scope": str(target)}
                )
            check_binding(body.role, target)
            decision = can_grant(
                caller.bindings, body.role, target, team=await self._scope_team(target)
            )
            if not decision.allowed:
                raise Forbidden(decision.reason, details=decision.details())
            scope = str(target)
        elif body.scope is not None:
            raise BadRequest("a scope needs a role to bind there", details={"scope": body.scope})
        view = await self.identity.create_invite(
            tenant,
            body.email,
            role=body.role,
            scope=scope,
            invited_by=caller.principal_id,
            client=Client(address=caller.client_address, user_agent=caller.user_agent),
        )
        return _invite(view)

    async def list_invites(
        self, caller: Caller, tenant: str, *, limit: int, cursor: str | None
    ) -> Page:
        caller.check("user.read", AccessScope.for_tenant(tenant))
        views, next_cursor = await self.identity.list_invites(tenant, limit=limit, cursor=cursor)
        return Page([_invite(v).model_dump(mode="json") for v in views], next_cursor)

    async def revoke_invite(self, caller: Caller, tenant: str, invite_id: str) -> Invite:
        caller.check("user.manage", AccessScope.for_tenant(tenant))
        view = await self.identity.revoke_invite(tenant, invite_id, actor=caller.principal_id)
        return _invite(view)

    async def accept_invite(
        self, token: str, password: str, display_name: str, client: Client | None
    ) -> InviteAcceptedOut:
        """Accept an invite (no caller: the token is the credential)."""
        accepted = await self.identity.accept_invite(token, password, display_name, client)
        return InviteAcceptedOut(
            principal_id=accepted.principal.id,
            email=accepted.principal.email,
            tenant=accepted.tenant,
            role=accepted.role,
            scope=accepted.scope or (f"tenant/{accepted.tenant}" if accepted.role else None),
            created=accepted.created,
        )

    async def on_invite_accepted(self, accepted: InviteAccepted) -> Sequence[Write]:
        """The membership and the invite's role binding, applied with the acceptance (whose
        audit record, `invite.accept` on the tenant's chain, records them)."""
        tenant, view = accepted.tenant, accepted.principal
        writes: list[Write] = []
        path = TenantPaths(tenant).member(view.id)
        if await self.documents.get(path) is None:
            # A create: if the membership appears meanwhile, identity reads again and retries.
            writes.append(CreateDoc(path, self._membership(view, "invite", accepted.invited_by)))
        if accepted.role is None:
            return writes
        scope = accepted.scope or f"tenant/{tenant}"
        try:
            check_binding(accepted.role, scope)
        except InvalidBinding:
            return writes  # the role left the table since the invite: join without it
        held = await self._bindings(tenant, view.id)
        if any(b["role"] == accepted.role and b["scope"] == scope for b in held):
            return writes
        ident = uuid.uuid4().hex
        record = {
            "id": ident,
            "principal": view.id,
            "role": accepted.role,
            "scope": scope,
            "tenant": tenant,
            "created_at": iso(self.clock()),
            "created_by": accepted.invited_by or "invite",
        }
        writes.append(SetDoc(f"{ROLE_BINDINGS}/{ident}", record))
        return writes

    # -- service accounts -------------------------------------------------------------------

    async def create_service_account(
        self, caller: Caller, tenant: str, body: ServiceAccountIn
    ) -> ServiceAccount:
        """A service account of the tenant, a member of it from the start; bind it roles with
        `POST /v1/role-bindings` and give it keys."""
        caller.check("user.manage", AccessScope.for_tenant(tenant))
        paths = TenantPaths(tenant)
        stamp = iso(self.clock()) or ""
        record: dict[str, Any] = {}

        def directory(view: PrincipalView) -> list[Write]:
            record.update(
                id=view.id,
                name=body.name,
                description=body.description,
                created_at=stamp,
                created_by=caller.principal_id,
            )
            return [
                CreateDoc(
                    paths.member(view.id),
                    self._membership(view, "service_account", caller.principal_id),
                ),
                CreateDoc(paths.service_account(view.id), dict(record)),
            ]

        view = await self.identity.create_service_account(
            tenant, body.name, actor=caller.principal_id, with_writes=directory
        )
        return ServiceAccount(**record, status=view.status)

    async def _service_account(
        self, tenant: str, account: str
    ) -> tuple[dict[str, Any], PrincipalView]:
        doc = await self.documents.get(TenantPaths(tenant).service_account(account))
        missing = NotFound(
            f"no service account {account!r} in this tenant", details={"id": account}
        )
        if doc is None:
            raise missing
        try:
            view = await self.identity.get_principal(account)
        except NotFound:
            raise missing from None
        if view.kind != "service_account" or view.tenant != tenant:
            raise missing
        return _stored(doc), view

    async def list_service_accounts(
        self, caller: Caller, tenant: str, *, limit: int, cursor: str | None
    ) -> Page:
        caller.check("user.read", AccessScope.for_tenant(tenant))
        page = await self.documents.list(
            TenantPaths(tenant).service_accounts(), limit=limit, cursor=cursor
        )
        items = []
        for doc in page.items:
            try:
                view = await self.identity.get_principal(doc["id"])
            except NotFound:
                continue
            account = ServiceAccount(**_stored(doc), status=view.status)
            items.append(account.model_dump(mode="json"))
        return Page(items, page.next_cursor)

    async def get_service_account(
        self, caller: Caller, tenant: str, account: str
    ) -> ServiceAccount:
        caller.check("user.read", AccessScope.for_tenant(tenant))
        doc, view = await self._service_account(tenant, account)
        return ServiceAccount(**doc, status=view.status)

    async def _key_of(self, tenant: str, account: str, key_id: str) -> ApiKeyView:
        """A key of this service account in this tenant; NotFound for any other."""
        await self._service_account(tenant, account)
        missing = NotFound(f"no API key {key_id!r} of this service account", details={"id": key_id})
        try:
            view = await self.identity.get_api_key(key_id)
        except NotFound:
            raise missing from None
        if view.principal_id != account or view.tenant != tenant:
            raise missing
        return view

    async def create_key(self, caller: Caller, tenant: str, account: str) -> ApiKeyCreatedOut:
        """A new API key, whole in the answer only: the store keeps its hash."""
        caller.check("user.manage", AccessScope.for_tenant(tenant))
        await self._service_account(tenant, account)
        created = await self.identity.create_api_key(
            account, tenant=tenant, actor=caller.principal_id
        )
        return _created(created)

    async def list_keys(self, caller: Caller, tenant: str, account: str) -> list[ApiKey]:
        caller.check("user.read", AccessScope.for_tenant(tenant))
        await self._service_account(tenant, account)
        views = await self.identity.list_api_keys(account)
        return [_api_key(v) for v in views if v.tenant == tenant]

    async def rotate_key(
        self, caller: Caller, tenant: str, account: str, key_id: str
    ) -> ApiKeyCreatedOut:
        """A new key in place of `key_id`, which stops working now."""
        caller.check("user.manage", AccessScope.for_tenant(tenant))
        await self._key_of(tenant, account, key_id)
        return _created(await self.identity.rotate_api_key(key_id, actor=caller.principal_id))

    async def revoke_key(self, caller: Caller, tenant: str, account: str, key_id: str) -> ApiKey:
        caller.check("user.manage", AccessScope.for_tenant(tenant))
        await self._key_of(tenant, account, key_id)
        return _api_key(await self.identity.revoke_api_key(key_id, actor=caller.principal_id))
