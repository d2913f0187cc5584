"""The control plane over HTTP on the embedded backend: sign-in and tokens, tenants, teams,
projects and environments, role bindings, `x-tenant-id` rules, ETags, the audit record of every
change, and the OpenAPI document that describes it all."""

from __future__ import annotations

import concurrent.futures
import uuid

import jwt
import pytest
from openapi_spec_validator import validate

from tests.api.conftest import error_of, ok_json

pytestmark = pytest.mark.api

ADMIN = "admin@example.com"
PASSWORD = "correct horse battery staple"


@pytest.fixture(params=["local", pytest.param("emulators", marks=pytest.mark.emulator)])
def client(request, serve):
    """The same control plane on the embedded store and on the Firestore emulator."""
    extra: dict = {}
    if request.param == "emulators":
        emulators = request.getfixturevalue("emulators")
        unique = uuid.uuid4().hex[:10]
        database = f"cp-{unique}"
        extra = dict(
            backend="emulators",
            tenant=f"t{unique}",  # Pub/Sub names are per tenant: tests stay apart
            firestore_emulator_host=emulators.firestore_host,
            pubsub_emulator_host=emulators.pubsub_host,
            storage_emulator_host=emulators.gcs_url,
            firestore_database=database,
            bucket=f"cp-{unique}",
        )
        request.addfinalizer(lambda: emulators.reset_firestore([database]))
    return serve(
        password_profile="test",
        bootstrap_admin_email=ADMIN,
        bootstrap_admin_password=PASSWORD,
        **extra,
    )


def region(client) -> str:
    """The deployment's region: a tenant created there is served here."""
    return client.app.state.platform.settings.deployment_region


def signin(client, email: str = ADMIN, password: str = PASSWORD) -> dict:
    return ok_json(client.post("/v1/auth/signin", json={"email": email, "password": password}))


def bearer(tokens: dict, tenant: str | None = None) -> dict:
    headers = {"authorization": f"Bearer {tokens['access_token']}"}
    if tenant:
        headers["x-tenant-id"] = tenant
    return headers


def user(client, email: str) -> str:
    """A user made directly through the identity service (invites arrive with the users API)."""
    identity = client.app.state.platform.control.identity
    view = client.portal.call(lambda: identity.create_user(email, password=PASSWORD))
    return view.id


@pytest.fixture
def acme(client) -> dict:
    admin = signin(client)
    ok_json(
        client.post(
            "/v1/tenants", json={"name": "Acme", "region": region(client)}, headers=bearer(admin)
        ),
        201,
    )
    return admin


def test_signin_me_and_jwks(client) -> None:
    tokens = signin(client)

    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    me = ok_json(client.get("/v1/me", headers=bearer(tokens)))
    assert me["email"] == ADMIN
    assert [(b["role"], b["scope"]) for b in me["bindings"]] == [("system_admin", "system")]
    [key] = ok_json(client.get("/.well-known/jwks.json"))["keys"]
    claims = jwt.decode(
        tokens["access_token"],
        jwt.PyJWK(key).key,
        algorithms=["EdDSA"],
        options={"verify_aud": False},
    )
    assert claims["sub"] == me["id"]


def test_bad_credentials_are_401_in_the_envelope(client) -> None:
    wrong = client.post("/v1/auth/signin", json={"email": ADMIN, "password": "nope nope nope"})
    error_of(wrong, 401, wrong.json()["error"]["code"])
    error_of(client.get("/v1/me"), 401, "unauthorized")
    garbage = client.get("/v1/me", headers={"authorization": "Bearer not-a-token"})
    assert garbage.status_code == 401


def test_refresh_rotates_and_a_reused_token_ends_the_session(client) -> None:
    first = signin(client)

    second = ok_json(
        client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    )
    assert second["refresh_token"] != first["refresh_token"]
    reuse = client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    # reusing a dead token revoked the whole family: the newer token is dead too
    again = client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert again.status_code == 401


def test_two_simultaneous_refreshes_one_wins_and_the_family_is_revoked(client) -> None:
    tokens = signin(client)

    def use() -> int:
        return client.post(
            "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        ).status_code

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        codes = sorted(pool.map(lambda _: use(), range(2)))

    assert codes == [200, 401]


def test_tenant_team_project_env_with_etags_and_audit(client, acme) -> None:
    h = bearer(acme, "acme")

    tenant = client.get("/v1/tenants/acme", headers=bearer(acme))
    assert ok_json(tenant)["kms_key_id"] == "tenant-acme" and tenant.headers["etag"] == '"1"'
    team = ok_json(client.post("/v1/teams", json={"name": "Platform"}, headers=h), 201)
    project = ok_json(
        client.post("/v1/projects", json={"name": "Shop", "team_id": team["id"]}, headers=h), 201
    )
    ok_json(client.post("/v1/projects/shop/envs", json={"name": "prod"}, headers=h), 201)
    assert [
        e["name"] for e in ok_json(client.get("/v1/projects/shop/envs", headers=h))["items"]
    ] == ["prod"]
    assert project["team_id"] == team["id"]

    stale = client.patch(
        "/v1/teams/" + team["id"], json={"name": "X"}, headers={**h, "if-match": '"9"'}
    )
    error_of(stale, 412, "precondition_failed")
    renamed = client.patch(
        "/v1/teams/" + team["id"], json={"name": "Core"}, headers={**h, "if-match": '"1"'}
    )
    assert ok_json(renamed)["version"] == 2 and renamed.headers["etag"] == '"2"'

    records = ok_json(client.get("/v1/audit/records?limit=50", headers=h))["items"]
    assert [r["action"] for r in records] == [
        "team.update",
        "env.create",
        "project.create",
        "team.create",
    ]
    assert [r["seq"] for r in records] == [3, 2, 1, 0]  # one gapless chain per tenant
    assert all(r["actor"]["kind"] == "user" and r["outcome"] == "success" for r in records)
    # a failed action leaves no record
    error_of(client.post("/v1/projects", json={"name": "Shop"}, headers=h), 409, "conflict")
    assert len(ok_json(client.get("/v1/audit/records", headers=h))["items"]) == 4


def test_tenant_header_rules(client, acme) -> None:
    error_of(client.get("/v1/teams", headers=bearer(acme)), 400, "bad_request")
    ada = user(client, "ada@example.com")
    ada_tokens = signin(client, "ada@example.com")
    # no binding in acme: 403, the same as for a tenant that does not exist
    exists = client.get("/v1/teams", headers=bearer(ada_tokens, "acme"))
    missing = client.get("/v1/teams", headers=bearer(ada_tokens, "no-such-tenant"))
    assert exists.status_code == missing.status_code == 403
    assert exists.json()["error"]["message"].replace("acme", "T") == missing.json()["error"][
        "message"
    ].replace("no-such-tenant", "T")
    assert ada


def test_role_bindings_apply_to_the_next_request(client, acme) -> None:
    h = bearer(acme, "acme")
    ada = user(client, "ada@example.com")
    ada_h = bearer(signin(client, "ada@example.com"), "acme")
    assert client.get("/v1/teams", headers=ada_h).status_code == 403

    binding = ok_json(
        client.post(
            "/v1/role-bindings",
            json={"principal": ada, "role": "tenant_viewer", "scope": "tenant/acme"},
            headers=h,
        ),
        201,
    )
    assert ok_json(client.get("/v1/teams", headers=ada_h))["items"] == []
    refused = client.post("/v1/teams", json={"name": "Mine"}, headers=ada_h)
    assert error_of(refused, 403, "forbidden")["details"]["action"] == "team.manage"
    assert "tenant_viewer" not in error_of(refused, 403, "forbidden")["details"]["roles"]

    assert client.delete(f"/v1/role-bindings/{binding['id']}", headers=h).status_code == 204
    assert client.get("/v1/teams", headers=ada_h).status_code == 403


def test_a_role_cannot_be_granted_by_someone_who_lacks_it(client, acme) -> None:
    h = bearer(acme, "acme")
    ada = user(client, "ada@example.com")
    ok_json(
        client.post(
            "/v1/role-bindings",
            json={"principal": ada, "role": "tenant_viewer", "scope": "tenant/acme"},
            headers=h,
        ),
        201,
    )
    ada_h = bearer(signin(client, "ada@example.com"), "acme")

    escalate = client.post(
        "/v1/role-bindings",
        json={"principal": ada, "role": "tenant_admin", "scope": "tenant/acme"},
        headers=ada_h,
    )

    error_of(escalate, 403, "forbidden")


def test_only_a_system_admin_creates_tenants(client, acme) -> None:
    user(client, "ada@example.com")
    ada = bearer(signin(client, "ada@example.com"))
    error_of(
        client.post("/v1/tenants", json={"name": "Mine", "region": region(client)}, headers=ada),
        403,
        "forbidden",
    )
    assert ok_json(client.get("/v1/tenants", headers=ada))["items"] == []
    listed = ok_json(client.get("/v1/tenants", headers=bearer(acme)))["items"]
    served = client.app.state.platform.scope.tenant  # the served project's tenant
    assert [t["id"] for t in listed] == sorted(["acme", served])


def test_a_suspended_tenant_is_refused_and_a_deleted_one_is_gone(client, acme) -> None:
    ada = user(client, "ada@example.com")
    h = bearer(acme, "acme")
    ok_json(
        client.post(
            "/v1/role-bindings",
            json={"principal": ada, "role": "tenant_admin", "scope": "tenant/acme"},
            headers=h,
        ),
        201,
    )
    ada_h = bearer(signin(client, "ada@example.com"), "acme")
    ok_json(client.patch("/v1/tenants/acme", json={"status": "suspended"}, headers=bearer(acme)))

    error_of(client.get("/v1/teams", headers=ada_h), 403, "forbidden")

    ok_json(client.delete("/v1/tenants/acme", headers=bearer(acme)))
    error_of(client.get("/v1/teams", headers=h), 403, "forbidden")


def test_the_openapi_document_is_valid_and_lists_the_control_plane(client) -> None:
    document = ok_json(client.get("/v1/openapi.json"))

    validate(document)
    assert document["openapi"] == "3.1.0"
    for path in (
        "/v1/tenants",
        "/v1/teams",
        "/v1/projects",
        "/v1/role-bindings",
        "/v1/auth/signin",
        "/v1/me",
        "/v1/audit/records",
        "/.well-known/jwks.json",
    ):
        assert path in document["paths"], path
    teams = document["paths"]["/v1/teams"]["get"]
    assert any(p["name"] == "x-tenant-id" and p["required"] for p in teams["parameters"])


def test_signins_are_recorded_on_the_system_chain_and_rate_limited(client) -> None:
    admin = signin(client)
    for _ in range(10):
        client.post("/v1/auth/signin", json={"email": "ada@example.com", "password": "x" * 12})

    limited = client.post(
        "/v1/auth/signin", json={"email": "ada@example.com", "password": "x" * 12}
    )

    error_of(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    records = ok_json(client.get("/v1/audit/records?limit=100", headers=bearer(admin)))["items"]
    signins = [r for r in records if r["action"] == "auth.signin"]
    assert {r["outcome"] for r in signins} == {"success", "failure"}
    assert all("password" not in str(r) for r in signins)
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(seqs, reverse=True) and seqs[-1] == 0


def test_the_system_chain_is_for_system_roles_only(client, acme) -> None:
    user(client, "ada@example.com")
    ada = bearer(signin(client, "ada@example.com"))
    error_of(client.get("/v1/audit/records", headers=ada), 403, "forbidden")


def test_a_tenant_pinned_to_another_region_is_answered_421_with_its_region(client) -> None:
    admin = signin(client)
    ok_json(
        client.post(
            "/v1/tenants", json={"name": "Eu", "region": "europe-west4"}, headers=bearer(admin)
        ),
        201,
    )

    moved = client.get("/v1/teams", headers=bearer(admin, "eu"))

    error = error_of(moved, 421, "wrong_region")
    assert error["details"] == {"region": "europe-west4"}


def test_a_password_change_ends_every_other_session(client) -> None:
    first = signin(client)
    second = signin(client)
    new = "a different long passphrase"

    fresh = ok_json(
        client.post(
            "/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": new},
            headers=bearer(first),
        )
    )

    assert client.get("/v1/me", headers=bearer(second)).status_code == 401
    assert client.get("/v1/me", headers=bearer(first)).status_code == 401
    ok_json(client.get("/v1/me", headers=bearer(fresh)))
    assert (
        client.post("/v1/auth/signin", json={"email": ADMIN, "password": PASSWORD}).status_code
        == 401
    )
    signin(client, ADMIN, new)


def test_rotating_the_signing_key_signs_nobody_out(client) -> None:
    tokens = signin(client)

    rotated = ok_json(client.post("/v1/auth/keys/rotate", headers=bearer(tokens)))

    ok_json(client.get("/v1/me", headers=bearer(tokens)))  # signed by the old version
    kids = {k["kid"] for k in ok_json(client.get("/.well-known/jwks.json"))["keys"]}
    assert rotated["kid"] in kids and len(kids) == 2
    newer = signin(client)
    assert jwt.get_unverified_header(newer["access_token"])["kid"] == rotated["kid"]


def test_granting_the_same_role_twice_is_a_conflict(client, acme) -> None:
    h = bearer(acme, "acme")
    ada = user(client, "ada@example.com")
    binding = {"principal": ada, "role": "tenant_viewer", "scope": "tenant/acme"}
    first = ok_json(client.post("/v1/role-bindings", json=binding, headers=h), 201)

    again = client.post("/v1/role-bindings", json=binding, headers=h)

    assert error_of(again, 409, "conflict")["details"] == {"id": first["id"]}
    assert client.delete(f"/v1/role-bindings/{first['id']}", headers=h).status_code == 204
    ok_json(client.post("/v1/role-bindings", json=binding, headers=h), 201)  # granted anew
