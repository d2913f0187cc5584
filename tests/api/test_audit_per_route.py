"""The audit record of every route, driven by `/v1/openapi.json`: each mutating operation (POST,
PUT, PATCH, DELETE), performed successfully, appends exactly one record, on its chain (the
tenant's, or `system` for what happens outside any tenant: tenant lifecycle, sign-ins); refused
(403), conflicting (409), stale (412) or invalid (422), it appends none. And many concurrent
changes in one tenant leave one chain, seq 0..n, with no gap and no fork.

Operations added to the document are covered without editing this file when they need no body
and act on kinds of resources `MAKE` (tests/api/control.py) knows; a body, or a new kind of
resource, is one entry in a table."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyotp
import pytest

from tests.api.conftest import ok_json
from tests.api.control import (
    CONTRACT,
    PASSWORD,
    Maker,
    Member,
    Op,
    backend,
    bearer,
    call,
    create_tenant,
    dead_letter,
    fill_path,
    head_seq,
    join,
    last_mail_token,
    operations,
    platform,
    region,
    served,
    signin,
    start,
)

pytestmark = pytest.mark.api
__all__ = ["backend"]  # the fixture: every test here runs on local and on the emulators

TENANT = "acme"
NEW_PASSWORD = "a different passphrase entirely"


@dataclass
class Ctx(Maker):
    """The maker of fresh resources in the tenant, and a viewer of it and of the tenant this
    process serves (whom the runtime routes refuse changes)."""

    viewer: Member | None = None
    served_viewer: Member | None = None


@dataclass
class Request:
    """What to send: a body, and other headers than the system admin's in the tenant."""

    body: Any = None
    headers: dict[str, str] | None = None


# -- how to make a valid request of each operation that needs more than its path ----------------


def _signed_in_person(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    principal, email = ctx.person()
    return principal, signin(ctx.client, email)


def _verify_mfa(ctx: Ctx, values: dict[str, str]) -> Request:
    principal, email = ctx.person()
    identity = ctx.identity()
    seed = call(ctx.client, identity.start_totp, principal).secret
    enabled = call(ctx.client, identity.confirm_totp, principal, pyotp.TOTP(seed).now())
    challenge = signin(ctx.client, email)["challenge_id"]
    return Request({"challenge_id": challenge, "code": enabled.recovery_codes[0]}, {})


def _confirm_totp(ctx: Ctx, values: dict[str, str]) -> Request:
    principal, tokens = _signed_in_person(ctx)
    seed = call(ctx.client, ctx.identity().start_totp, principal).secret
    return Request({"code": pyotp.TOTP(seed).now()}, bearer(tokens))


def _reset(ctx: Ctx, values: dict[str, str]) -> Request:
    _, email = ctx.person()
    call(ctx.client, ctx.identity().forgot, email)
    return Request({"token": last_mail_token(ctx.client, "cfp_pr_"), "password": NEW_PASSWORD}, {})


def _accept(ctx: Ctx, values: dict[str, str]) -> Request:
    ctx.post("/v1/users/invites", {"email": f"{ctx.fresh('joiner')}@example.com"})
    return Request({"token": last_mail_token(ctx.client, "cfp_inv_"), "password": PASSWORD}, {})


REQUESTS: dict[str, Callable[[Ctx, dict[str, str]], Request]] = {
    "createTenant": lambda ctx, v: Request(
        {"name": "Audited", "region": region(ctx.client), "id": ctx.fresh("audited")}
    ),
    "updateTenant": lambda ctx, v: Request({"name": "Renamed"}),
    "createTeam": lambda ctx, v: Request({"name": "Audited team"}),
    "updateTeam": lambda ctx, v: Request({"name": "Renamed team"}),
    "createProject": lambda ctx, v: Request({"name": ctx.fresh("audited")}),
    "updateProject": lambda ctx, v: Request({"name": "Renamed project"}),
    "createEnv": lambda ctx, v: Request({"name": "prod"}),
    "createRoleBinding": lambda ctx, v: Request(
        {"principal": ctx.person()[0], "role": "tenant_viewer", "scope": f"tenant/{TENANT}"}
    ),
    "createInvite": lambda ctx, v: Request(
        {"email": f"{ctx.fresh('invited')}@example.com", "role": "tenant_viewer"}
    ),
    "createServiceAccount": lambda ctx, v: Request({"name": "Audited robot"}),
    "signin": lambda ctx, v: Request({"email": ctx.person()[1], "password": PASSWORD}, {}),
    "verifyMfa": _verify_mfa,
    "refresh": lambda ctx, v: Request(
        {"refresh_token": _signed_in_person(ctx)[1]["refresh_token"]}, {}
    ),
    "signout": lambda ctx, v: Request(None, bearer(_signed_in_person(ctx)[1])),
    "forgotPassword": lambda ctx, v: Request({"email": ctx.person()[1]}, {}),
    "resetPassword": _reset,
    "startTotp": lambda ctx, v: Request(None, bearer(_signed_in_person(ctx)[1])),
    "confirmTotp": _confirm_totp,
    "acceptInvite": _accept,
    "changePassword": lambda ctx, v: Request(
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        bearer(_signed_in_person(ctx)[1]),
    ),
    # the runtime routes: in the served tenant
    "postEvent": lambda ctx, v: Request(
        {"topic": "note", "data": {"id": ctx.fresh("n")}}, _in_served(ctx)
    ),
    "replayDeadLetters": lambda ctx, v: Request(
        {"ids": [dead_letter(ctx.client, _in_served(ctx), ctx.fresh("many"))]}, _in_served(ctx)
    ),
    "putSettings": lambda ctx, v: Request({"validation_mode": "strict"}, _in_served(ctx)),
    "putFlowLayout": lambda ctx, v: Request(
        {"nodes": {"Note": {"x": 1, "y": 2}}, "viewport": {"x": 0, "y": 0, "zoom": 1}},
        _in_served(ctx),
    ),
    "replayDeadLetter": lambda ctx, v: Request(None, _in_served(ctx)),
    "provisionSubscriptions": lambda ctx, v: Request(None, _in_served(ctx)),
    "verifyAuditChain": lambda ctx, v: Request({}),
    # reporting (a document's body is its bytes: here, JSON ones)
    "createContract": lambda ctx, v: Request(CONTRACT),
    "updateContract": lambda ctx, v: Request({"title": "Renamed contract"}),
    "uploadContractDocument": lambda ctx, v: Request({"clause": "net 30"}),
    "createReport": lambda ctx, v: Request(
        {"project_id": ctx.make("projects", {}), "status": "green", "period": "W1", "summary": "ok"}
    ),
    "createSessionLog": lambda ctx, v: Request(
        {"project_id": ctx.make("projects", {}), "visibility": "team", "content": "# notes"}
    ),
    "putRetention": lambda ctx, v: Request(
        {"executions_days": 30, "logs_days": 7, "session_logs_days": None}
    ),
    "placeLegalHold": lambda ctx, v: Request({"reason": "litigation"}),
}


def _in_served(ctx: Ctx) -> dict[str, str]:
    return ctx.h(served(ctx.client).tenant)


# What must hold before the operation changes anything (enabling needs a disabled member).
BEFORE: dict[str, Callable[[Ctx, dict[str, str]], None]] = {
    "enableMember": lambda ctx, v: ctx.post(f"/v1/users/{v['users']}/disable", status=200),
}

# The chain an operation records on, where the rule (a tenant-scoped operation: the tenant's;
# any other: `system`) does not say it: accepting an invite joins the invite's tenant.
CHAIN = {"acceptInvite": f"tenant/{TENANT}"}

# Changes that append no record, by operation, with why (TDD: "control-plane mutations, sign-ins,
# MFA and key changes, role and binding changes, dead-letter replays", and since the audit issue
# settings, deployments and exports): changes that are not privileged actions (confirming a TOTP
# enrolment is recorded as `auth.mfa.enable`), and POSTs that change nothing.
NOT_RECORDED = {
    "refresh": "rotates the caller's own refresh token",
    "startTotp": "changes no factor until it is confirmed",
    "postEvent": "runtime event ingest is not a privileged action",
    "verifyAuditChain": "verification reads the chain; it changes nothing",
}

# Operations that act on the caller itself: there is nobody else to refuse them to.
SELF_SERVICE = {"signout", "startTotp", "confirmTotp", "changePassword"}


def chain_of(ctx: Ctx, op: Op) -> str:
    if op.id in CHAIN:
        return CHAIN[op.id]
    if op.runtime:  # a runtime route acts in the served tenant (dead-letter replays)
        return f"tenant/{served(ctx.client).tenant}"
    return f"tenant/{TENANT}" if op.tenant_scoped else "system"


def prepare(ctx: Ctx, op: Op) -> tuple[str, Request]:
    values = ctx.resources(op)
    if op.id in REQUESTS:
        request = REQUESTS[op.id](ctx, values)
    else:
        assert op.body_fields() is None, f"{op}: add a valid request of {op.id} to REQUESTS"
        request = Request()
    if op.id in BEFORE:
        BEFORE[op.id](ctx, values)
    return fill_path(op, values), request


class Chains:
    """The heads of every chain there is, before and after a request."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx

    def heads(self) -> dict[str, int]:
        page = ok_json(self.ctx.client.get("/v1/tenants?limit=500", headers=self.ctx.h(None)))
        chains = ["system", *(f"tenant/{t['id']}" for t in page["items"])]
        return {chain: head_seq(self.ctx.client, chain) for chain in chains}

    def appended(self, send: Callable[..., Any], *args: Any, **kw: Any) -> tuple[Any, dict]:
        """The response of `send(...)` and how many records each chain gained meanwhile."""
        before = self.heads()
        response = send(*args, **kw)
        after = self.heads()
        return response, {
            chain: seq - before.get(chain, -1)
            for chain, seq in after.items()
            if seq != before.get(chain, -1)
        }


@pytest.fixture
def ctx(serve, backend: dict[str, Any]) -> Ctx:
    client = start(serve, **backend)
    admin = signin(client)
    create_tenant(client, admin, TENANT, "Acme")
    context = Ctx(client, admin, TENANT)
    context.viewer = context.member("tenant_viewer")
    home = served(client).tenant
    email = "viewer@served.example"
    context.served_viewer = join(client, admin, home, email, "tenant_viewer", f"tenant/{home}")
    return context


@dataclass
class Probe:
    """One operation's request, ready to send as it is or varied."""

    client: Any
    method: str
    path: str
    body: Any
    headers: dict[str, str]

    def send(self, body: Any = ..., extra: dict[str, str] | None = None, who: Any = None) -> Any:
        return self.client.request(
            self.method,
            self.path,
            json=self.body if body is ... else body,
            headers={**(self.headers if who is None else who), **(extra or {})},
        )


def check(ctx: Ctx, chains: Chains, op: Op) -> list[str]:
    """What is wrong with the records `op` appends, refused, invalid, stale and done."""
    path, request = prepare(ctx, op)
    headers = ctx.h() if request.headers is None else request.headers
    probe = Probe(ctx.client, op.method.upper(), path, request.body, headers)
    problems: list[str] = []

    def refused(label: str, status: int, response: Any, appended: dict[str, int]) -> None:
        if response.status_code != status:
            problems.append(
                f"{op} {label}: {response.status_code}, expected {status}: {response.text[:200]}"
            )
        if appended:
            problems.append(f"{op} {label} ({response.status_code}) appended {appended}")

    if not op.public and op.id not in SELF_SERVICE:
        if op.runtime:
            assert ctx.served_viewer is not None
            viewer = bearer(ctx.served_viewer.tokens, served(ctx.client).tenant)
        else:
            assert ctx.viewer is not None
            viewer = bearer(ctx.viewer.tokens, TENANT)
        refused("by a viewer", 403, *chains.appended(probe.send, who=viewer))
    if op.body_fields() is not None:
        refused("with an invalid body", 422, *chains.appended(probe.send, {"bogus": 1}))
    if op.reads_header("if-match"):
        stale = {"if-match": '"999"'}
        refused("with a stale If-Match", 412, *chains.appended(probe.send, extra=stale))
    key = {"idempotency-key": ctx.fresh("key")} if op.reads_header("idempotency-key") else {}

    response, appended = chains.appended(probe.send, extra=key)
    if response.status_code != op.success_status():
        return [*problems, f"{op}: {response.status_code}: {response.text[:300]}"]
    expected = {} if op.id in NOT_RECORDED else {chain_of(ctx, op): 1}
    if appended != expected:
        problems.append(f"{op} appended {appended}, expected {expected}")

    if key:  # the same key and body: the first answer again, nothing done twice
        again, appended = chains.appended(probe.send, extra=key)
        if again.status_code != response.status_code or appended:
            problems.append(f"{op} replayed: {again.status_code}, appended {appended}")
        other = _other(request.body)
        refused("with its key and another body", 409, *chains.appended(probe.send, other, key))
    # done again without a key: a duplicate conflicts and appends nothing either
    again, appended = chains.appended(probe.send)
    if again.status_code in (403, 409, 412, 422) and appended:
        problems.append(f"{op} repeated ({again.status_code}) appended {appended}")
    return problems


def test_every_change_appends_one_record_and_every_refusal_none(ctx: Ctx) -> None:
    chains = Chains(ctx)
    mutating = [op for op in operations(ctx.client) if op.mutating]
    assert mutating

    problems = [problem for op in mutating for problem in check(ctx, chains, op)]

    assert not problems, "\n".join(problems)
    audit = platform(ctx.client).control.audit
    for chain in chains.heads():
        verification = call(ctx.client, audit.verify, chain)
        assert verification.ok, (chain, verification)


def _other(body: Any) -> Any:
    """Another valid body: the first string field changed."""
    assert isinstance(body, dict)
    for name, value in body.items():
        if isinstance(value, str):
            return {**body, name: value + "x"}
    raise AssertionError(f"no string field to change in {body}")


def test_concurrent_changes_leave_one_chain_without_gap_or_fork(
    serve, backend: dict[str, Any]
) -> None:
    client = start(serve, **backend)
    admin = signin(client)
    create_tenant(client, admin, "busy", "Busy")
    h = bearer(admin, "busy")

    def create(n: int) -> Any:
        return client.post("/v1/teams", json={"name": f"Team {n}"}, headers=h)

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(create, range(20)))

    teams = sorted(ok_json(r, 201)["id"] for r in responses)
    audit = platform(client).control.audit
    page = call(client, audit.list, "tenant/busy", oldest_first=True, limit=500)
    assert [r["seq"] for r in page.items] == list(range(20))
    assert sorted(r["target"]["id"] for r in page.items) == teams
    assert {r["action"] for r in page.items} == {"team.create"}
    verification = call(client, audit.verify, "tenant/busy")
    assert verification.ok and verification.checked == 20, verification
    assert verification.head is not None and verification.head.seq == 19
