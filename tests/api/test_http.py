"""The runtime surface over HTTP: index, health, metrics, flows, steps, traces, logs, state,
streams, dead letters, events and settings, on a real app with the embedded backend."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from cfp.api.app import create_app
from cfp.app import build
from cfp.settings import Settings
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from tests.api.conftest import PROJECT, R, error_of, ok_json, wait_for
from tests.conftest import write_project

pytestmark = pytest.mark.api

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "orders"


def echo(client: TestClient, item: str) -> dict:
    """Call the Echo api step and wait until the event it emitted has been recorded."""
    body = ok_json(client.post(f"/echo/thing/{item}", json={"n": 1}))
    wait_for(lambda: client.get(f"{R}/state/counts/{item}").status_code == 200)
    return body


def post_event(client: TestClient, topic: str, data: object, **extra: object) -> dict:
    return ok_json(client.post(f"{R}/events", json={"topic": topic, "data": data, **extra}), 202)


def test_index_health_and_projects(serve):
    client = serve()
    index = ok_json(client.get("/"))
    assert index["project"] == "proj" and index["env"] == "dev"
    assert index["surfaces"]["traces"] == f"{R}/traces"
    assert index["surfaces"]["websocket"] == f"{R}/ws"
    routes = {(s["step"], s["method"], s["path"]) for s in index["api_steps"]}
    assert ("Echo", "POST", "/echo/:kind/:id") in routes and ("Boom", "GET", "/boom") in routes
    assert ok_json(client.get("/health")) == {"status": "ok"}
    assert ok_json(client.get("/ready")) == {"status": "ready", "project": "proj", "steps": 8}
    served = ok_json(client.get("/v1/projects", headers={"x-tenant-id": ""}))
    assert served == {  # without a tenant: what this process serves
        "items": [{"slug": "proj", "envs": ["dev"], "steps": 8, "streams": 2}],
        "next_cursor": None,
    }
    # with one: the tenant's projects, the served one registered on first start
    tenant_projects = ok_json(client.get("/v1/projects"))["items"]
    assert [p["slug"] for p in tenant_projects] == ["proj"]
    envs = ok_json(client.get("/v1/projects/proj/envs"))["items"]
    assert [e["name"] for e in envs] == ["dev"]


def test_ready_is_503_until_the_runtime_has_started(tmp_path):
    root = write_project(tmp_path / "proj", PROJECT)
    settings = Settings(project_dir=root, data_dir=tmp_path / "data", project_name="proj")
    client = TestClient(create_app(build(settings, log_stream=io.StringIO())))
    assert client.get("/ready").status_code == 503  # no lifespan yet: nothing consumes
    assert client.get("/ready").json() == {"status": "starting"}
    with client:
        assert ok_json(client.get("/ready"))["status"] == "ready"


def test_metrics_after_traffic(serve):
    client = serve()
    echo(client, "m1")
    post_event(client, "job", {"id": "j1"})
    wait_for(lambda: ok_json(client.get(f"{R}/dead-letters"))["items"])
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("cfp_step_executions_total", step="Echo", status="ok") == 1
    assert value("cfp_step_executions_total", step="Record", status="ok") == 1
    assert value("cfp_step_executions_total", step="Flaky", status="error") == 1
    assert value("cfp_step_errors_total", step="Flaky") == 1
    assert value("cfp_step_duration_seconds_count", step="Record") == 1
    assert value("cfp_step_duration_seconds_bucket", step="Record", le="+Inf") == 1
    assert value("cfp_step_duration_seconds_bucket", step="Echo", le="30.0") == 1
    assert value("cfp_queue_depth", step="Flaky", state="dead") == 1
    assert value("cfp_queue_depth", step="Record", state="pending") == 0
    assert value("cfp_queue_depth", step="Board", state="in_flight") == 0
    assert value("cfp_step_in_flight", step="Record") == 0


def test_flows_graph_with_real_virtual_and_conditional_edges(serve):
    client = serve()
    flows = ok_json(client.get(f"{R}/flows"))
    assert flows == {
        "items": [
            {"name": "demo", "steps": 3, "edges": 3},
            {"name": "ops", "steps": 5, "edges": 0},
        ],
        "next_cursor": None,
    }
    demo = ok_json(client.get(f"{R}/flows/demo"))
    nodes = {n["id"]: n for n in demo["nodes"]}
    assert nodes["Echo"]["type"] == "api"
    assert (nodes["Echo"]["method"], nodes["Echo"]["path"]) == ("POST", "/echo/:kind/:id")
    assert nodes["Record"]["type"] == "event"
    assert nodes["Record"]["subscribes"] == ["echo.seen", "note"]
    assert nodes["Review"]["type"] == "noop"
    assert nodes["Review"]["virtualEmits"] == [
        {"topic": "note", "label": "approved", "conditional": False}
    ]
    edges = {(e["source"], e["topic"], e["target"]): e for e in demo["edges"]}
    assert set(edges) == {
        ("Echo", "echo.seen", "Record"),
        ("Echo", "echo.seen", "Review"),
        ("Review", "note", "Record"),
    }
    real = edges[("Echo", "echo.seen", "Record")]
    assert (real["virtual"], real["label"], real["conditional"]) == (False, "when asked", True)
    assert edges[("Echo", "echo.seen", "Review")]["virtual"] is True
    drawn = edges[("Review", "note", "Record")]
    assert (drawn["virtual"], drawn["label"]) == (True, "approved")
    error = error_of(client.get(f"{R}/flows/nope"), 404, "not_found")
    assert error["details"] == {"flows": ["demo", "ops"]}


def test_the_example_project_flows_and_order_round_trip(serve):
    client = serve(project_dir=EXAMPLE)
    orders = ok_json(client.get(f"{R}/flows/orders"))
    edges = {(e["source"], e["topic"], e["target"]): e for e in orders["edges"]}
    flagged = edges[("PriceOrder", "order.flagged", "AuditFlaggedOrder")]
    assert (flagged["label"], flagged["conditional"], flagged["virtual"]) == (
        "over limit",
        True,
        False,
    )
    assert edges[("HumanReview", "order.ready", "SendConfirmation")]["virtual"] is True
    assert edges[("TrackOrderStatus", "order.ready", "SendConfirmation")]["virtual"] is False
    item = {"sku": "a", "quantity": 2, "unitPrice": 5}
    created = ok_json(client.post("/orders", json={"customerId": "c1", "items": [item]}), 201)
    order_id = created["orderId"]
    booked = wait_for(
        lambda: (o := client.get(f"/orders/{order_id}").json()).get("status") == "booked" and o
    )
    assert booked["total"] == 10 and booked["customerId"] == "c1"
    assert ok_json(client.get(f"{R}/streams/order_status/c1/{order_id}"))["status"] == "ready"
    assert client.get("/orders/nope").status_code == 404
    refused = client.post("/orders", json={"customerId": "c"}, headers={"x-api-key": "blocked"})
    assert refused.status_code == 401


def test_wrong_project_or_env_is_404_everywhere(serve):
    client = serve()
    for base in ("/v1/projects/other/envs/dev", "/v1/projects/proj/envs/prod"):
        for response in (
            client.get(f"{base}/flows"),
            client.get(f"{base}/steps"),
            client.get(f"{base}/traces"),
            client.get(f"{base}/state/g/k"),
            client.get(f"{base}/settings"),
            client.post(f"{base}/events", json={"topic": "note", "data": {"id": "x"}}),
        ):
            error = error_of(response, 404, "not_found")
            assert error["details"] in ({"served": "proj"}, {"served": "dev"})
    assert client.get(f"{R}/state/counts/x").status_code == 404  # and nothing was ingested


def test_steps_listing(serve):
    client = serve()
    listing = ok_json(client.get(f"{R}/steps"))
    assert listing["next_cursor"] is None
    steps = {s["name"]: s for s in listing["items"]}
    assert set(steps) == {"Echo", "Record", "Review", "Typed", "Boom", "Fix", "Flaky", "Board"}
    assert (steps["Echo"]["type"], steps["Echo"]["method"]) == ("api", "POST")
    assert steps["Echo"]["path"] == "/echo/:kind/:id" and steps["Echo"]["flows"] == ["demo"]
    assert steps["Echo"]["emits"] == [
        {"topic": "echo.seen", "label": "when asked", "conditional": True}
    ]
    assert steps["Flaky"]["queue"]["maxRetries"] == 0 and steps["Flaky"]["subscribes"] == ["job"]
    assert steps["Typed"]["body_schema"]["required"] == ["name", "qty"]
    assert steps["Record"]["file"].endswith("record_step.py")


def test_traces_paginate_and_show_executions(serve):
    client = serve()
    traces = [echo(client, f"t{i}")["trace_id"] for i in range(3)]
    first = ok_json(client.get(f"{R}/traces", params={"limit": 2}))
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = ok_json(client.get(f"{R}/traces", params={"limit": 2, "cursor": first["next_cursor"]}))
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    listed = [t["trace_id"] for t in first["items"] + rest["items"]]
    assert listed == traces[::-1]  # newest first
    assert first["items"][0]["root"] == "Echo" and first["items"][0]["kind"] == "api"

    def both_ran():
        trace = ok_json(client.get(f"{R}/traces/{traces[0]}"))
        return trace if len(trace["executions"]) == 2 else None

    trace = wait_for(both_ran)
    assert trace["trace_id"] == traces[0] and trace["root"] == "Echo"
    runs = {e["step"]: e for e in trace["executions"]}
    assert set(runs) == {"Echo", "Record"}
    for run in runs.values():
        assert (run["status"], run["attempt"], run["error"]) == ("ok", 1, None)
        assert run["started_at"] <= run["ended_at"] and run["latency_ms"] >= 0
        assert run["trace_id"] == traces[0]
    assert runs["Record"]["topic"] == "echo.seen"
    error_of(client.get(f"{R}/traces/{'0' * 32}"), 404, "not_found")
    error_of(client.get(f"{R}/traces", params={"cursor": "garbage"}), 400, "bad_request")


def test_failed_execution_shows_its_error_in_the_trace(serve):
    client = serve()
    accepted = post_event(client, "job", {"id": "j9"})

    def failed():
        runs = ok_json(client.get(f"{R}/traces/{accepted['trace_id']}"))["executions"]
        return runs if runs else None

    (run,) = wait_for(failed)
    assert (run["step"], run["status"], run["attempt"]) == ("Flaky", "error", 1)
    assert run["error"] == "RuntimeError: downstream is down for j9"


def test_logs_filter_by_trace_step_and_level(serve):
    client = serve()
    trace = echo(client, "l1")["trace_id"]
    echo(client, "l2")
    lines = ok_json(client.get(f"{R}/logs", params={"trace_id": trace}))["items"]
    assert {(line["step"], line["msg"]) for line in lines} >= {
        ("Echo", "echoing"),
        ("Record", "recorded"),
    }
    assert all(line["trace_id"] == trace for line in lines)
    only = ok_json(
        client.get(f"{R}/logs", params={"trace_id": trace, "step": "Record", "level": "warn"})
    )
    assert [(line["msg"], line["item"]) for line in only["items"]] == [("recorded", "l1")]
    echoing = ok_json(client.get(f"{R}/logs", params={"step": "Echo", "level": "info"}))["items"]
    assert [line["kind"] for line in echoing] == ["thing", "thing"]
    page = ok_json(client.get(f"{R}/logs", params={"step": "Echo", "limit": 1}))
    assert len(page["items"]) == 1 and page["next_cursor"]
    following = client.get(f"{R}/logs", params={"step": "Echo", "cursor": page["next_cursor"]})
    assert len(ok_json(following)["items"]) == 1
    error_of(client.get(f"{R}/logs", params={"level": "loud"}), 400, "bad_request")


def test_state_groups_items_and_missing(serve):
    client = serve()
    echo(client, "s1")
    echo(client, "s2")
    groups = ok_json(client.get(f"{R}/state"))
    assert {g["group"] for g in groups["items"]} == {"counts", "seen"}
    counts = ok_json(client.get(f"{R}/state/counts"))
    assert counts == {
        "items": [{"key": "s1", "value": 1}, {"key": "s2", "value": 1}],
        "next_cursor": None,
    }
    seen = ok_json(client.get(f"{R}/state/seen/s2"))
    assert seen["group"] == "seen" and seen["key"] == "s2"
    assert seen["value"]["input"] == {"id": "s2"}
    error_of(client.get(f"{R}/state/seen/nope"), 404, "not_found")
    assert ok_json(client.get(f"{R}/state/empty")) == {"items": [], "next_cursor": None}


def test_stream_group_and_item(serve):
    client = serve()
    post_event(client, "board.op", {"op": "set", "group": "g1", "id": "i1", "value": {"text": "a"}})
    post_event(client, "board.op", {"op": "set", "group": "g1", "id": "i2", "value": {"text": "b"}})

    def both():
        items = ok_json(client.get(f"{R}/streams/board/g1"))["items"]
        return items if len(items) == 2 else None

    assert sorted(wait_for(both), key=lambda i: i["id"]) == [
        {"text": "a", "id": "i1"},
        {"text": "b", "id": "i2"},
    ]
    assert ok_json(client.get(f"{R}/streams/board/g1/i2")) == {"text": "b", "id": "i2"}
    error_of(client.get(f"{R}/streams/board/g1/nope"), 404, "not_found")
    error = error_of(client.get(f"{R}/streams/nope/g1"), 404, "not_found")
    assert error["details"] == {"streams": ["board", "vault"]}


def test_dead_letter_list_get_and_replay_one(serve):
    client = serve()
    post_event(client, "job", {"id": "d1"})
    (letter,) = wait_for(lambda: ok_json(client.get(f"{R}/dead-letters"))["items"])
    assert (letter["step"], letter["topic"], letter["input"]) == ("Flaky", "job", {"id": "d1"})
    assert letter["attempts"] == 1 and "downstream is down" in letter["error"]
    assert ok_json(client.get(f"{R}/dead-letters/{letter['id']}")) == letter
    filtered = ok_json(client.get(f"{R}/dead-letters", params={"step": "Record"}))
    assert filtered == {"items": [], "next_cursor": None}
    error_of(client.get(f"{R}/dead-letters/999"), 404, "not_found")
    error_of(client.get(f"{R}/dead-letters/abc"), 404, "not_found")
    error_of(client.post(f"{R}/dead-letters/999/replay"), 404, "not_found")

    assert client.post("/fix").status_code == 204
    replayed = client.post(f"{R}/dead-letters/{letter['id']}/replay")
    assert ok_json(replayed, 202) == {"replayed": 1}
    wait_for(lambda: client.get(f"{R}/state/jobs/d1").status_code == 200)
    assert ok_json(client.get(f"{R}/state/jobs/d1"))["value"] == {"id": "d1"}
    assert ok_json(client.get(f"{R}/dead-letters"))["items"] == []


def test_dead_letters_bulk_replay_by_step(serve):
    client = serve()
    for i in range(3):
        post_event(client, "job", {"id": f"b{i}"})
    wait_for(lambda: len(ok_json(client.get(f"{R}/dead-letters"))["items"]) == 3)
    page = ok_json(client.get(f"{R}/dead-letters", params={"limit": 2}))
    assert len(page["items"]) == 2 and page["next_cursor"]
    client.post("/fix")
    other = client.post(f"{R}/dead-letters/replay", json={"step": "Record"})
    assert ok_json(other, 202) == {"replayed": 0}
    error_of(client.post(f"{R}/dead-letters/replay", json={"steps": "x"}), 422, "validation_failed")
    bulk = client.post(f"{R}/dead-letters/replay", json={"step": "Flaky"})
    assert ok_json(bulk, 202) == {"replayed": 3}
    for i in range(3):
        wait_for(lambda i=i: client.get(f"{R}/state/jobs/b{i}").status_code == 200)
    assert ok_json(client.get(f"{R}/dead-letters"))["items"] == []


def test_post_event_accepted_and_processed_once_per_id(serve):
    client = serve()
    first = post_event(client, "note", {"id": "n1"}, id="evt-1")
    assert first["event_id"] == "evt-1" and len(first["trace_id"]) == 32
    again = post_event(client, "note", {"id": "n1"}, id="evt-1")
    assert again == first  # a retry is answered with the trace the event already has
    wait_for(lambda: client.get(f"{R}/state/counts/n1").status_code == 200)
    post_event(client, "note", {"id": "after"})
    wait_for(lambda: client.get(f"{R}/state/counts/after").status_code == 200)
    assert ok_json(client.get(f"{R}/state/counts/n1"))["value"] == 1
    runs = ok_json(client.get(f"{R}/traces/{first['trace_id']}"))["executions"]
    assert [(r["step"], r["event_id"]) for r in runs] == [("Record", "evt-1")]
    generated = post_event(client, "note", {"id": "n2"})
    assert generated["event_id"] and generated["event_id"] != "evt-1"


def test_post_event_body_errors(serve):
    client = serve()
    bad = error_of(client.post(f"{R}/events", json={"topic": ""}), 422, "validation_failed")
    assert [d["pointer"] for d in bad["details"]] == ["/topic"]
    extra = client.post(f"{R}/events", json={"topic": "note", "bogus": 1})
    assert [d["pointer"] for d in error_of(extra, 422, "validation_failed")["details"]] == [
        "/bogus"
    ]
    malformed = client.post(
        f"{R}/events", content=b"{not json", headers={"content-type": "application/json"}
    )
    error_of(malformed, 400, "bad_request")
    error_of(client.post(f"{R}/events", json={"topic": "__cron__.Tick"}), 400, "bad_request")


def test_validation_mode_switch_at_run_time(serve):
    client = serve()
    assert ok_json(client.get(f"{R}/settings")) == {"validation_mode": "permissive"}
    bad_body = {"name": "x", "qty": "many"}
    assert client.post("/typed", json=bad_body).status_code == 201  # permissive: logged only
    switched = client.put(f"{R}/settings", json={"validation_mode": "strict"})
    assert ok_json(switched) == {"validation_mode": "strict"}
    assert ok_json(client.get(f"{R}/settings")) == {"validation_mode": "strict"}
    refused = error_of(client.post("/typed", json=bad_body), 422, "validation_failed")
    assert "/qty" in [d["pointer"] for d in refused["details"]]
    assert ok_json(client.post("/typed", json={"name": "x", "qty": 2}), 201)["got"]["qty"] == 2
    unknown = client.put(f"{R}/settings", json={"validation_mode": "lenient"})
    assert error_of(unknown, 400, "bad_request")["details"] == {"field": "validation_mode"}
    misspelt = error_of(
        client.put(f"{R}/settings", json={"mode": "strict"}), 422, "validation_failed"
    )
    assert {d["pointer"] for d in misspelt["details"]} == {"/validation_mode", "/mode"}
    assert ok_json(client.get(f"{R}/settings")) == {"validation_mode": "strict"}


@pytest.mark.parametrize(
    "path",
    [
        "/traces",
        "/logs",
        "/state",
        "/state/counts",
        "/dead-letters",
        "/streams/board/g1",
    ],
)
def test_list_shape_and_bad_limits(serve, path):
    client = serve()
    body = ok_json(client.get(f"{R}{path}", params={"limit": 5}))
    assert set(body) == {"items", "next_cursor"} and isinstance(body["items"], list)
    for limit in ("0", "abc", "501", "-1"):
        error = error_of(client.get(f"{R}{path}", params={"limit": limit}), 400, "bad_request")
        assert error["details"] == {"parameter": "limit"}


def test_the_project_streams_are_listed_with_their_schema(serve):
    client = serve()
    streams = ok_json(client.get(f"{R}/streams"))["items"]
    assert [s["name"] for s in streams] == ["board", "vault"]
    assert streams[0]["guarded"] is True and streams[0]["schema"]["type"] == "object"
