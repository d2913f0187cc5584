"""`Idempotency-Key` on the create routes over HTTP: the same key and body answer the first answer
again without doing it twice (one audit record, one mail), another body is 409, and each
principal, route and tenant has keys of its own."""

from __future__ import annotations

import pytest

from tests.api.conftest import error_of, ok_json

pytestmark = pytest.mark.api

ADMIN = "admin@example.com"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def client(serve):
    return serve(
        password_profile="test",
        bootstrap_admin_email=ADMIN,
        bootstrap_admin_password=PASSWORD,
    )


def signin(client, email: str = ADMIN) -> dict:
    return ok_json(client.post("/v1/auth/signin", json={"email": email, "password": PASSWORD}))


def bearer(tokens: dict, tenant: str | None = None, key: str | None = None) -> dict:
    headers = {"authorization": f"Bearer {tokens['access_token']}"}
    if tenant:
        headers["x-tenant-id"] = tenant
    if key:
        headers["idempotency-key"] = key
    return headers


@pytest.fixture
def admin(client) -> dict:
    tokens = signin(client)
    for name in ("Acme", "Globex"):
        body = {"name": name, "region": "local"}
        ok_json(client.post("/v1/tenants", json=body, headers=bearer(tokens)), 201)
    return tokens


def actions(client, admin: dict, tenant: str | None = "acme") -> list[str]:
    records = ok_json(client.get("/v1/audit/records?limit=200", headers=bearer(admin, tenant)))
    return [r["action"] for r in records["items"]]


def test_the_same_key_and_body_answer_the_same_without_doing_it_again(client, admin) -> None:
    headers = bearer(admin, "acme", "team-1")

    first = client.post("/v1/teams", json={"name": "Platform"}, headers=headers)
    again = client.post("/v1/teams", content=b'{ "name" : "Platform" }', headers=headers)

    assert (
        (again.status_code, again.json())
        == (first.status_code, first.json())
        == (
            201,
            first.json(),
        )
    )
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    teams = ok_json(client.get("/v1/teams", headers=bearer(admin, "acme")))["items"]
    assert [t["id"] for t in teams] == [first.json()["id"]]
    assert actions(client, admin).count("team.create") == 1


def test_another_body_with_the_key_is_409(client, admin) -> None:
    headers = bearer(admin, "acme", "team-1")
    ok_json(client.post("/v1/teams", json={"name": "Platform"}, headers=headers), 201)

    other = client.post("/v1/teams", json={"name": "Data"}, headers=headers)

    error_of(other, 409, "idempotency_key_reused")
    assert actions(client, admin).count("team.create") == 1


def test_principals_routes_and_tenants_have_their_own_keys(client, admin) -> None:
    grace = ok_json(
        client.post(
            "/v1/users/invites",
            json={"email": "grace@example.com", "role": "tenant_admin"},
            headers=bearer(admin, "acme"),
        ),
        201,
    )
    platform = client.app.state.platform
    [mail] = sorted((platform.settings.data_dir / "outbox").glob("*.eml"))
    token = next(w for w in mail.read_text().split() if w.startswith("cfp_inv_"))
    ok_json(client.post("/v1/auth/invites/accept", json={"token": token, "password": PASSWORD}))
    assert grace["email"] == "grace@example.com"
    other = signin(client, "grace@example.com")

    mine = client.post("/v1/teams", json={"name": "T"}, headers=bearer(admin, "acme", "k"))
    theirs = client.post("/v1/teams", json={"name": "T"}, headers=bearer(other, "acme", "k"))
    elsewhere = client.post("/v1/teams", json={"name": "T"}, headers=bearer(admin, "globex", "k"))
    project = client.post("/v1/projects", json={"name": "T"}, headers=bearer(admin, "acme", "k"))

    ids = {ok_json(r, 201)["id"] for r in (mine, theirs, elsewhere)}
    assert len(ids) == 3 and ok_json(project, 201)["slug"] == "t"
    assert actions(client, admin).count("team.create") == 2


def test_every_create_route_honours_the_key(client, admin) -> None:
    h = bearer(admin, "acme")
    creates = [
        ("/v1/tenants", {"name": "Initech", "region": "local"}, bearer(admin), None),
        ("/v1/teams", {"name": "Core"}, h, "acme"),
        ("/v1/projects", {"name": "Shop"}, h, "acme"),
        ("/v1/projects/shop/envs", {"name": "prod"}, h, "acme"),
        ("/v1/service-accounts", {"name": "ci"}, h, "acme"),
        ("/v1/users/invites", {"email": "dan@example.com"}, h, "acme"),
    ]
    for path, body, headers, _ in creates:
        keyed = {**headers, "idempotency-key": f"create {path}"}
        first = ok_json(client.post(path, json=body, headers=keyed), 201)
        replay = client.post(path, json=body, headers=keyed)
        assert (replay.status_code, replay.json()) == (201, first), path
        assert replay.headers["idempotent-replayed"] == "true", path
    accounts = ok_json(client.get("/v1/service-accounts", headers=h))["items"]
    binding = {"principal": accounts[0]["id"], "role": "tenant_viewer", "scope": "tenant/acme"}
    keyed = {**h, "idempotency-key": "bind"}
    first = ok_json(client.post("/v1/role-bindings", json=binding, headers=keyed), 201)
    assert ok_json(client.post("/v1/role-bindings", json=binding, headers=keyed), 201) == first

    invites = list((client.app.state.platform.settings.data_dir / "outbox").glob("*.eml"))
    assert len(invites) == 1  # the invite was mailed once
    assert sorted(actions(client, admin)) == sorted(
        [
            "team.create",
            "project.create",
            "env.create",
            "service_account.create",
            "invite.create",
            "role_binding.create",
        ]
    )
    system = ok_json(client.get("/v1/audit/records?action=tenant.create", headers=bearer(admin)))
    assert [r["target"]["id"] for r in system["items"]].count("initech") == 1


def test_a_failed_create_is_not_kept_and_runs_again(client, admin) -> None:
    h = bearer(admin, "acme", "dup")
    ok_json(client.post("/v1/projects", json={"name": "Shop"}, headers=bearer(admin, "acme")), 201)

    error_of(client.post("/v1/projects", json={"name": "Shop"}, headers=h), 409, "conflict")
    error_of(client.post("/v1/projects", json={"name": "Shop"}, headers=h), 409, "conflict")
    error_of(client.post("/v1/projects", json={"nom": "x"}, headers=h), 422, "validation_failed")
    ok_json(client.post("/v1/projects", json={"name": "Shop", "slug": "shop-2"}, headers=h), 201)


def test_a_bad_key_is_400_and_no_key_is_no_idempotency(client, admin) -> None:
    h = bearer(admin, "acme", "x" * 256)
    error_of(client.post("/v1/teams", json={"name": "T"}, headers=h), 400, "bad_request")

    plain = bearer(admin, "acme")
    one = ok_json(client.post("/v1/teams", json={"name": "T"}, headers=plain), 201)
    two = ok_json(client.post("/v1/teams", json={"name": "T"}, headers=plain), 201)
    assert one["id"] != two["id"]
    unauthenticated = client.post("/v1/teams", json={"name": "T"}, headers={"idempotency-key": "k"})
    error_of(unauthenticated, 401, "unauthorized")
