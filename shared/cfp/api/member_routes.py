"""A tenant's members, invites, service accounts and API keys over HTTP (`/v1/users`,
`/v1/service-accounts`, `POST /v1/auth/invites/accept`). Thin: parse, resolve the caller, call
`cfp.services.members`, shape the reply. Declared once in `MEMBER_OPERATIONS`, which the app
mounts and the OpenAPI document lists."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cfp.api.auth_routes import client_of
from cfp.api.callers import control, tenant_caller
from cfp.api.operations import Operation
from cfp.api.runtime_routes import listing, page_args, read_json
from cfp.services.members import (
    ApiKey,
    ApiKeyCreatedOut,
    Invite,
    InviteAcceptedOut,
    InviteAcceptIn,
    InviteIn,
    Member,
    Members,
    ServiceAccount,
    ServiceAccountIn,
)


def members(request: Request) -> Members:
    return control(request).members


def _json(model: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


# -- members ------------------------------------------------------------------------------------


async def list_members(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    limit, cursor = page_args(request)
    page = await members(request).list_members(who, tenant, limit=limit, cursor=cursor)
    return listing(page.items, page.next_cursor)


async def get_member(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    return _json(await members(request).get_member(who, tenant, request.path_params["id"]))


async def disable_member(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    member = await members(request).set_status(who, tenant, request.path_params["id"], "disabled")
    return _json(member)


async def enable_member(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    member = await members(request).set_status(who, tenant, request.path_params["id"], "active")
    return _json(member)


async def reset_member_mfa(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    return _json(await members(request).reset_mfa(who, tenant, request.path_params["id"]))


async def remove_member(request: Request) -> Response:
    who, tenant = await tenant_caller(request)
    await members(request).remove(who, tenant, request.path_params["id"])
    return Response(status_code=204)


# -- invites ------------------------------------------------------------------------------------


async def create_invite(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    body = await read_json(request, InviteIn)
    return _json(await members(request).invite(who, tenant, body), 201)


async def list_invites(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    limit, cursor = page_args(request)
    page = await members(request).list_invites(who, tenant, limit=limit, cursor=cursor)
    return listing(page.items, page.next_cursor)


async def revoke_invite(request: Request) -> Response:
    who, tenant = await tenant_caller(request)
    await members(request).revoke_invite(who, tenant, request.path_params["id"])
    return Response(status_code=204)


async def accept_invite(request: Request) -> JSONResponse:
    body = await read_json(request, InviteAcceptIn)
    accepted = await members(request).accept_invite(
        body.token, body.password, body.display_name, client_of(request)
    )
    return _json(accepted)


# -- service accounts and keys ------------------------------------------------------------------


async def list_service_accounts(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    limit, cursor = page_args(request)
    page = await members(request).list_service_accounts(who, tenant, limit=limit, cursor=cursor)
    return listing(page.items, page.next_cursor)


async def create_service_account(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    body = await read_json(request, ServiceAccountIn)
    return _json(await members(request).create_service_account(who, tenant, body), 201)


async def get_service_account(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    account = await members(request).get_service_account(who, tenant, request.path_params["id"])
    return _json(account)


async def list_keys(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    keys = await members(request).list_keys(who, tenant, request.path_params["id"])
    return listing([k.model_dump(mode="json") for k in keys], None)


async def create_key(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    created = await members(request).create_key(who, tenant, request.path_params["id"])
    return _json(created, 201)


async def rotate_key(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    params = request.path_params
    created = await members(request).rotate_key(who, tenant, params["id"], params["key_id"])
    return _json(created, 201)


async def revoke_key(request: Request) -> Response:
    who, tenant = await tenant_caller(request)
    params = request.path_params
    await members(request).revoke_key(who, tenant, params["id"], params["key_id"])
    return Response(status_code=204)


def _op(
    method: str, path: str, handler: Any, op_id: str, summary: str, tag: str, **kw: Any
) -> Operation:
    return Operation(method, path, handler, op_id, summary, tag, **kw)


_CHANGE_ERRORS = ("400", "401", "403", "404", "409")
_CREATE_ERRORS = ("400", "401", "403", "404", "409", "422")

# `/v1/users/invites` before `/v1/users/{id}`: routes match in this order.
MEMBER_OPERATIONS: list[Operation] = [
    _op(
        "POST",
        "/v1/users/invites",
        create_invite,
        "createInvite",
        "Invite a person by mail (a one-time token, valid 7 days; a role, if named, is bound "
        "on accept)",
        "users",
        body=InviteIn,
        response=Invite,
        status=201,
        errors=(*_CREATE_ERRORS, "429"),
        idempotent=True,
    ),
    _op(
        "GET",
        "/v1/users/invites",
        list_invites,
        "listInvites",
        "The tenant's invites, newest first",
        "users",
        response=Invite,
        paged=True,
    ),
    _op(
        "DELETE",
        "/v1/users/invites/{id}",
        revoke_invite,
        "revokeInvite",
        "Withdraw an invite",
        "users",
        status=204,
    ),
    _op(
        "POST",
        "/v1/auth/invites/accept",
        accept_invite,
        "acceptInvite",
        "Accept an invite: a new account with this password, or an existing one (its password) "
        "joining the tenant",
        "auth",
        scope="public",
        body=InviteAcceptIn,
        response=InviteAcceptedOut,
        errors=("400", "401", "403", "422", "429"),
    ),
    _op(
        "GET",
        "/v1/users",
        list_members,
        "listMembers",
        "The tenant's members, people and service accounts, with their roles in it",
        "users",
        response=Member,
        paged=True,
    ),
    _op("GET", "/v1/users/{id}", get_member, "getMember", "A member", "users", response=Member),
    _op(
        "DELETE",
        "/v1/users/{id}",
        remove_member,
        "removeMember",
        "Remove a member and its role bindings from the tenant (the account stays)",
        "users",
        status=204,
        errors=_CHANGE_ERRORS,
    ),
    _op(
        "POST",
        "/v1/users/{id}/disable",
        disable_member,
        "disableMember",
        "Disable a member's account: its sessions end and its API keys stop working",
        "users",
        response=Member,
        errors=_CHANGE_ERRORS,
    ),
    _op(
        "POST",
        "/v1/users/{id}/enable",
        enable_member,
        "enableMember",
        "Enable a disabled member's account",
        "users",
        response=Member,
        errors=_CHANGE_ERRORS,
    ),
    _op(
        "POST",
        "/v1/users/{id}/mfa/reset",
        reset_member_mfa,
        "resetMemberMfa",
        "Turn a person's MFA off (a lost authenticator); its sessions end",
        "users",
        response=Member,
        errors=_CHANGE_ERRORS,
    ),
    _op(
        "GET",
        "/v1/service-accounts",
        list_service_accounts,
        "listServiceAccounts",
        "The tenant's service accounts",
        "service-accounts",
        response=ServiceAccount,
        paged=True,
    ),
    _op(
        "POST",
        "/v1/service-accounts",
        create_service_account,
        "createServiceAccount",
        "Create a service account (a member of the tenant; bind it roles, give it keys)",
        "service-accounts",
        body=ServiceAccountIn,
        response=ServiceAccount,
        status=201,
        errors=_CREATE_ERRORS,
        idempotent=True,
    ),
    _op(
        "GET",
        "/v1/service-accounts/{id}",
        get_service_account,
        "getServiceAccount",
        "A service account",
        "service-accounts",
        response=ServiceAccount,
    ),
    _op(
        "GET",
        "/v1/service-accounts/{id}/keys",
        list_keys,
        "listApiKeys",
        "A service account's API keys (never their secrets)",
        "service-accounts",
        response=ApiKey,
        paged=True,
    ),
    # Not idempotent: replaying would need the key kept in clear.
    _op(
        "POST",
        "/v1/service-accounts/{id}/keys",
        create_key,
        "createApiKey",
        "A new API key `cfp_sk_…`, shown once in this answer",
        "service-accounts",
        response=ApiKeyCreatedOut,
        status=201,
        errors=_CHANGE_ERRORS,
    ),
    _op(
        "POST",
        "/v1/service-accounts/{id}/keys/{key_id}/rotate",
        rotate_key,
        "rotateApiKey",
        "Replace an API key: the new one shown once, the old one stops working now",
        "service-accounts",
        response=ApiKeyCreatedOut,
        status=201,
        errors=_CHANGE_ERRORS,
    ),
    _op(
        "DELETE",
        "/v1/service-accounts/{id}/keys/{key_id}",
        revoke_key,
        "revokeApiKey",
        "Revoke an API key: it stops working now",
        "service-accounts",
        status=204,
        errors=_CHANGE_ERRORS,
    ),
]
