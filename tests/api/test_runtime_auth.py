"""No anonymous execution: the runtime routes, api steps, event ingest and the websocket need a
credential whose principal holds the right role in the served project's tenant."""

from __future__ import annotations

import json
import time

import pytest
from starlette.websockets import WebSocketDisconnect

from tests.api.conftest import R, error_of, ok_json, wait_for

pytestmark = pytest.mark.api

PASSWORD = "correct horse battery staple"


def credentials(client) -> dict:
    return json.loads(client.app.state.platform.credentials_path.read_text())


def member(client, email: str, role: str) -> dict:
    """A user of tenant `local` holding `role` on the served project; its headers."""
    platform = client.app.state.platform
    identity = platform.control.identity
    view = client.portal.call(lambda: identity.create_user(email, password=PASSWORD))
    binding = {"principal": view.id, "role": role, "scope": "tenant/local/project/proj"}
    ok_json(client.post("/v1/role-bindings", json=binding), 201)
    tokens = ok_json(client.post("/v1/auth/signin", json={"email": email, "password": PASSWORD}))
    return {"authorization": f"Bearer {tokens['access_token']}", "x-tenant-id": "local"}


ANONYMOUS = {"authorization": "", "x-tenant-id": ""}


def test_cfp_dev_writes_credentials_once_with_owner_only_access(serve) -> None:
    client = serve()
    path = client.app.state.platform.credentials_path

    creds = credentials(client)

    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert creds["tenant"] == "local" and creds["project"] == "proj" and creds["env"] == "dev"
    assert creds["api_key"].startswith("cfp_sk_") and creds["email"] == "admin@cfp.localhost"
    admin = ok_json(
        client.post(
            "/v1/auth/signin", json={"email": creds["email"], "password": creds["password"]}
        )
    )
    me = ok_json(client.get("/v1/me", headers={"authorization": f"Bearer {admin['access_token']}"}))
    assert ("system_admin", "system") in {(b["role"], b["scope"]) for b in me["bindings"]}


def test_runtime_routes_need_credentials_and_the_tenant(serve) -> None:
    client = serve()

    error_of(client.get(f"{R}/flows", headers=ANONYMOUS), 401, "unauthorized")
    error_of(client.get(f"{R}/flows", headers={"x-tenant-id": ""}), 400, "bad_request")
    error_of(client.get(f"{R}/flows", headers={"x-tenant-id": "acme"}), 403, "forbidden")
    ok_json(client.get(f"{R}/flows"))


def test_api_steps_need_step_invoke(serve) -> None:
    client = serve()

    anonymous = client.post("/echo/a/1", json={}, headers=ANONYMOUS)
    error_of(anonymous, 401, "unauthorized")
    ok_json(client.post("/echo/a/1", json={}, headers={"x-tenant-id": ""}))  # bare path: no header
    prefixed = client.post("/p/local/proj/dev/echo/a/2", json={}, headers={"x-tenant-id": ""})
    assert ok_json(prefixed)["req"]["pathParams"] == {"kind": "a", "id": "2"}
    error_of(client.post("/p/other/proj/dev/echo/a/3", json={}), 404, "not_found")

    viewer = member(client, "viewer@example.com", "project_viewer")
    refused = client.post("/echo/a/4", json={}, headers=viewer)
    assert error_of(refused, 403, "forbidden")["details"]["action"] == "step.invoke"
    assert ok_json(client.get(f"{R}/flows", headers=viewer))["items"]  # viewers read


def test_event_publishers_only_publish(serve) -> None:
    client = serve()
    publisher = member(client, "pub@example.com", "event_publisher")

    accepted = client.post(
        f"{R}/events", json={"topic": "note", "data": {"id": "n1"}}, headers=publisher
    )
    assert accepted.status_code == 202
    error_of(client.get(f"{R}/state/seen", headers=publisher), 403, "forbidden")
    error_of(client.post("/echo/a/1", json={}, headers=publisher), 403, "forbidden")


def test_the_websocket_authenticates_with_its_first_message(serve) -> None:
    client = serve()

    with client.websocket_connect(f"{R}/ws") as ws:
        ws.send_json({"type": "join", "data": {"streamName": "board", "groupId": "g"}})
        refused = ws.receive_json()
        assert refused["type"] == "error" and refused["error"]["code"] == "unauthorized"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4401

    with client.websocket_connect(f"{R}/ws") as ws:
        ws.send_json({"type": "auth", "token": "cfp_sk_0000000000000000_" + "x" * 43})
        assert ws.receive_json()["type"] == "error"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4401

    with client.websocket_connect(f"{R}/ws") as ws:
        ws.send_json({"type": "auth", "token": credentials(client)["api_key"]})
        assert ws.receive_json()["type"] == "auth"


def test_a_suspended_tenants_steps_receive_no_events_until_it_is_resumed(serve) -> None:
    client = serve()
    creds = credentials(client)
    admin_tokens = ok_json(
        client.post(
            "/v1/auth/signin", json={"email": creds["email"], "password": creds["password"]}
        )
    )
    admin = {"authorization": f"Bearer {admin_tokens['access_token']}", "x-tenant-id": "local"}
    ok_json(client.patch("/v1/tenants/local", json={"status": "suspended"}, headers=admin))

    # the tenant's own credentials are refused; a system admin's event is kept, not delivered
    error_of(client.get(f"{R}/flows"), 403, "forbidden")
    accepted = client.post(
        f"{R}/events", json={"topic": "note", "data": {"id": "n9"}}, headers=admin
    )
    assert accepted.status_code == 202
    time.sleep(0.5)
    assert client.get(f"{R}/state/seen/n9", headers=admin).status_code == 404

    ok_json(client.patch("/v1/tenants/local", json={"status": "active"}, headers=admin))
    wait_for(lambda: client.get(f"{R}/state/seen/n9", headers=admin).status_code == 200)


def test_loading_the_project_registers_its_flows_and_versions_once(serve) -> None:
    client = serve()
    platform = client.app.state.platform

    again = client.portal.call(platform.register_flows)

    assert again == []  # unchanged code: no new version
    records = ok_json(client.get("/v1/audit/records?action=flow.version.create"))["items"]
    assert sorted(r["target"]["id"] for r in records) == ["proj/demo", "proj/ops"]
    assert {r["details"]["env"] for r in records} == {"dev"}


def test_a_dead_letter_replay_is_audited(serve) -> None:
    client = serve()
    accepted = client.post(f"{R}/events", json={"topic": "job", "data": {"id": "j1"}})
    assert accepted.status_code == 202
    dead = wait_for(lambda: ok_json(client.get(f"{R}/dead-letters"))["items"], within=20)

    replayed = client.post(f"{R}/dead-letters/{dead[0]['id']}/replay")

    assert replayed.status_code == 202
    records = ok_json(client.get("/v1/audit/records?action=dead_letter.replay"))["items"]
    assert [(r["target"]["id"], r["details"]["replayed"]) for r in records] == [(dead[0]["id"], 1)]
    assert records[0]["actor"]["kind"] == "service_account"


def test_diagnostics_exist_only_when_enabled_for_their_role_and_every_use_is_audited(
    serve,
) -> None:
    off = serve()
    error_of(off.get(f"{R}/diagnostics"), 404, "not_found")

    client = serve(diagnostics=True)
    before = ok_json(client.get("/v1/audit/records?action=diagnostics.use"))["items"]
    found = ok_json(client.get(f"{R}/diagnostics"))
    assert found["project"] == "proj" and found["backend"] == "local"
    assert set(found["queue"]) and found["runtime"]["steps"] > 0
    assert "api_key" not in json.dumps(found) and "password" not in json.dumps(found)
    after = ok_json(client.get("/v1/audit/records?action=diagnostics.use"))["items"]
    assert len(after) == len(before) + 1
    assert after[0]["target"] == {"type": "env", "id": "proj/dev"}

    editor = member(client, "editor@example.com", "project_editor")  # no diagnostics.use
    error_of(client.get(f"{R}/diagnostics", headers=editor), 403, "forbidden")
    support = member(client, "support@example.com", "support")
    assert ok_json(client.get(f"{R}/diagnostics", headers=support))["env"] == "dev"
    records = ok_json(client.get("/v1/audit/records?action=diagnostics.use"))["items"]
    assert len(records) == len(before) + 2  # the refusal appended none
