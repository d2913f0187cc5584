"""A tenant's members over the embedded backend: invites that make a membership and a role binding
in the acceptance's transaction, disable/enable/MFA reset/remove with who may do them, service
accounts and their keys — each change one audit record on the tenant's chain, a failed one none."""

from __future__ import annotations

import email
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cfp.adapters.local.documents import SqliteDocumentStore
from cfp.adapters.local.keyring import LocalKeyring
from cfp.adapters.local.mailer import OutboxMailer
from cfp.adapters.local.sqlite import Database
from cfp.domain.callers import Caller
from cfp.domain.identity import TokenPair
from cfp.domain.rbac import AccessScope
from cfp.domain.tenancy import ProjectIn, TenantIn, TenantPaths
from cfp.errors import BadRequest, CfpError, Conflict, Forbidden, NotFound, Unauthorized
from cfp.services.control import ControlPlane
from cfp.services.identity import TEST
from cfp.services.members import InviteIn, ServiceAccountIn

PASSWORD = "correct horse battery staple"


@dataclass
class Env:
    control: ControlPlane
    store: SqliteDocumentStore
    mailer: OutboxMailer
    admin: Caller  # a system administrator

    def last_token(self) -> str:
        message = email.message_from_bytes(self.mailer.messages()[-1].read_bytes())
        body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
        [token] = set(re.findall(r"cfp_inv_[A-Za-z0-9_-]+", body))
        return token

    async def caller(self, email_: str, password: str = PASSWORD) -> Caller:
        tokens = await self.control.identity.signin(email_, password)
        assert isinstance(tokens, TokenPair)
        return await self.control.authenticate(tokens.access_token)

    async def records(self, chain: str) -> list[dict[str, Any]]:
        page = await self.control.audit.list(chain, oldest_first=True, limit=500)
        return page.items

    async def actions(self, chain: str) -> list[str]:
        return [r["action"] for r in await self.records(chain)]

    async def join(self, email_: str, role: str | None = "tenant_viewer", **kw: Any) -> Caller:
        """A person invited to acme (with `role`) who accepted; signed in."""
        body = InviteIn(email=email_, role=role, **kw)
        await self.control.members.invite(self.admin, "acme", body)
        await self.control.members.accept_invite(self.last_token(), PASSWORD, "", None)
        return await self.caller(email_)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    db = Database(tmp_path / "cfp.db")
    store = SqliteDocumentStore(db)
    mailer = OutboxMailer(tmp_path / "outbox")
    control = ControlPlane(
        store,
        LocalKeyring(tmp_path / "keyring.json"),
        mailer,
        region="local",
        public_url="http://127.0.0.1:8080",
        password_profile=TEST,
    )
    await control.start()
    await control.bootstrap_admin("root@example.com", PASSWORD)
    for name in ("acme", "globex"):
        await control.tenancy.create_tenant(Caller.system(), TenantIn(name=name, region="local"))
    env = Env(control, store, mailer, Caller.system())
    env.admin = await env.caller("root@example.com")
    yield env
    db.close()


async def refused(kind: type[CfpError], code: str, awaitable: Any) -> CfpError:
    with pytest.raises(kind) as caught:
        await awaitable
    assert caught.value.code == code, caught.value
    return caught.value


async def test_an_accepted_invite_makes_the_membership_and_binding_in_its_transaction(
    env: Env,
) -> None:
    members = env.control.members
    invite = await members.invite(
        env.admin, "acme", InviteIn(email="Grace@Example.com", role="tenant_viewer")
    )
    assert (invite.email, invite.role, invite.scope) == (
        "grace@example.com",
        "tenant_viewer",
        "tenant/acme",
    )
    token = env.last_token()
    assert token not in invite.model_dump_json()

    accepted = await members.accept_invite(token, PASSWORD, "Grace Hopper", None)

    assert accepted.created and accepted.tenant == "acme"
    grace = await env.caller("grace@example.com")
    assert [(b.role, str(b.scope)) for b in grace.bindings] == [("tenant_viewer", "tenant/acme")]
    [member] = [
        m
        for m in (await members.list_members(env.admin, "acme", limit=50, cursor=None)).items
        if m["email"] == "grace@example.com"
    ]
    assert member["display_name"] == "Grace Hopper" and member["joined_via"] == "invite"
    assert [(r["role"], r["scope"]) for r in member["roles"]] == [("tenant_viewer", "tenant/acme")]
    # one record per change, both on the tenant's chain; the system chain saw neither
    assert await env.actions("tenant/acme") == ["invite.create", "invite.accept"]
    assert not {"invite.create", "invite.accept"} & set(await env.actions("system"))
    await refused(Unauthorized, "invalid_invite", members.accept_invite(token, PASSWORD, "", None))


async def test_an_invite_binds_its_role_where_it_says(env: Env) -> None:
    await env.control.tenancy.create_project(env.admin, "acme", ProjectIn(name="Shop"))
    ada = await env.join("ada@example.com", "project_editor", scope="tenant/acme/project/shop")

    assert [(b.role, str(b.scope)) for b in ada.bindings] == [
        ("project_editor", "tenant/acme/project/shop")
    ]
    assert ada.may("flow.edit", AccessScope.for_project("acme", "shop"))
    assert not ada.may("user.read", AccessScope.for_tenant("acme"))


async def test_invites_are_checked_like_the_grants_they_carry(env: Env) -> None:
    members = env.control.members
    viewer = await env.join("vic@example.com")
    before = len(env.mailer.messages())

    await refused(
        Forbidden, "forbidden", members.invite(viewer, "acme", InviteIn(email="x@example.com"))
    )
    await refused(
        BadRequest,
        "bad_request",
        members.invite(
            env.admin,
            "acme",
            InviteIn(email="x@example.com", role="tenant_viewer", scope="tenant/globex"),
        ),
    )
    await refused(
        BadRequest,
        "bad_request",
        members.invite(env.admin, "acme", InviteIn(email="x@example.com", scope="tenant/acme")),
    )
    await refused(
        CfpError,
        "invalid_binding",
        members.invite(env.admin, "acme", InviteIn(email="x@example.com", role="system_admin")),
    )
    assert len(env.mailer.messages()) == before  # nothing refused was mailed


async def test_revoked_invites_cannot_be_accepted(env: Env) -> None:
    members = env.control.members
    invite = await members.invite(env.admin, "acme", InviteIn(email="dan@example.com"))
    token = env.last_token()
    await refused(NotFound, "not_found", members.revoke_invite(env.admin, "globex", invite.id))

    assert (await members.revoke_invite(env.admin, "acme", invite.id)).status == "revoked"

    await refused(Unauthorized, "invalid_invite", members.accept_invite(token, PASSWORD, "", None))
    listed = (await members.list_invites(env.admin, "acme", limit=10, cursor=None)).items
    assert [(i["email"], i["status"]) for i in listed] == [("dan@example.com", "revoked")]


async def test_disable_ends_sessions_on_the_tenant_chain_and_enable_lets_them_sign_in(
    env: Env,
) -> None:
    members = env.control.members
    grace = await env.join("grace@example.com")
    tokens = await env.control.identity.signin("grace@example.com", PASSWORD)
    assert isinstance(tokens, TokenPair)

    member = await members.set_status(env.admin, "acme", grace.principal_id, "disabled")

    assert member.status == "disabled"
    with pytest.raises(Unauthorized):
        await env.control.authenticate(tokens.access_token)
    with pytest.raises(Unauthorized):
        await env.caller("grace@example.com")
    await members.set_status(env.admin, "acme", grace.principal_id, "active")
    await env.caller("grace@example.com")
    assert (await env.actions("tenant/acme"))[-2:] == ["principal.disable", "principal.enable"]


async def test_a_tenant_admin_changes_only_accounts_bound_nowhere_else(env: Env) -> None:
    members = env.control.members
    tara = await env.join("tara@example.com", "tenant_admin")
    grace = await env.join("grace@example.com")
    await env.control.tenancy.grant(
        env.admin, "globex", grace.principal_id, "tenant_viewer", "tenant/globex"
    )
    records = len(await env.records("tenant/acme"))

    for change in (
        members.set_status(tara, "acme", grace.principal_id, "disabled"),
        members.reset_mfa(tara, "acme", grace.principal_id),
    ):
        await refused(Forbidden, "principal_shared", change)
    await refused(
        BadRequest,
        "cannot_disable_self",
        members.set_status(tara, "acme", tara.principal_id, "disabled"),
    )
    await refused(
        NotFound, "not_found", members.set_status(tara, "acme", env.admin.principal_id, "disabled")
    )
    assert len(await env.records("tenant/acme")) == records  # refused: nothing recorded
    # a system administrator may disable a shared account
    await members.set_status(env.admin, "acme", grace.principal_id, "disabled")
    await members.set_status(env.admin, "acme", grace.principal_id, "active")

    # removing from this tenant is theirs to do; the account and its other tenant stay
    await members.remove(tara, "acme", grace.principal_id)
    again = await env.caller("grace@example.com")
    assert {str(b.scope) for b in again.bindings} == {"tenant/globex"}
    assert await env.store.get(TenantPaths("acme").member(grace.principal_id)) is None


async def test_remove_deletes_the_membership_and_its_bindings_in_one_record(env: Env) -> None:
    members = env.control.members
    grace = await env.join("grace@example.com")
    await env.control.tenancy.grant(
        env.admin, "acme", grace.principal_id, "project_viewer", "tenant/acme"
    )

    await members.remove(env.admin, "acme", grace.principal_id)

    after = await env.caller("grace@example.com")
    assert after.bindings == ()
    [record] = (await env.records("tenant/acme"))[-1:]
    assert record["action"] == "member.remove"
    assert record["target"] == {"type": "principal", "id": grace.principal_id}
    await refused(NotFound, "not_found", members.remove(env.admin, "acme", grace.principal_id))


async def test_mfa_reset_is_for_people(env: Env) -> None:
    members = env.control.members
    account = await members.create_service_account(env.admin, "acme", ServiceAccountIn(name="ci"))
    await refused(BadRequest, "not_a_person", members.reset_mfa(env.admin, "acme", account.id))
    grace = await env.join("grace@example.com")

    member = await members.reset_mfa(env.admin, "acme", grace.principal_id)

    assert not member.mfa_enabled
    assert (await env.actions("tenant/acme"))[-1] == "auth.mfa.reset"


async def test_service_accounts_are_members_with_keys_kept_as_hashes(env: Env) -> None:
    members = env.control.members
    account = await members.create_service_account(
        env.admin, "acme", ServiceAccountIn(name="deployer", description="CI deploys")
    )
    await env.control.tenancy.grant(env.admin, "acme", account.id, "tenant_viewer", "tenant/acme")

    created = await members.create_key(env.admin, "acme", account.id)

    caller = await env.control.authenticate(created.key)
    assert caller.principal_id == account.id and caller.kind == "service_account"
    assert caller.may("team.read", AccessScope.for_tenant("acme"))
    listed = await members.list_keys(env.admin, "acme", account.id)
    assert [k.key_id for k in listed] == [created.api_key.key_id]
    assert created.key not in repr(listed)
    [member] = [
        m
        for m in (await members.list_members(env.admin, "acme", limit=50, cursor=None)).items
        if m["id"] == account.id
    ]
    assert member["kind"] == "service_account" and member["joined_via"] == "service_account"
    # not reachable from another tenant
    await refused(NotFound, "not_found", members.create_key(env.admin, "globex", account.id))
    await refused(
        NotFound,
        "not_found",
        members.revoke_key(env.admin, "globex", account.id, created.api_key.key_id),
    )

    rotated = await members.rotate_key(env.admin, "acme", account.id, created.api_key.key_id)
    with pytest.raises(Unauthorized):
        await env.control.authenticate(created.key)
    await env.control.authenticate(rotated.key)
    await members.revoke_key(env.admin, "acme", account.id, rotated.api_key.key_id)
    with pytest.raises(Unauthorized):
        await env.control.authenticate(rotated.key)

    assert await env.actions("tenant/acme") == [
        "service_account.create",
        "role_binding.create",
        "api_key.create",
        "api_key.rotate",
        "api_key.revoke",
    ]


async def test_an_active_service_account_is_disabled_before_it_is_removed(env: Env) -> None:
    members = env.control.members
    account = await members.create_service_account(env.admin, "acme", ServiceAccountIn(name="ci"))
    key = await members.create_key(env.admin, "acme", account.id)
    records = len(await env.records("tenant/acme"))

    await refused(Conflict, "service_account_active", members.remove(env.admin, "acme", account.id))
    assert len(await env.records("tenant/acme")) == records

    await members.set_status(env.admin, "acme", account.id, "disabled")
    with pytest.raises(Unauthorized):
        await env.control.authenticate(key.key)
    await members.remove(env.admin, "acme", account.id)
    listed = await members.list_service_accounts(env.admin, "acme", limit=50, cursor=None)
    assert listed.items == []
    await refused(NotFound, "not_found", members.get_service_account(env.admin, "acme", account.id))


async def test_reading_needs_user_read_and_changing_user_manage(env: Env) -> None:
    members = env.control.members
    viewer = await env.join("vic@example.com")
    outsider = await env.join("ola@example.com", None)  # a member with no role

    assert (await members.list_members(viewer, "acme", limit=50, cursor=None)).items
    for denied in (
        members.list_members(outsider, "acme", limit=50, cursor=None),
        members.create_service_account(viewer, "acme", ServiceAccountIn(name="x")),
        members.set_status(viewer, "acme", outsider.principal_id, "disabled"),
        members.remove(viewer, "acme", outsider.principal_id),
        members.list_members(viewer, "globex", limit=50, cursor=None),
    ):
        await refused(Forbidden, "forbidden", denied)


async def test_member_times_are_rfc3339(env: Env) -> None:
    grace = await env.join("grace@example.com")
    member = await env.control.members.get_member(env.admin, "acme", grace.principal_id)
    assert abs(time.time() - datetime.fromisoformat(member.joined_at).timestamp()) < 60
