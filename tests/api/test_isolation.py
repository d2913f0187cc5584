"""Isolation, generated from `/v1/openapi.json`: every operation that acts in a tenant (a
required `x-tenant-id`) or on a named resource (a path parameter) is called by principals of
tenant A addressing tenant B's resources, and by team- and project-scoped principals of A
addressing other teams and projects of A. Each answer is a refusal (403 or 404) that carries
nothing of what was addressed beyond what the request itself sent, and nothing changes: the
audit chains, which record every change in its own transaction, stay where they were.

Operations added to the document are probed without editing this file, as long as their path
parameters and body fields are of a kind the two tables below know; a new kind fails the test
saying which to add."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.conftest import ok_json
from tests.api.control import (
    Op,
    TenantWorld,
    backend,
    bearer,
    build_tenant,
    fill_body,
    fill_path,
    heads,
    join,
    operations,
    runtime_data,
    served,
    signin,
    start,
)

pytestmark = pytest.mark.api
__all__ = ["backend"]  # the fixture: every test here runs on local and on the emulators

ALPHA: dict[str, Any] = dict(
    teams={"core": "Alpha Core", "edge": "Alpha Edge"},
    projects={
        "shop": ("Alpha Shop", "alpha-shop", "core"),
        "blog": ("Alpha Blog", "alpha-blog", "core"),
        "labs": ("Alpha Labs", "alpha-labs", "edge"),
    },
    envs={"shop": "shop-live", "blog": "blog-live", "labs": "labs-live"},
    members={
        "admin": ("ta@alpha.example", "tenant_admin", "tenant", ""),
        "lead": ("lead@alpha.example", "team_admin", "team", "core"),
        "owner": ("owner@alpha.example", "project_admin", "project", "shop"),
        "blogger": ("blogger@alpha.example", "project_viewer", "project", "blog"),
        "edger": ("edger@alpha.example", "team_viewer", "team", "edge"),
    },
)
BRAVO: dict[str, Any] = dict(
    teams={"main": "Bravo Team"},
    projects={"store": ("Bravo Store", "bravo-store", "main")},
    envs={"store": "bravo-live"},
    members={
        "admin": ("boss@bravo.example", "tenant_admin", "tenant", ""),
        "dev": ("dev@bravo.example", "project_editor", "project", "store"),
    },
)


def addresses(world: TenantWorld, *, team: str, project: str, member: str) -> dict[str, str]:
    """How each kind of path parameter (the collection segment before it) is filled to aim at
    `world`'s resources: the table a new kind of path parameter is added to."""
    return {
        "tenants": world.id,
        "teams": world.teams[team]["id"],
        "projects": world.projects[project]["slug"],
        "envs": world.envs[project],
        "role-bindings": world.members[member].binding,
        "users": world.members[member].id,
        **world.extra,  # service-accounts, keys, invites
    }


def body_values(world: TenantWorld, address: dict[str, str], project: str) -> dict[str, Any]:
    """How each body field is filled: the table a new kind of body field is added to. The
    fields in REFERENCES point at the addressed tenant's resources."""
    return {
        "name": "isolation-probe",  # a slug, as environments' names are
        "region": "local",  # any region: no such request may succeed
        "email": "probe@isolation.example",
        "role": "project_viewer",
        "team_id": address["teams"],
        "principal": address["users"],
        "project": address["projects"],
        "scope": world.scope("project", project),
        "topic": "note",  # the runtime routes': an event, the validation mode
        "validation_mode": "permissive",
        # reporting: contracts, status reports, session logs, retention, legal holds
        "project_id": address["projects"],
        "title": "isolation-probe",
        "counterparty": "isolation-probe",
        "value": "1",
        "currency": "EUR",
        "start_date": "2025-01-01",
        "status": "green",
        "period": "isolation-probe",
        "summary": "isolation-probe",
        "visibility": "tenant",
        "content": "isolation-probe",
        "reason": "isolation-probe",
        "executions_days": 30,
        "logs_days": 30,
        "session_logs_days": None,
    }


JSON = {"accept": "application/json"}  # an export's record rather than its zip
REFERENCES = frozenset({"team_id", "principal", "project", "scope", "project_id"})


def identifiers(
    world: TenantWorld, *, teams: list[str], projects: list[str], members: list[str]
) -> set[str]:
    """The strings that would betray the chosen resources of `world` in a body."""
    found = set(world.extra.values())
    for key in teams:
        found |= {world.teams[key]["id"], world.teams[key]["name"]}
    for key in projects:
        found |= {world.projects[key]["slug"], world.projects[key]["name"], world.envs[key]}
    for key in members:
        member = world.members[key]
        found |= {member.id, member.email, member.binding}
    return found


def everything_of(world: TenantWorld) -> set[str]:
    """All that names `world`: its id and name, key, and every resource in it."""
    return identifiers(
        world, teams=list(world.teams), projects=list(world.projects), members=list(world.members)
    ) | {world.id, world.name, f"tenant-{world.id}"}


@dataclass
class Setting:
    client: Any
    admin: dict[str, Any]
    alpha: TenantWorld
    bravo: TenantWorld
    ops: list[Op]
    runtime: dict[str, str]  # the served project's runtime data, by kind of path parameter
    runtime_secret: set[str]  # what names it, beyond the served project's slug and env


# What the served project's runtime keeps, which no other tenant's principal may see.
MARKER = "served-secret"


def set_up(serve: Any, backend: dict[str, Any]) -> Setting:
    client = start(serve, **backend)
    admin = signin(client)
    alpha = build_tenant(client, admin, "alpha", "Alpha Inc", **ALPHA)
    bravo = build_tenant(client, admin, "bravo", "Bravo Holdings", **BRAVO)
    for world in (alpha, bravo):
        world.extra = robot_and_invite(client, admin, world) | reporting(client, admin, world)
    home = served(client)
    runtime = runtime_data(client, bearer(admin, home.tenant), MARKER)
    secret = {MARKER, runtime["traces"]}
    return Setting(client, admin, alpha, bravo, operations(client), runtime, secret)


def robot_and_invite(client: Any, admin: dict[str, Any], world: TenantWorld) -> dict[str, str]:
    """A service account with an API key, and a pending invite, of the tenant: by kind."""
    h = bearer(admin, world.id)
    robot = ok_json(
        client.post("/v1/service-accounts", json={"name": f"{world.name} robot"}, headers=h), 201
    )
    key = ok_json(client.post(f"/v1/service-accounts/{robot['id']}/keys", headers=h), 201)
    invite = {"email": f"new@{world.id}.example"}
    pending = ok_json(client.post("/v1/users/invites", json=invite, headers=h), 201)
    export = ok_json(client.post("/v1/audit/export", headers=h | JSON), 201)
    return {
        "service-accounts": robot["id"],
        "keys": key["api_key"]["key_id"],
        "invites": pending["id"],
        "exports": export["id"],
    }


def reporting(client: Any, admin: dict[str, Any], world: TenantWorld) -> dict[str, str]:
    """A contract with a document, a status report, a session log and a legal hold of the
    tenant: by kind. The report and log are of its last project (in alpha, of the team that
    neither its team admin nor its project admin reaches)."""
    h = bearer(admin, world.id)
    contract = {
        "title": f"{world.name} contract",
        "counterparty": "Initech",
        "value": "100",
        "currency": "EUR",
        "start_date": "2025-01-01",
    }
    made = ok_json(client.post("/v1/contracts", json=contract, headers=h), 201)
    document = ok_json(
        client.post(
            f"/v1/contracts/{made['id']}/documents?name=terms.json",
            content=b'{"terms": "net 30"}',
            headers={**h, "content-type": "application/json"},
        ),
        201,
    )
    project = world.projects[list(world.projects)[-1]]["slug"]
    status = {"project_id": project, "status": "red", "period": "W1", "summary": "late"}
    report = ok_json(client.post("/v1/reports", json=status, headers=h), 201)
    log = {"project_id": project, "visibility": "project", "content": f"{world.name} notes"}
    session_log = ok_json(client.post("/v1/session-logs", json=log, headers=h), 201)
    hold = ok_json(client.post("/v1/legal-holds", json={"reason": "probe"}, headers=h), 201)
    return {
        "contracts": made["id"],
        "documents": document["id"],
        "reports": report["id"],
        "session-logs": session_log["id"],
        "legal-holds": hold["id"],
    }


class Prober:
    """Sends probes and collects what was wrong with their answers."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.problems: list[str] = []
        self.sent = 0

    def probe(
        self,
        op: Op,
        headers: dict[str, str],
        address: dict[str, str],
        body: dict[str, Any] | None,
        *,
        allowed: set[int],
        secret: set[str],
        who: str,
    ) -> None:
        """Send `op` aimed at `address` and check the answer is one of `allowed` and holds
        none of `secret` beyond the values the request sent itself."""
        path = fill_path(op, address)
        response = self.client.request(op.method.upper(), path, headers=headers, json=body)
        self.sent += 1
        request_text = path + json.dumps(headers) + json.dumps(body)
        echoed = sorted((s for s in secret if s in request_text), key=len, reverse=True)
        answer = response.text + json.dumps(dict(response.headers))
        for value in echoed:
            answer = answer.replace(value, "")
        leaked = sorted(s for s in secret if s in answer)
        label = f"{who}: {op.method.upper()} {path} (x-tenant-id {headers.get('x-tenant-id')})"
        if response.status_code not in allowed:
            self.problems.append(
                f"{label} -> {response.status_code}, expected {sorted(allowed)}: "
                f"{response.text[:300]}"
            )
        if leaked:
            self.problems.append(f"{label} -> {response.status_code} leaks {leaked}")


def carries(op: Op, address: dict[str, str], body: dict[str, Any] | None, values: set[str]) -> bool:
    """Whether the request for `op` names any of `values` (in its path or body)."""
    text = fill_path(op, address) + json.dumps(body)
    return any(value in text for value in values)


def comparable(response: Any) -> tuple[int, Any]:
    """A response without what differs between two identical requests (correlation ids)."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return response.status_code, response.content  # a download: compared byte for byte
    body = response.json() if response.content else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body["error"].pop("correlation_id", None)
    return response.status_code, body


def snapshot(setting: Setting, world: TenantWorld, address: dict[str, str]) -> dict[str, Any]:
    """Every read of the document aimed at `world`'s resources, as the system admin sees it."""
    seen = {}
    for op in setting.ops:
        if op.method == "get" and op.tenant_scoped and not op.runtime:
            path = fill_path(op, address)
            seen[path] = comparable(
                setting.client.get(path, headers=bearer(setting.admin, world.id))
            )
    return seen


def test_principals_of_one_tenant_get_nothing_of_another(serve, backend: dict[str, Any]) -> None:
    s = set_up(serve, backend)
    bravo_address = addresses(s.bravo, team="main", project="store", member="dev")
    bravo_values = body_values(s.bravo, bravo_address, "store")
    secret = everything_of(s.bravo)
    chains = ["system", f"tenant/{s.alpha.id}", f"tenant/{s.bravo.id}"]
    before, bravo_before = heads(s.client, chains), snapshot(s, s.bravo, bravo_address)
    prober = Prober(s.client)
    covered = set()

    # the runtime routes address what this process serves: the served tenant stands for B
    home = served(s.client).tenant
    runtime_secret = secret | s.runtime_secret
    for op in s.ops:
        if op.public or not (op.tenant_scoped or op.path_params):
            continue
        covered.add(op.id)
        target, address = (home, s.runtime) if op.runtime else (s.bravo.id, bravo_address)
        hidden = runtime_secret if op.runtime else secret
        body = fill_body(op, bravo_values, REFERENCES)
        names_bravo = carries(op, address, body, set(address.values()) | hidden)
        for who in ("admin", "lead", "owner"):
            own = bearer(s.alpha.members[who].tokens)
            if op.tenant_scoped:  # in B's name: B's tenant in the header, B's ids everywhere
                prober.probe(
                    op,
                    {**own, "x-tenant-id": target},
                    address,
                    body,
                    allowed={403, 404},
                    secret=hidden,
                    who=who,
                )
            if names_bravo:  # in A's name (or none), aiming at B's resources
                header = {"x-tenant-id": s.alpha.id} if op.tenant_scoped else {}
                refused = {403, 404} if op.path_params else {400, 403, 404}
                prober.probe(
                    op,
                    {**own, **header},
                    address,
                    body,
                    allowed=refused,
                    secret=hidden,
                    who=who,
                )

    assert not prober.problems, "\n".join(prober.problems)
    assert covered, "the document has no tenant-scoped operation"
    assert any(op.runtime and op.id in covered for op in s.ops), "no runtime route probed"
    assert heads(s.client, chains) == before, "a refused request changed something"
    assert snapshot(s, s.bravo, bravo_address) == bravo_before


def test_global_reads_show_nothing_of_another_tenant(serve, backend: dict[str, Any]) -> None:
    s = set_up(serve, backend)
    secret = everything_of(s.bravo)
    prober = Prober(s.client)

    for op in s.ops:
        if op.public or op.method != "get" or op.tenant_scoped or op.path_params:
            continue
        for who in ("admin", "lead", "owner"):
            prober.probe(
                op,
                bearer(s.alpha.members[who].tokens),
                {},
                None,
                allowed={200},
                secret=secret,
                who=who,
            )

    assert not prober.problems, "\n".join(prober.problems)
    assert prober.sent, "the document has no global read"


@pytest.mark.parametrize(
    ("who", "aim", "hidden"),
    [
        # a team admin of `core` aims at the other team, its project and its member
        (
            "lead",
            dict(team="edge", project="labs", member="edger"),
            dict(teams=["edge"], projects=["labs"], members=["edger"]),
        ),
        # a project admin of `shop` aims at its own project's team (not granted to it), the
        # team's other project and that project's member
        (
            "owner",
            dict(team="core", project="blog", member="blogger"),
            dict(teams=["edge"], projects=["blog", "labs"], members=["blogger", "edger"]),
        ),
    ],
)
def test_team_and_project_roles_get_nothing_of_other_teams_and_projects(
    serve, backend: dict[str, Any], who: str, aim: dict[str, str], hidden: dict[str, list[str]]
) -> None:
    s = set_up(serve, backend)
    address = addresses(s.alpha, **aim)
    values = body_values(s.alpha, address, aim["project"])
    secret = identifiers(s.alpha, **hidden)
    if who == "owner":
        secret.add(s.alpha.teams["core"]["name"])
    chains = ["system", f"tenant/{s.alpha.id}"]
    before = heads(s.client, chains)
    headers = s.alpha.headers(who)
    prober = Prober(s.client)

    for op in s.ops:
        # the runtime routes address the served project, not alpha's: probed by the test below
        if op.public or not op.tenant_scoped or op.runtime:
            continue
        body = fill_body(op, values, REFERENCES)
        if op.path_params:
            allowed = {403, 404}
        elif op.mutating:  # a tenant-level change by a team- or project-scoped role
            allowed = {400, 403, 404}
        else:  # a listing: the caller's own part of it, or a refusal
            allowed = {200, 403}
        prober.probe(op, headers, address, body, allowed=allowed, secret=secret, who=who)

    assert not prober.problems, "\n".join(prober.problems)
    assert heads(s.client, chains) == before, "a refused request changed something"


@pytest.mark.parametrize(
    ("role", "scope"),
    [("project_admin", "project"), ("team_admin", "team"), ("project_viewer", "project")],
)
def test_roles_of_other_projects_of_the_served_tenant_get_nothing_of_the_served_one(
    serve, backend: dict[str, Any], role: str, scope: str
) -> None:
    """A project- or team-scoped role of another project (another team) of the tenant this
    process serves calls every runtime route of the served project: refused, nothing shown,
    nothing changed."""
    s = set_up(serve, backend)
    home = served(s.client).tenant
    h = bearer(s.admin, home)
    team = ok_json(s.client.post("/v1/teams", json={"name": "Side team"}, headers=h), 201)
    side = {"name": "Side project", "slug": "side-project", "team_id": team["id"]}
    ok_json(s.client.post("/v1/projects", json=side, headers=h), 201)
    where = f"tenant/{home}/" + (
        "project/side-project" if scope == "project" else f"team/{team['id']}"
    )
    member = join(s.client, s.admin, home, f"{role}@side.example", role, where)
    headers = bearer(member.tokens, home)
    values = {"topic": "note", "validation_mode": "permissive"}
    chains = ["system", f"tenant/{home}"]
    before = heads(s.client, chains)
    settings = s.client.get(f"{served(s.client).runtime}/settings", headers=h).json()
    prober = Prober(s.client)

    runtime = [op for op in s.ops if op.runtime]
    assert runtime, "the document has no runtime route"
    for op in runtime:
        body = fill_body(op, values)
        prober.probe(
            op,
            headers,
            s.runtime,
            body,
            allowed={403, 404},
            secret=s.runtime_secret,
            who=f"{role} of {where}",
        )

    assert not prober.problems, "\n".join(prober.problems)
    assert heads(s.client, chains) == before, "a refused request changed something"
    assert s.client.get(f"{served(s.client).runtime}/settings", headers=h).json() == settings
