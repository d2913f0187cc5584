"""Reporting over HTTP: contracts with ETags, lifecycle conflicts and documents uploaded as raw
bytes and downloaded as stored; status reports and their latest per project; session logs seen
by visibility; the executive report over the served project's real executions, as JSON and as
CSV; retention, legal holds and purges — every change one audit record, the chain intact."""

from __future__ import annotations

import csv
import hashlib
import io
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.api.conftest import error_of, ok_json, wait_for
from tests.api.control import (
    TenantWorld,
    bearer,
    build_tenant,
    call,
    head_seq,
    platform,
    post_event,
    served,
    signin,
    start,
)

pytestmark = pytest.mark.api

CONTRACT = {
    "title": "Hosting for the Shop",
    "counterparty": "Initech",
    "value": "12500.00",
    "currency": "EUR",
    "start_date": "2025-01-01",
    "end_date": "2025-12-31",
}
WORLD: dict[str, Any] = dict(
    teams={"core": "Core", "edge": "Edge"},
    projects={"shop": ("Shop", "shop", "core"), "labs": ("Labs", "labs", "edge")},
    envs={"shop": "dev", "labs": "dev"},
    members={
        "admin": ("ta@acme.example", "tenant_admin", "tenant", ""),
        "viewer": ("tv@acme.example", "tenant_viewer", "tenant", ""),
        "auditor": ("au@acme.example", "auditor", "tenant", ""),
        "editor": ("pe@acme.example", "project_editor", "project", "shop"),
        "reader": ("pv@acme.example", "project_viewer", "project", "shop"),
        "teammate": ("mv@acme.example", "team_viewer", "team", "core"),
        "outsider": ("ev@acme.example", "team_viewer", "team", "edge"),
    },
)


@pytest.fixture
def acme(serve) -> tuple[Any, TenantWorld]:
    client = start(serve)
    admin = signin(client)
    return client, build_tenant(client, admin, "acme", "Acme", **WORLD)


def actions_since(client: Any, chain: str, seq: int) -> list[str]:
    page = call(client, platform(client).control.audit.list, chain, oldest_first=True, limit=500)
    return [r["action"] for r in page.items if r["seq"] > seq]


def test_the_document_declares_every_reporting_route(acme) -> None:
    client, _ = acme
    document = ok_json(client.get("/v1/openapi.json"))
    validate(document)
    ids = {op["operationId"] for item in document["paths"].values() for op in item.values()}
    assert {
        "createContract",
        "listContracts",
        "getContract",
        "updateContract",
        "uploadContractDocument",
        "downloadContractDocument",
        "createReport",
        "listReports",
        "latestReports",
        "getReport",
        "createSessionLog",
        "listSessionLogs",
        "getSessionLog",
        "getExecutiveReport",
        "getRetention",
        "putRetention",
        "purgeRetention",
        "listLegalHolds",
        "placeLegalHold",
        "releaseLegalHold",
    } <= ids
    report = document["paths"]["/v1/executive-report"]["get"]["responses"]["200"]["content"]
    assert set(report) == {"application/json", "text/csv"}


def test_a_contract_over_http_from_draft_to_terminated_with_its_document(acme) -> None:
    client, world = acme
    h, viewer = world.headers("admin"), world.headers("viewer")
    before = head_seq(client, "tenant/acme")

    created = client.post("/v1/contracts", json=CONTRACT, headers=h)
    contract = ok_json(created, 201)
    assert created.headers["etag"] == '"1"' and contract["status"] == "draft"
    assert (
        ok_json(client.get(f"/v1/contracts/{contract['id']}", headers=viewer))["id"]
        == (contract["id"])
    )
    listed = ok_json(client.get("/v1/contracts?status=draft", headers=viewer))
    assert [c["id"] for c in listed["items"]] == [contract["id"]]
    error_of(client.post("/v1/contracts", json=CONTRACT, headers=viewer), 403, "forbidden")
    invalid = {**CONTRACT, "end_date": "2024-12-31"}
    error_of(client.post("/v1/contracts", json=invalid, headers=h), 422, "validation_failed")

    path = f"/v1/contracts/{contract['id']}"
    stale = client.patch(path, json={"status": "active"}, headers={**h, "if-match": '"9"'})
    error_of(stale, 412, "precondition_failed")
    skipped = error_of(
        client.patch(path, json={"status": "expired"}, headers=h), 409, "invalid_transition"
    )
    assert "draft" in skipped["message"] and "expired" in skipped["message"]
    active = client.patch(path, json={"status": "active"}, headers={**h, "if-match": '"1"'})
    assert ok_json(active)["status"] == "active" and active.headers["etag"] == '"2"'
    back = error_of(
        client.patch(path, json={"status": "draft"}, headers=h), 409, "invalid_transition"
    )
    assert "active" in back["message"] and "draft" in back["message"]
    error_of(
        client.patch(path, json={"end_date": "2024-01-01"}, headers=h), 422, "validation_failed"
    )

    data = bytes(range(256)) * 40
    uploaded = client.post(
        f"{path}/documents?name=Vertrag%20sign%C3%A9.pdf",
        content=data,
        headers={**h, "content-type": "application/pdf"},
    )
    document = ok_json(uploaded, 201)
    assert (document["name"], document["content_type"], document["size"]) == (
        "Vertrag signé.pdf",
        "application/pdf",
        len(data),
    )
    assert document["sha256"] == hashlib.sha256(data).hexdigest()
    error_of(client.post(f"{path}/documents", content=b"x", headers=viewer), 403, "forbidden")
    error_of(client.post(f"{path}/documents", content=b"", headers=h), 400, "bad_request")

    download = client.get(f"{path}/documents/{document['id']}", headers=viewer)
    assert download.status_code == 200 and download.content == data
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "attachment" in download.headers["content-disposition"]
    assert "Vertrag%20sign%C3%A9.pdf" in download.headers["content-disposition"]
    assert download.headers["etag"] == f'"{document["sha256"]}"'
    shown = ok_json(client.get(path, headers=viewer))
    assert [d["id"] for d in shown["documents"]] == [document["id"]]
    error_of(client.get(f"{path}/documents/doc-nope", headers=viewer), 404, "not_found")
    for who in ("editor", "teammate", "auditor"):  # contracts are tenant-level
        error_of(client.get(path, headers=world.headers(who)), 403, "forbidden")

    ended = ok_json(client.patch(path, json={"status": "terminated"}, headers=h))
    assert ended["status"] == "terminated" and ended["version"] == 4
    assert actions_since(client, "tenant/acme", before) == [
        "contract.create",
        "contract.status.change",
        "contract.document.create",
        "contract.status.change",
    ]


def test_status_reports_are_kept_and_the_latest_is_per_project(acme) -> None:
    client, world = acme
    editor, reader = world.headers("editor"), world.headers("reader")
    body = {"project_id": "shop", "status": "green", "period": "2025-W01", "summary": "fine"}

    first = ok_json(client.post("/v1/reports", json=body, headers=editor), 201)
    second = ok_json(
        client.post(
            "/v1/reports",
            json={**body, "status": "red", "period": "2025-W02", "risks": ["vendor late"]},
            headers=editor,
        ),
        201,
    )
    labs = {**body, "project_id": "labs"}
    ok_json(client.post("/v1/reports", json=labs, headers=world.headers("admin")), 201)
    error_of(client.post("/v1/reports", json=body, headers=reader), 403, "forbidden")
    error_of(client.post("/v1/reports", json=labs, headers=editor), 403, "forbidden")
    missing = {**body, "project_id": "nope"}
    error_of(
        client.post("/v1/reports", json=missing, headers=world.headers("admin")), 404, "not_found"
    )

    history = ok_json(client.get("/v1/reports?project=shop", headers=reader))
    assert [r["id"] for r in history["items"]] == [second["id"], first["id"]]
    assert second["author"] == world.members["editor"].id
    latest = ok_json(client.get("/v1/reports/latest", headers=reader))
    assert [(r["project_id"], r["status"]) for r in latest["items"]] == [("shop", "red")]
    every = ok_json(client.get("/v1/reports/latest", headers=world.headers("viewer")))
    assert [r["project_id"] for r in every["items"]] == ["labs", "shop"]
    assert ok_json(client.get("/v1/reports/latest?project=labs", headers=world.headers("outsider")))
    error_of(client.get("/v1/reports?project=labs", headers=reader), 403, "forbidden")
    error_of(client.get("/v1/reports?project=Not%20A%20Slug", headers=reader), 400, "bad_request")
    assert ok_json(client.get(f"/v1/reports/{first['id']}", headers=reader))["period"] == "2025-W01"
    error_of(
        client.get(f"/v1/reports/{first['id']}", headers=world.headers("outsider")),
        404,
        "not_found",
    )


def test_session_logs_are_seen_as_their_visibility_says(acme) -> None:
    client, world = acme
    editor = world.headers("editor")
    logs = {}
    for visibility in ("private", "team", "project", "tenant"):
        body = {"project_id": "shop", "visibility": visibility, "content": f"## {visibility}"}
        logs[visibility] = ok_json(client.post("/v1/session-logs", json=body, headers=editor), 201)
        assert logs[visibility]["author"] == world.members["editor"].id
    spoofed = {"project_id": "shop", "visibility": "tenant", "content": "x", "author": "someone"}
    error_of(
        client.post("/v1/session-logs", json=spoofed, headers=editor), 422, "validation_failed"
    )

    sees = {
        "editor": {"private", "team", "project", "tenant"},
        "teammate": {"team", "project", "tenant"},
        "admin": {"team", "project", "tenant"},
        "viewer": {"team", "project", "tenant"},
        "reader": {"project", "tenant"},
        "outsider": {"tenant"},
    }
    for who, expected in sees.items():
        h = world.headers(who)
        listed = ok_json(client.get("/v1/session-logs?project=shop", headers=h))
        assert {log["visibility"] for log in listed["items"]} == expected, who
        for visibility, log in logs.items():
            response = client.get(f"/v1/session-logs/{log['id']}", headers=h)
            if visibility in expected:
                assert ok_json(response)["content"] == f"## {visibility}"
            else:
                error_of(response, 404, "not_found")
    error_of(client.get("/v1/session-logs", headers=world.headers("auditor")), 403, "forbidden")


def test_the_executive_report_counts_the_served_projects_executions(serve) -> None:
    client = start(serve)
    admin = signin(client)
    home = served(client)
    h = bearer(admin, home.tenant)
    ok_json(client.post("/v1/contracts", json=CONTRACT, headers=h), 201)
    usd = {**CONTRACT, "value": "7.5", "currency": "USD", "status": "active"}
    ok_json(client.post("/v1/contracts", json=usd, headers=h), 201)
    report = {"project_id": home.project, "status": "amber", "period": "W1", "summary": "ok"}
    ok_json(client.post("/v1/reports", json=report, headers=h), 201)
    for n in range(3):
        post_event(client, h, "note", {"id": f"n{n}"})
    post_event(client, h, "jam", {"id": "j"})

    def flow() -> dict[str, Any] | None:
        body = ok_json(client.get("/v1/executive-report", headers=h))
        found = [f for f in body["flows"] if (f["project"], f["flow"]) == (home.project, "f")]
        return found[0] if found and found[0]["executions"] >= 4 else None

    stats = wait_for(flow)
    assert stats["env"] == home.env and stats["errors"] >= 1
    assert stats["error_rate"] == pytest.approx(stats["errors"] / stats["executions"])
    assert stats["p95_latency_ms"] is not None
    body = ok_json(client.get("/v1/executive-report", headers=h))
    by_status = {c["status"]: c for c in body["contracts"]}
    assert (by_status["draft"]["count"], by_status["active"]["count"]) == (1, 1)
    assert by_status["active"]["totals"] == [{"currency": "USD", "count": 1, "total": "7.5"}]
    assert body["projects"]["counts"]["amber"] == 1
    assert set(body["window"]) == {"from", "to"}
    # executions over time: daily over the default 30 days, every execution counted once
    assert len(body["series"]) == 30
    assert sum(point["executions"] for point in body["series"]) >= 4
    assert body["series"][0]["start"] == body["window"]["from"]

    as_csv = client.get("/v1/executive-report?from=2000-01-01", headers={**h, "accept": "text/csv"})
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert rows[0]["section"] == "window" and rows[0]["from"] == "2000-01-01T00:00:00.000Z"
    assert {r["section"] for r in rows} == {"window", "contracts", "projects", "series", "flows"}
    [csv_flow] = [r for r in rows if r["section"] == "flows" and r["flow"] == "f"]
    assert int(csv_flow["executions"]) >= 4
    both = {**h, "accept": "application/json;q=0.5, text/csv;q=0.9"}
    assert (
        client.get("/v1/executive-report", headers=both)
        .headers["content-type"]
        .startswith("text/csv")
    )
    assert client.get("/v1/executive-report", headers={**h, "accept": "*/*"}).json()["window"]

    for raw, parameter in (("from=last-week", "from"), ("to=2025-01-01T00:00:00", "to")):
        error = error_of(client.get(f"/v1/executive-report?{raw}", headers=h), 400, "bad_request")
        assert error["details"] == {"parameter": parameter}


def test_retention_holds_and_purges_over_http(serve) -> None:
    client = start(serve)
    admin = signin(client)
    home = served(client)
    h = bearer(admin, home.tenant)
    post_event(client, h, "note", {"id": "old"})
    where = f"/v1/projects/{home.project}/envs/{home.env}"
    wait_for(lambda: client.get(f"{where}/state/notes/old", headers=h).status_code == 200)
    log = {"project_id": home.project, "visibility": "private", "content": "old notes"}
    ok_json(client.post("/v1/session-logs", json=log, headers=h), 201)

    defaults = client.get("/v1/retention", headers=h)
    assert ok_json(defaults)["executions_days"] == 90 and defaults.headers["etag"] == '"0"'
    periods = {"executions_days": 1, "logs_days": 1, "session_logs_days": 1}
    saved = client.put("/v1/retention", json=periods, headers={**h, "if-match": '"0"'})
    assert ok_json(saved)["version"] == 1 and saved.headers["etag"] == '"1"'
    error_of(
        client.put(
            "/v1/retention",
            json={"executions_days": 0, "logs_days": 1, "session_logs_days": None},
            headers=h,
        ),
        422,
        "validation_failed",
    )

    hold = ok_json(client.post("/v1/legal-holds", json={"reason": "audit 2025"}, headers=h), 201)
    assert [x["id"] for x in ok_json(client.get("/v1/legal-holds", headers=h))["items"]] == [
        hold["id"]
    ]
    # a day later, as the platform's clock sees it
    control = platform(client).control
    later = control.retention.clock() + 2 * 86400
    held = call(client, control.retention.purge, home.tenant, later)
    assert held.held and held.deleted.executions == 0
    assert ok_json(client.post("/v1/retention/purge", headers=h))["held"] is True
    assert client.delete(f"/v1/legal-holds/{hold['id']}", headers=h).status_code == 204
    error_of(client.delete(f"/v1/legal-holds/{hold['id']}", headers=h), 404, "not_found")

    before = head_seq(client, f"tenant/{home.tenant}")
    purged = call(client, control.retention.purge, home.tenant, later)
    assert not purged.held and purged.deleted.executions >= 1 and purged.deleted.session_logs == 1
    assert actions_since(client, f"tenant/{home.tenant}", before) == ["retention.purge"]
    assert ok_json(client.get("/v1/session-logs", headers=h))["items"] == []
    assert call(client, control.audit.verify, f"tenant/{home.tenant}").ok


def test_a_contract_created_with_its_documents_and_a_numeric_value(acme) -> None:
    import base64

    client, world = acme
    h = world.headers("admin")
    pdf = b"%PDF-1.7 signed terms"
    body = {
        **CONTRACT,
        "value": 12500.5,
        "documents": [
            {
                "name": "terms.pdf",
                "content_type": "application/pdf",
                "content": base64.b64encode(pdf).decode(),
            }
        ],
    }
    made = ok_json(client.post("/v1/contracts", json=body, headers=h), 201)
    assert made["value"] == "12500.5"
    [document] = made["documents"]
    assert document["name"] == "terms.pdf" and document["size"] == len(pdf)
    download = client.get(f"/v1/contracts/{made['id']}/documents/{document['id']}", headers=h)
    assert download.status_code == 200 and download.content == pdf
    assert download.headers["content-type"].startswith("application/pdf")
    empty = ok_json(
        client.post("/v1/contracts", json={**CONTRACT, "documents": []}, headers=h), 201
    )
    assert empty["documents"] == []
    bad = {**CONTRACT, "documents": [{"name": "x.pdf", "content": "not base64!"}]}
    refused = error_of(client.post("/v1/contracts", json=bad, headers=h), 422, "validation_failed")
    assert "/documents" in refused["details"][0]["pointer"]
    backwards = {**CONTRACT, "end_date": "2024-01-01"}
    refused = error_of(
        client.post("/v1/contracts", json=backwards, headers=h), 422, "validation_failed"
    )
    assert refused["details"][0]["pointer"] == "/end_date"

    # a PATCH that changes nothing: the same version, no record
    version = made["version"]
    seq = call(client, platform(client).control.audit.head, "tenant/acme").seq
    same = client.patch(f"/v1/contracts/{made['id']}", json={"title": made["title"]}, headers=h)
    assert ok_json(same)["version"] == version
    assert actions_since(client, "tenant/acme", seq) == []


def test_the_executive_report_refuses_windows_beyond_what_times_hold(acme) -> None:
    client, world = acme
    h = world.headers("admin")
    for query, parameter in (
        ("to=9999-12-31", "to"),
        ("from=0001-01-01T00:00:00%2B01:00", "from"),
        ("from=1969-12-31", "from"),
    ):
        refused = error_of(
            client.get(f"/v1/executive-report?{query}", headers=h), 400, "bad_request"
        )
        assert refused["details"]["parameter"] == parameter, query
