"""Shared helpers of the control-plane tests driven by `/v1/openapi.json`: the app on either
backend, signing in and joining a tenant by invite, the document's operations and how their
path parameters and bodies are filled, fresh resources of each kind, tenants set up over HTTP
by the system admin, and the audit chains' heads. Not a test module."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.api.conftest import ok_json, wait_for

ADMIN = "admin@example.com"
PASSWORD = "correct horse battery staple"
MUTATING = frozenset({"post", "put", "patch", "delete"})
RUNTIME_TAG = "runtime"

# As small a project as the runtime accepts, and one that leaves runtime data to address: a step
# that keeps each note in state and on a stream, and one that dead-letters every job at once.
SMALL_PROJECT = {
    "steps/note_step.py": """
        config = {"type": "event", "name": "Note", "subscribes": ["note"], "flows": ["f"]}

        async def handler(input, context):
            if isinstance(input, dict) and isinstance(input.get("id"), str):
                await context.state.set("notes", input["id"], input)
                await context.streams["wall"].set("pinned", input["id"], input)
    """,
    "steps/jam_step.py": """
        config = {"type": "event", "name": "Jam", "subscribes": ["jam"], "flows": ["f"],
                  "infrastructure": {"queue": {"maxRetries": 0}}}

        async def handler(input, context):
            raise RuntimeError("jammed")
    """,
    "steps/wall_stream.py": """
        config = {"name": "wall", "baseConfig": {"storageType": "default"},
                  "schema": {"type": "object"}}
    """,
}


@dataclass
class Member:
    """A person of a tenant: its principal, email, role binding and tokens."""

    id: str
    email: str
    binding: str
    tokens: dict[str, Any]


@pytest.fixture(params=["local", pytest.param("emulators", marks=pytest.mark.emulator)])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The settings of a backend: the embedded store, or the Google emulators (a Firestore
    database and a tenant of its own per test). Modules that test both import this fixture."""
    if request.param == "local":
        return {}
    emulators = request.getfixturevalue("emulators")
    unique = uuid.uuid4().hex[:10]
    database = f"cp-{unique}"
    request.addfinalizer(lambda: emulators.reset_firestore([database]))
    return dict(
        backend="emulators",
        tenant=f"t{unique}",  # Pub/Sub names are per tenant: tests stay apart
        firestore_emulator_host=emulators.firestore_host,
        pubsub_emulator_host=emulators.pubsub_host,
        storage_emulator_host=emulators.gcs_url,
        firestore_database=database,
        bucket=f"cp-{unique}",
    )


def start(serve: Any, **overrides: Any) -> TestClient:
    """A started app with the bootstrap system admin, and no default credentials."""
    client = serve(
        files=SMALL_PROJECT,
        password_profile="test",
        bootstrap_admin_email=ADMIN,
        bootstrap_admin_password=PASSWORD,
        **overrides,
    )
    for name in ("authorization", "x-tenant-id"):
        client.headers.pop(name, None)
    return client


def region(client: TestClient) -> str:
    """The deployment's region: a tenant created there is served here."""
    return platform(client).settings.deployment_region


def create_tenant(client: TestClient, admin: dict[str, Any], ident: str, name: str) -> Any:
    """A tenant in this deployment's region, created by the system admin."""
    body = {"name": name, "region": region(client), "id": ident}
    return ok_json(client.post("/v1/tenants", json=body, headers=bearer(admin)), 201)


def signin(client: TestClient, email: str = ADMIN, password: str = PASSWORD) -> dict[str, Any]:
    return ok_json(client.post("/v1/auth/signin", json={"email": email, "password": password}))


def bearer(tokens: dict[str, Any] | str, tenant: str | None = None) -> dict[str, str]:
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    headers = {"authorization": f"Bearer {token}"}
    if tenant:
        headers["x-tenant-id"] = tenant
    return headers


def platform(client: TestClient) -> Any:
    return client.app.state.platform  # type: ignore[attr-defined]


def call(client: TestClient, function: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a service coroutine on the app's loop (the client serves it from another thread)."""
    return client.portal.call(lambda: function(*args, **kwargs))


def last_mail_token(client: TestClient, prefix: str) -> str:
    """The one-time token (`cfp_inv_…`, `cfp_pr_…`) of the newest mail in the outbox."""
    mailer = platform(client).control.identity.mailer
    text = mailer.messages()[-1].read_text()
    found = re.findall(re.escape(prefix) + r"[A-Za-z0-9_-]+", text)
    assert found, f"no {prefix} token in the last mail:\n{text}"
    return found[-1]


def join(
    client: TestClient, admin: dict[str, Any], tenant: str, email: str, role: str, scope: str
) -> Member:
    """A person invited into `tenant` with `role` on `scope` by the system admin, who accepts
    the mailed invite and signs in."""
    invite = {"email": email, "role": role, "scope": scope}
    ok_json(client.post("/v1/users/invites", json=invite, headers=bearer(admin, tenant)), 201)
    token = last_mail_token(client, "cfp_inv_")
    accepted = ok_json(
        client.post("/v1/auth/invites/accept", json={"token": token, "password": PASSWORD})
    )
    member = ok_json(
        client.get(f"/v1/users/{accepted['principal_id']}", headers=bearer(admin, tenant))
    )
    [binding] = [r for r in member["roles"] if r["scope"] == scope]
    return Member(member["id"], email, binding["binding_id"], signin(client, email))


# -- the document -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One operation of the OpenAPI document."""

    method: str
    path: str
    spec: dict[str, Any] = field(repr=False)
    document: dict[str, Any] = field(repr=False)

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def id(self) -> str:
        return str(self.spec.get("operationId", self))

    @property
    def tenant_scoped(self) -> bool:
        """It acts in the tenant named by a required `x-tenant-id`."""
        return any(
            p["in"] == "header" and p["name"].lower() == "x-tenant-id" and p.get("required")
            for p in self.spec.get("parameters", [])
        )

    @property
    def public(self) -> bool:
        return self.spec.get("security") == []

    @property
    def runtime(self) -> bool:
        """A runtime route of the served project (`R = /v1/projects/{p}/envs/{e}/…`, and
        `/v1/subscriptions`): it addresses what this process serves, not any resource."""
        return RUNTIME_TAG in self.spec.get("tags", [])

    @property
    def mutating(self) -> bool:
        return self.method in MUTATING

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    def reads_header(self, name: str) -> bool:
        return any(
            p["in"] == "header" and p["name"].lower() == name
            for p in self.spec.get("parameters", [])
        )

    def success_status(self) -> int:
        return min(int(code) for code in self.spec["responses"] if code.startswith("2"))

    def body_fields(self) -> tuple[list[str], list[str]] | None:
        """(required, optional) top-level fields of the JSON request body; None without one."""
        body = self.spec.get("requestBody")
        if body is None or "application/json" not in body["content"]:  # raw bytes: no fields
            return None
        schema = resolve(self.document, body["content"]["application/json"]["schema"])
        required = list(schema.get("required", []))
        optional = [name for name in schema.get("properties", {}) if name not in required]
        return required, optional


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$ref`s (to this document) followed."""
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def operations(client: TestClient) -> list[Op]:
    """Every operation of `/v1/openapi.json`, in document order."""
    document = ok_json(client.get("/v1/openapi.json"))
    return [
        Op(method, path, spec, document)
        for path, item in document["paths"].items()
        for method, spec in item.items()
        if method in {"get", "put", "post", "patch", "delete"}
    ]


def param_kind(path: str, name: str) -> str:
    """What a path parameter names: the collection segment before it (`/v1/teams/{team}` →
    `teams`), or the parameter's own name when it follows another parameter."""
    segments = path.strip("/").split("/")
    index = segments.index("{" + name + "}")
    before = segments[index - 1] if index else ""
    return name if not before or before.startswith("{") else before


def fill_path(op: Op, values: dict[str, str]) -> str:
    """The operation's path with each parameter replaced by the value for its kind."""
    out = op.path
    for name in op.path_params:
        kind = param_kind(op.path, name)
        if kind not in values:
            raise LookupError(
                f"{op}: no value for a path parameter of kind {kind!r}: add the kind to the "
                "table of how path parameters are filled"
            )
        out = out.replace("{" + name + "}", values[kind])
    return out


def fill_body(
    op: Op, values: dict[str, Any], references: frozenset[str] = frozenset()
) -> dict[str, Any] | None:
    """A body for `op` from `values` (by field name): every required field, and the optional
    ones named in `references` (fields that point at other resources). None without a body."""
    fields = op.body_fields()
    if fields is None:
        return None
    required, optional = fields
    missing = [name for name in required if name not in values]
    if missing:
        raise LookupError(
            f"{op}: no value for the body field(s) {missing}: add them to the table of body "
            "field values"
        )
    return {
        name: values[name]
        for name in [*required, *optional]
        if name in required or (name in references and name in values)
    }


# -- the served project's runtime ----------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """What this process serves: one project environment of one tenant."""

    tenant: str
    project: str
    env: str

    @property
    def runtime(self) -> str:
        return f"/v1/projects/{self.project}/envs/{self.env}"


def served(client: TestClient) -> Served:
    scope = platform(client).scope
    return Served(scope.tenant, scope.project, scope.env)


def post_event(client: TestClient, headers: dict[str, str], topic: str, data: Any) -> Any:
    where = served(client).runtime
    body = {"topic": topic, "data": data}
    return ok_json(client.post(f"{where}/events", json=body, headers=headers), 202)


def dead_letter(client: TestClient, headers: dict[str, str], marker: str) -> str:
    """A new dead letter of the served project (a job that fails at once): its id."""
    event = post_event(client, headers, "jam", {"id": marker})
    where = served(client).runtime

    def found() -> str | None:
        page = ok_json(client.get(f"{where}/dead-letters?limit=500", headers=headers))
        ids = [d["id"] for d in page["items"] if d["event_id"] == event["event_id"]]
        return ids[0] if ids else None

    return wait_for(found)


def runtime_data(client: TestClient, headers: dict[str, str], marker: str) -> dict[str, str]:
    """Runtime data of the served project, made through its routes with `headers` (a caller
    that may publish and read there): a note kept in state and on a stream, its trace, and a
    dead letter. By kind of path parameter (`param_kind`); `marker` makes the values unique."""
    where = served(client).runtime
    key = f"{marker}-note"
    event = post_event(client, headers, "note", {"id": key, "text": f"{marker}-text"})
    wait_for(lambda: client.get(f"{where}/state/notes/{key}", headers=headers).status_code == 200)
    wait_for(
        lambda: client.get(f"{where}/streams/wall/pinned/{key}", headers=headers).status_code == 200
    )
    wait_for(
        lambda: (
            client.get(f"{where}/traces/{event['trace_id']}", headers=headers).status_code == 200
        )
    )
    return {
        **runtime_address(client),
        "traces": event["trace_id"],
        "state": "notes",
        "key": key,
        "streams": "wall",
        "group": "pinned",
        "id": key,
        "dead-letters": dead_letter(client, headers, f"{marker}-jam"),
    }


def runtime_address(client: TestClient) -> dict[str, str]:
    """The kinds of path parameter every runtime route has, and the flow: the served ones."""
    where = served(client)
    return {"projects": where.project, "envs": where.env, "flows": "f"}


# -- audit chains -------------------------------------------------------------------------------


def head_seq(client: TestClient, chain: str) -> int:
    """The seq of a chain's last record; -1 while it has none."""
    head = call(client, platform(client).control.audit.head, chain)
    return -1 if head is None else head.seq


def heads(client: TestClient, chains: list[str]) -> dict[str, int]:
    return {chain: head_seq(client, chain) for chain in chains}


# -- fresh resources --------------------------------------------------------------------------


@dataclass
class Maker:
    """Makes fresh resources in one tenant as the system admin: a new one of each kind of path
    parameter (`make`), or all an operation's path names (`resources`)."""

    client: TestClient
    admin: dict[str, Any]
    tenant: str
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def fresh(self, prefix: str) -> str:
        return f"{prefix}-{next(self.counter)}"

    def h(self, tenant: str | None = "") -> dict[str, str]:
        return bearer(self.admin, self.tenant if tenant == "" else tenant)

    def post(self, path: str, body: Any = None, status: int = 201) -> Any:
        return ok_json(self.client.post(path, json=body, headers=self.h()), status)

    def identity(self) -> Any:
        return platform(self.client).control.identity

    def person(self) -> tuple[str, str]:
        """A user of no tenant, with PASSWORD: (id, email)."""
        email = f"{self.fresh('person')}@example.com"
        return call(self.client, self.identity().create_user, email, password=PASSWORD).id, email

    def member(self, role: str = "tenant_viewer") -> Member:
        email = f"{self.fresh('member')}@example.com"
        return join(self.client, self.admin, self.tenant, email, role, f"tenant/{self.tenant}")

    def make(self, kind: str, values: dict[str, str]) -> str:
        """A new resource of `kind`, inside those of `values` (the keys of a service account)."""
        if kind not in MAKE:
            raise LookupError(f"add how to make a fresh {kind!r} to MAKE")
        return MAKE[kind](self, values)

    def resources(self, op: Op) -> dict[str, str]:
        """Fresh resources for each of `op`'s path parameters, by kind: for a runtime route, the
        served project's (a new dead letter, for what replays one)."""
        if op.runtime:
            return self.runtime(op)
        values: dict[str, str] = {}
        for name in op.path_params:
            kind = param_kind(op.path, name)
            values[kind] = self.make(kind, values)
        return values

    def runtime(self, op: Op) -> dict[str, str]:
        values = runtime_address(self.client)
        h = self.h(served(self.client).tenant)
        for name in op.path_params:
            kind = param_kind(op.path, name)
            if kind == "dead-letters":
                values[kind] = dead_letter(self.client, h, self.fresh("replayed"))
            elif kind not in values:
                values |= runtime_data(self.client, h, self.fresh("runtime"))
        return values


def _tenant(maker: Maker, values: dict[str, str]) -> str:
    ident = maker.fresh("tenant")
    return create_tenant(maker.client, maker.admin, ident, ident)["id"]


def _key(maker: Maker, values: dict[str, str]) -> str:
    created = maker.post(f"/v1/service-accounts/{values['service-accounts']}/keys")
    return created["api_key"]["key_id"]


def _binding(maker: Maker, values: dict[str, str]) -> str:
    grant = {
        "principal": maker.person()[0],
        "role": "tenant_viewer",
        "scope": f"tenant/{maker.tenant}",
    }
    return maker.post("/v1/role-bindings", grant)["id"]


CONTRACT = {
    "title": "Hosting",
    "counterparty": "Initech",
    "value": "1200.00",
    "currency": "EUR",
    "start_date": "2025-01-01",
}


def _document(maker: Maker, contract: str) -> str:
    """A document of `contract`: JSON bytes, so that a read of it compares as JSON."""
    response = maker.client.post(
        f"/v1/contracts/{contract}/documents?name=terms.json",
        content=b'{"terms": "net 30"}',
        headers={**maker.h(), "content-type": "application/json"},
    )
    return ok_json(response, 201)["id"]


def _report(maker: Maker, values: dict[str, str]) -> dict[str, Any]:
    project = values.get("projects") or MAKE["projects"](maker, values)
    return {"project_id": project, "status": "green", "period": "W1", "summary": "on track"}


def _session_log(maker: Maker, values: dict[str, str]) -> dict[str, Any]:
    project = values.get("projects") or MAKE["projects"](maker, values)
    return {"project_id": project, "visibility": "project", "content": "# notes"}


# How to make a fresh resource of each kind of path parameter: a new kind is one entry here.
MAKE: dict[str, Callable[[Maker, dict[str, str]], str]] = {
    "tenants": _tenant,
    "teams": lambda m, v: m.post("/v1/teams", {"name": m.fresh("team")})["id"],
    "projects": lambda m, v: m.post("/v1/projects", {"name": m.fresh("project")})["slug"],
    "envs": lambda m, v: m.post(f"/v1/projects/{v['projects']}/envs", {"name": "staging"})["name"],
    "role-bindings": _binding,
    "users": lambda m, v: m.member().id,
    "invites": lambda m, v: m.post("/v1/users/invites", {"email": f"{m.fresh('i')}@example.com"})[
        "id"
    ],
    "service-accounts": lambda m, v: m.post("/v1/service-accounts", {"name": m.fresh("robot")})[
        "id"
    ],
    "keys": _key,
    "contracts": lambda m, v: m.post("/v1/contracts", CONTRACT)["id"],
    "documents": lambda m, v: _document(m, v["contracts"]),
    "reports": lambda m, v: m.post("/v1/reports", _report(m, v))["id"],
    "session-logs": lambda m, v: m.post("/v1/session-logs", _session_log(m, v))["id"],
    "legal-holds": lambda m, v: m.post("/v1/legal-holds", {"reason": m.fresh("hold")})["id"],
    "exports": lambda m, v: ok_json(
        m.client.post("/v1/audit/export", headers=m.h() | {"accept": "application/json"}), 201
    )["id"],
}


# -- tenants set up over HTTP -------------------------------------------------------------------


@dataclass
class TenantWorld:
    """One tenant as the system admin set it up: teams, projects, environments and members
    (each with one role binding, signed in), keyed by short names the test chose."""

    id: str
    name: str
    teams: dict[str, dict[str, Any]] = field(default_factory=dict)
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    envs: dict[str, str] = field(default_factory=dict)  # project key -> environment
    members: dict[str, Member] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)  # other resources: kind -> id

    def scope(self, kind: str, key: str = "") -> str:
        if kind == "tenant":
            return f"tenant/{self.id}"
        if kind == "team":
            return f"tenant/{self.id}/team/{self.teams[key]['id']}"
        return f"tenant/{self.id}/project/{self.projects[key]['slug']}"

    def headers(self, member: str) -> dict[str, str]:
        return bearer(self.members[member].tokens, self.id)


def build_tenant(
    client: TestClient,
    admin: dict[str, Any],
    ident: str,
    name: str,
    *,
    teams: dict[str, str],
    projects: dict[str, tuple[str, str, str]],
    envs: dict[str, str],
    members: dict[str, tuple[str, str, str, str]],
) -> TenantWorld:
    """Create a tenant and, in it, `teams` {key: name}, `projects` {key: (name, slug, team
    key)}, `envs` {project key: env} and `members` {key: (email, role, scope kind, scope key)}."""
    world = TenantWorld(ident, name)
    create_tenant(client, admin, ident, name)
    h = bearer(admin, ident)
    for key, team in teams.items():
        world.teams[key] = ok_json(client.post("/v1/teams", json={"name": team}, headers=h), 201)
    for key, (project, slug, team_key) in projects.items():
        body = {"name": project, "slug": slug, "team_id": world.teams[team_key]["id"]}
        world.projects[key] = ok_json(client.post("/v1/projects", json=body, headers=h), 201)
    for key, env in envs.items():
        slug = world.projects[key]["slug"]
        ok_json(client.post(f"/v1/projects/{slug}/envs", json={"name": env}, headers=h), 201)
        world.envs[key] = env
    for key, (email, role, kind, where) in members.items():
        world.members[key] = join(client, admin, ident, email, role, world.scope(kind, where))
    return world
