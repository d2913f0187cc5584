"""A tenant's members and service accounts over HTTP: invite by mail, accept, sign in and see the
tenant; disable (401 at once), enable, MFA reset, remove (403 in that tenant); service accounts
whose `cfp_sk_` keys authenticate per their bindings, rotate and revoke, and are never stored or
listed in clear."""

from __future__ import annotations

import email
import re
from pathlib import Path
from typing import Any

import pyotp
import pytest
from openapi_spec_validator import validate

from tests.api.conftest import error_of, ok_json

pytestmark = pytest.mark.api

ADMIN = "admin@example.com"
PASSWORD = "correct horse battery staple"
GRACE = "grace@example.com"


@pytest.fixture
def client(serve):
    return serve(
        password_profile="test",
        bootstrap_admin_email=ADMIN,
        bootstrap_admin_password=PASSWORD,
    )


def signin(client, email_: str = ADMIN, password: str = PASSWORD) -> dict:
    return ok_json(client.post("/v1/auth/signin", json={"email": email_, "password": password}))


def bearer(credential: dict | str, tenant: str | None = None) -> dict:
    token = credential if isinstance(credential, str) else credential["access_token"]
    headers = {"authorization": f"Bearer {token}"}
    if tenant:
        headers["x-tenant-id"] = tenant
    return headers


def data_dir(client) -> Path:
    return Path(client.app.state.platform.settings.data_dir)


def mails(client) -> list[email.message.Message]:
    outbox = sorted((data_dir(client) / "outbox").glob("*.eml"))
    return [email.message_from_bytes(p.read_bytes()) for p in outbox]


def invite_token(client, to: str) -> str:
    [message] = [m for m in mails(client) if m["To"] == to][-1:]
    body = message.get_payload(decode=True).decode()
    [token] = set(re.findall(r"cfp_inv_[A-Za-z0-9_-]+", body))
    return token


def stored_bytes(client) -> bytes:
    """Everything the platform keeps on disk but the outbox (mail is the invite's channel)."""
    root = data_dir(client)
    return b"".join(
        p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "outbox" not in p.relative_to(root).parts
    )


@pytest.fixture
def admin(client) -> dict:
    tokens = signin(client)
    ok_json(
        client.post(
            "/v1/tenants", json={"name": "Acme", "region": "local"}, headers=bearer(tokens)
        ),
        201,
    )
    return tokens


def join(client, admin: dict, email_: str, role: str | None = "tenant_viewer", **extra) -> dict:
    """Invite `email_` to acme, accept from the mail, sign in: their tokens."""
    ok_json(
        client.post(
            "/v1/users/invites",
            json={"email": email_, **({"role": role} if role else {}), **extra},
            headers=bearer(admin, "acme"),
        ),
        201,
    )
    ok_json(
        client.post(
            "/v1/auth/invites/accept",
            json={"token": invite_token(client, email_), "password": PASSWORD},
        )
    )
    return signin(client, email_)


def member(client, admin: dict, email_: str) -> dict[str, Any]:
    items = ok_json(client.get("/v1/users", headers=bearer(admin, "acme")))["items"]
    [found] = [m for m in items if m["email"] == email_]
    return found


def audit_actions(client, admin: dict, tenant: str | None = "acme") -> list[str]:
    records = ok_json(client.get("/v1/audit/records?limit=200", headers=bearer(admin, tenant)))
    return [r["action"] for r in reversed(records["items"])]


def test_invite_mail_accept_signin_and_the_tenant_with_the_invited_role(client, admin) -> None:
    h = bearer(admin, "acme")

    created = client.post(
        "/v1/users/invites", json={"email": "Grace@Example.com", "role": "tenant_viewer"}, headers=h
    )

    invite = ok_json(created, 201)
    assert (invite["email"], invite["role"], invite["scope"], invite["status"]) == (
        GRACE,
        "tenant_viewer",
        "tenant/acme",
        "pending",
    )
    token = invite_token(client, GRACE)
    assert token not in created.text and "cfp_inv_" not in created.text
    listed = ok_json(client.get("/v1/users/invites", headers=h))["items"]
    assert [i["id"] for i in listed] == [invite["id"]] and "cfp_inv_" not in str(listed)

    accepted = ok_json(
        client.post(
            "/v1/auth/invites/accept",
            json={"token": token, "password": PASSWORD, "display_name": "Grace Hopper"},
        )
    )
    assert accepted["created"] and accepted["tenant"] == "acme"

    grace = signin(client, GRACE)
    me = ok_json(client.get("/v1/me", headers=bearer(grace)))
    assert [(b["role"], b["scope"]) for b in me["bindings"]] == [("tenant_viewer", "tenant/acme")]
    tenants = ok_json(client.get("/v1/tenants", headers=bearer(grace)))["items"]
    assert [t["id"] for t in tenants] == ["acme"]
    ok_json(client.get("/v1/teams", headers=bearer(grace, "acme")))
    error_of(
        client.post("/v1/teams", json={"name": "T"}, headers=bearer(grace, "acme")),
        403,
        "forbidden",
    )

    listed_member = member(client, admin, GRACE)
    assert listed_member["display_name"] == "Grace Hopper"
    assert (listed_member["kind"], listed_member["status"]) == ("user", "active")
    assert [(r["role"], r["scope"]) for r in listed_member["roles"]] == [
        ("tenant_viewer", "tenant/acme")
    ]
    again = client.post("/v1/auth/invites/accept", json={"token": token, "password": PASSWORD})
    error_of(again, 401, "invalid_invite")
    assert audit_actions(client, admin) == ["invite.create", "invite.accept"]
    assert token.encode() not in stored_bytes(client)


def test_an_invite_can_bind_on_a_project_and_be_revoked(client, admin) -> None:
    h = bearer(admin, "acme")
    ok_json(client.post("/v1/projects", json={"name": "Shop"}, headers=h), 201)
    ada = join(client, admin, "ada@example.com", "project_editor", scope="tenant/acme/project/shop")
    me = ok_json(client.get("/v1/me", headers=bearer(ada)))
    assert [(b["role"], b["scope"]) for b in me["bindings"]] == [
        ("project_editor", "tenant/acme/project/shop")
    ]

    invite = ok_json(
        client.post("/v1/users/invites", json={"email": "dan@example.com"}, headers=h), 201
    )
    token = invite_token(client, "dan@example.com")
    assert client.delete(f"/v1/users/invites/{invite['id']}", headers=h).status_code == 204
    late = client.post("/v1/auth/invites/accept", json={"token": token, "password": PASSWORD})
    error_of(late, 401, "invalid_invite")

    outside = {"email": "x@example.com", "role": "tenant_viewer", "scope": "tenant/other"}
    error_of(client.post("/v1/users/invites", json=outside, headers=h), 400, "bad_request")
    system = {"email": "x@example.com", "role": "system_admin"}
    error_of(client.post("/v1/users/invites", json=system, headers=h), 422, "invalid_binding")


def test_disable_is_401_at_the_next_request_and_enable_lets_them_back(client, admin) -> None:
    grace = join(client, admin, GRACE)
    grace_id = member(client, admin, GRACE)["id"]
    h = bearer(admin, "acme")
    ok_json(client.get("/v1/teams", headers=bearer(grace, "acme")))

    disabled = ok_json(client.post(f"/v1/users/{grace_id}/disable", headers=h))

    assert disabled["status"] == "disabled"
    error_of(client.get("/v1/teams", headers=bearer(grace, "acme")), 401, "session_ended")
    refused = client.post("/v1/auth/signin", json={"email": GRACE, "password": PASSWORD})
    error_of(refused, 401, "invalid_credentials")
    refresh = client.post("/v1/auth/refresh", json={"refresh_token": grace["refresh_token"]})
    assert refresh.status_code == 401
    assert member(client, admin, GRACE)["status"] == "disabled"

    assert ok_json(client.post(f"/v1/users/{grace_id}/enable", headers=h))["status"] == "active"
    ok_json(client.get("/v1/teams", headers=bearer(signin(client, GRACE), "acme")))
    assert audit_actions(client, admin)[-2:] == ["principal.disable", "principal.enable"]
    assert "principal.disable" not in audit_actions(client, admin, None)  # not the system chain


def test_remove_is_403_in_that_tenant_and_keeps_the_account(client, admin) -> None:
    grace = join(client, admin, GRACE)
    grace_id = member(client, admin, GRACE)["id"]

    assert client.delete(f"/v1/users/{grace_id}", headers=bearer(admin, "acme")).status_code == 204

    error_of(client.get("/v1/teams", headers=bearer(grace, "acme")), 403, "forbidden")
    me = ok_json(client.get("/v1/me", headers=bearer(grace)))
    assert me["id"] == grace_id and me["bindings"] == []
    items = ok_json(client.get("/v1/users", headers=bearer(admin, "acme")))["items"]
    assert GRACE not in [m["email"] for m in items]
    error_of(client.get(f"/v1/users/{grace_id}", headers=bearer(admin, "acme")), 404, "not_found")
    assert audit_actions(client, admin)[-1] == "member.remove"


def test_admin_mfa_reset_lets_them_sign_in_with_the_password(client, admin) -> None:
    grace = join(client, admin, GRACE)
    grace_id = member(client, admin, GRACE)["id"]
    enrolment = ok_json(client.post("/v1/auth/mfa/totp", headers=bearer(grace)))
    code = pyotp.TOTP(enrolment["secret"]).now()
    ok_json(client.post("/v1/auth/mfa/totp/confirm", json={"code": code}, headers=bearer(grace)))
    challenged = ok_json(
        client.post("/v1/auth/signin", json={"email": GRACE, "password": PASSWORD})
    )
    assert challenged["mfa_required"]
    assert member(client, admin, GRACE)["mfa_enabled"]

    reset = ok_json(client.post(f"/v1/users/{grace_id}/mfa/reset", headers=bearer(admin, "acme")))

    assert not reset["mfa_enabled"]
    assert "access_token" in signin(client, GRACE)
    assert audit_actions(client, admin)[-1] == "auth.mfa.reset"


def test_viewers_read_members_and_only_managers_change_them(client, admin) -> None:
    viewer = bearer(join(client, admin, "vic@example.com"), "acme")
    grace = join(client, admin, GRACE)
    grace_id = member(client, admin, GRACE)["id"]

    assert len(ok_json(client.get("/v1/users", headers=viewer))["items"]) == 2
    for method, path, body in (
        ("POST", "/v1/users/invites", {"email": "x@example.com"}),
        ("POST", f"/v1/users/{grace_id}/disable", None),
        ("POST", f"/v1/users/{grace_id}/mfa/reset", None),
        ("DELETE", f"/v1/users/{grace_id}", None),
        ("POST", "/v1/service-accounts", {"name": "ci"}),
    ):
        response = client.request(method, path, json=body, headers=viewer)
        error_of(response, 403, "forbidden")
    ok_json(client.get("/v1/teams", headers=bearer(grace, "acme")))


def test_a_service_account_key_authenticates_per_its_bindings(client, admin) -> None:
    h = bearer(admin, "acme")
    account = ok_json(
        client.post(
            "/v1/service-accounts", json={"name": "deployer", "description": "CI"}, headers=h
        ),
        201,
    )
    assert (account["name"], account["description"], account["status"]) == (
        "deployer",
        "CI",
        "active",
    )
    sa = account["id"]
    created = client.post(f"/v1/service-accounts/{sa}/keys", headers=h)
    key = ok_json(created, 201)["key"]
    assert key.startswith("cfp_sk_")

    me = ok_json(client.get("/v1/me", headers=bearer(key)))
    assert (me["id"], me["kind"]) == (sa, "service_account")
    error_of(client.get("/v1/teams", headers=bearer(key, "acme")), 403, "forbidden")  # no role yet
    binding = {"principal": sa, "role": "tenant_viewer", "scope": "tenant/acme"}
    ok_json(client.post("/v1/role-bindings", json=binding, headers=h), 201)
    ok_json(client.get("/v1/teams", headers=bearer(key, "acme")))
    error_of(
        client.post("/v1/teams", json={"name": "T"}, headers=bearer(key, "acme")), 403, "forbidden"
    )
    ok_json(client.post("/v1/tenants", json={"name": "Globex", "region": "local"}, headers=h), 201)
    error_of(client.get("/v1/teams", headers=bearer(key, "globex")), 403, "forbidden")

    listed = client.get(f"/v1/service-accounts/{sa}/keys", headers=h)
    [record] = ok_json(listed)["items"]
    assert record["status"] == "active" and record["last_used_at"] is not None
    secret = key[len("cfp_sk_") + 17 :]  # after `cfp_sk_{16 hex}_`; it may hold "_" itself
    assert key not in listed.text and secret not in listed.text
    members = client.get("/v1/users", headers=h)
    assert [m["kind"] for m in ok_json(members)["items"] if m["id"] == sa] == ["service_account"]
    accounts = ok_json(client.get("/v1/service-accounts", headers=h))["items"]
    assert [a["id"] for a in accounts] == [sa]
    assert ok_json(client.get(f"/v1/service-accounts/{sa}", headers=h))["name"] == "deployer"
    assert key.encode() not in stored_bytes(client)
    assert secret.encode() not in stored_bytes(client)


def test_rotated_and_revoked_keys_stop_working(client, admin) -> None:
    h = bearer(admin, "acme")
    sa = ok_json(client.post("/v1/service-accounts", json={"name": "ci"}, headers=h), 201)["id"]
    first = ok_json(client.post(f"/v1/service-accounts/{sa}/keys", headers=h), 201)

    rotated = ok_json(
        client.post(
            f"/v1/service-accounts/{sa}/keys/{first['api_key']['key_id']}/rotate", headers=h
        ),
        201,
    )

    error_of(client.get("/v1/me", headers=bearer(first["key"])), 401, "invalid_api_key")
    ok_json(client.get("/v1/me", headers=bearer(rotated["key"])))
    revoke = f"/v1/service-accounts/{sa}/keys/{rotated['api_key']['key_id']}"
    assert client.delete(revoke, headers=h).status_code == 204
    error_of(client.get("/v1/me", headers=bearer(rotated["key"])), 401, "invalid_api_key")
    statuses = [
        k["status"]
        for k in ok_json(client.get(f"/v1/service-accounts/{sa}/keys", headers=h))["items"]
    ]
    assert statuses == ["revoked", "revoked"]
    for created in (first, rotated):
        assert created["key"].encode() not in stored_bytes(client)
    assert audit_actions(client, admin) == [
        "service_account.create",
        "api_key.create",
        "api_key.rotate",
        "api_key.revoke",
    ]


def test_a_disabled_service_accounts_keys_stop_and_it_can_then_be_removed(client, admin) -> None:
    h = bearer(admin, "acme")
    sa = ok_json(client.post("/v1/service-accounts", json={"name": "ci"}, headers=h), 201)["id"]
    key = ok_json(client.post(f"/v1/service-accounts/{sa}/keys", headers=h), 201)["key"]
    error_of(client.delete(f"/v1/users/{sa}", headers=h), 409, "service_account_active")

    ok_json(client.post(f"/v1/users/{sa}/disable", headers=h))

    error_of(client.get("/v1/me", headers=bearer(key)), 401, "invalid_api_key")
    error_of(client.post(f"/v1/service-accounts/{sa}/keys", headers=h), 403, "account_disabled")
    assert client.delete(f"/v1/users/{sa}", headers=h).status_code == 204
    assert ok_json(client.get("/v1/service-accounts", headers=h))["items"] == []
    error_of(client.get(f"/v1/service-accounts/{sa}", headers=h), 404, "not_found")


def test_the_openapi_document_describes_members_and_idempotent_creates(client) -> None:
    document = ok_json(client.get("/v1/openapi.json"))

    validate(document)
    paths = document["paths"]
    for path in (
        "/v1/users",
        "/v1/users/{id}",
        "/v1/users/{id}/disable",
        "/v1/users/{id}/enable",
        "/v1/users/{id}/mfa/reset",
        "/v1/users/invites",
        "/v1/users/invites/{id}",
        "/v1/auth/invites/accept",
        "/v1/service-accounts",
        "/v1/service-accounts/{id}",
        "/v1/service-accounts/{id}/keys",
        "/v1/service-accounts/{id}/keys/{key_id}",
        "/v1/service-accounts/{id}/keys/{key_id}/rotate",
    ):
        assert path in paths, path
    assert paths["/v1/auth/invites/accept"]["post"]["security"] == []

    def headers(path: str, method: str) -> set[str]:
        return {p["name"] for p in paths[path][method]["parameters"] if p["in"] == "header"}

    for path in (
        "/v1/tenants",
        "/v1/teams",
        "/v1/projects",
        "/v1/projects/{p}/envs",
        "/v1/role-bindings",
        "/v1/service-accounts",
        "/v1/users/invites",
    ):
        assert "Idempotency-Key" in headers(path, "post"), path
    assert "Idempotency-Key" not in headers("/v1/service-accounts/{id}/keys", "post")
