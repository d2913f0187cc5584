"""functions/main.py under functions-framework's own test client: real CloudEvent envelopes
(binary and structured mode), real HTTP requests, the embedded backend underneath."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from cfp.adapters.local.documents import SqliteDocumentStore
from cfp.adapters.local.sqlite import Database
from cfp.domain.documents import SetDoc
from cfp.domain.paths import Scope
from cfp.domain.tracing import parse_traceparent
from cfp.ports import Schedule
from cfp.services.loader import load_project
from cfp.services.manifest import manifest
from cfp.services.scaffold import scaffold
from functions_framework import create_app

from tests.conftest import write_project

REPO = Path(__file__).resolve().parents[2]
SOURCE = str(REPO / "functions" / "main.py")
PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"

PROJECT = {
    "steps/add_item_step.py": """
        config = {"type": "api", "name": "AddItem", "path": "/items/:id", "method": "POST",
                  "emits": ["item.added"], "flows": ["items"],
                  "bodySchema": {"type": "object", "required": ["qty"],
                                 "properties": {"qty": {"type": "integer"}}}}

        async def handler(req, context):
            if req["body"].get("explode"):
                raise RuntimeError("kaboom")
            item = {"id": req["pathParams"]["id"], "qty": req["body"]["qty"]}
            await context.state.set("items", item["id"], item)
            await context.emit({"topic": "item.added", "data": item})
            return {"status": 201, "headers": {"x-step": "AddItem"},
                    "body": {"item": item, "query": req["queryParams"],
                             "correlation": context.correlation_id}}
    """,
    "steps/count_item_step.py": """
        from cfp.errors import BadRequest

        config = {"type": "event", "name": "CountItem", "subscribes": ["item.added"],
                  "flows": ["items"], "infrastructure": {"queue": {"maxRetries": 2}}}

        async def handler(input, context):
            if input.get("fail") == "retryable":
                raise RuntimeError("flaky downstream")
            if input.get("fail") == "fatal":
                raise BadRequest("this item can never be counted")
            counter = await context.state.get("counts", input["id"]) or {"n": 0}
            await context.state.set("counts", input["id"], {"n": counter["n"] + 1,
                                                            "trace_id": context.trace_id,
                                                            "correlation_id":
                                                                context.correlation_id})
    """,
    "steps/tick_step.py": """
        config = {"type": "cron", "name": "Tick", "cron": "*/5 * * * *", "flows": ["items"]}

        async def handler(context):
            if (await context.state.get("ticks", "switch") or {}).get("fail"):
                raise RuntimeError("tick failed")
            ticks = await context.state.get("ticks", "count") or {"n": 0}
            await context.state.set("ticks", "count", {"n": ticks["n"] + 1})
    """,
}


@pytest.fixture
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project and its `cfp build` manifest, with the function's environment pointing at them."""
    root = write_project(tmp_path / "shop", PROJECT)
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    (build_dir / "manifest.json").write_text(json.dumps(manifest(load_project(root))))
    for var in ("CFP_PROJECT", "CFP_NAME", "CFP_VALIDATION_MODE", "FUNCTION_SIGNATURE_TYPE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CFP_BUILD_DIR", str(build_dir))
    monkeypatch.setenv("CFP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CFP_LOG_LEVEL", "error")
    # Loading a project and a function source changes these; give them back after the test.
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    return root


class Function:
    """One target loaded by functions-framework, with its module to inspect the platform."""

    def __init__(self, target: str, signature_type: str) -> None:
        app = create_app(target=target, source=SOURCE, signature_type=signature_type)
        self.client = app.test_client()
        self.module: ModuleType = sys.modules["main"]

    def run(self, coro: Any) -> Any:
        return self.module._run(coro)

    @property
    def platform(self) -> Any:
        assert self.module._platform is not None, "the platform is built on the first call"
        return self.module._platform

    def state(self, group: str, key: str) -> Any:
        doc = self.run(self.platform.documents.get(self.platform.scope.state_item(group, key)))
        return None if doc is None else doc["value"]

    def dead_letters(self, step: str) -> list[dict[str, Any]]:
        return self.run(self.platform.queue.list_dead_letters(step=step)).items


@pytest.fixture
def function(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Function]]:
    loaded: list[Function] = []

    def load(step: str, target: str, signature_type: str = "http") -> Function:
        monkeypatch.setenv("CFP_STEP", step)
        fn = Function(target, signature_type)
        loaded.append(fn)
        if target == "step_api":  # no anonymous execution: call as the dev service account
            with contextlib.suppress(Exception):  # a misconfigured function fails on its call
                fn.module._platform_for("api")
            if fn.module._platform is not None:
                fn.run(fn.platform.local_setup())  # what `cfp dev` would have made
                creds = json.loads(fn.platform.credentials_path.read_text())
                fn.client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {creds['api_key']}"
        return fn

    yield load
    for fn in loaded:
        fn.module.reset()


def pubsub_envelope(data: Any, *, attempt: int | None = None, **attributes: str) -> dict:
    message = {
        "data": base64.b64encode(json.dumps(data).encode()).decode(),
        "attributes": attributes,
        "messageId": "1234567890",
        "publishTime": "2026-01-02T03:04:05.678Z",
    }
    envelope: dict[str, Any] = {
        "message": message,
        "subscription": "projects/p/subscriptions/shop.CountItem.item.added",
    }
    if attempt is not None:
        envelope["deliveryAttempt"] = attempt
    return envelope


def post_binary(fn: Function, envelope: dict, ce_id: str = "ce-1") -> Any:
    headers = {
        "ce-id": ce_id,
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/shop.item.added",
        "ce-type": PUBSUB_TYPE,
        "ce-specversion": "1.0",
        "ce-time": "2026-01-02T03:04:05.678Z",
    }
    return fn.client.post("/", json=envelope, headers=headers)


def post_structured(fn: Function, envelope: dict, ce_id: str = "ce-2") -> Any:
    event = {
        "specversion": "1.0",
        "id": ce_id,
        "source": "//pubsub.googleapis.com/projects/p/topics/shop.item.added",
        "type": PUBSUB_TYPE,
        "datacontenttype": "application/json",
        "data": envelope,
    }
    return fn.client.post(
        "/", data=json.dumps(event), headers={"content-type": "application/cloudevents+json"}
    )


# -- step_event -----------------------------------------------------------------------------


def test_event_binary_mode_runs_the_step_once_per_event_id(function):
    fn = function("CountItem", "step_event", "cloudevent")
    envelope = pubsub_envelope(
        {"id": "apple", "qty": 2},
        attempt=1,
        topic="item.added",
        event_id="evt-1",
        trace_id=TRACE_ID,
        correlation_id="corr-1",
        traceparent=TRACEPARENT,
    )

    assert post_binary(fn, envelope).status_code == 200
    assert fn.state("counts", "apple") == {
        "n": 1,
        "trace_id": TRACE_ID,
        "correlation_id": "corr-1",
    }

    # Pub/Sub redelivers the same message (its ack was lost): the effect is not doubled.
    assert post_binary(fn, {**envelope, "deliveryAttempt": 2}, ce_id="ce-1b").status_code == 200
    assert fn.state("counts", "apple")["n"] == 1
    assert fn.dead_letters("CountItem") == []


def test_event_structured_mode(function):
    fn = function("CountItem", "step_event", "cloudevent")
    first = pubsub_envelope({"id": "pear", "qty": 1}, topic="item.added", event_id="evt-a")
    second = pubsub_envelope({"id": "pear", "qty": 1}, topic="item.added", event_id="evt-b")

    assert post_structured(fn, first).status_code == 200
    assert post_structured(fn, second, ce_id="ce-3").status_code == 200
    assert post_structured(fn, first, ce_id="ce-4").status_code == 200

    assert fn.state("counts", "pear")["n"] == 2


def test_event_without_event_id_attribute_is_keyed_by_the_message_id(function):
    fn = function("CountItem", "step_event", "cloudevent")
    envelope = pubsub_envelope({"id": "fig"}, topic="item.added")

    assert post_binary(fn, envelope).status_code == 200
    assert post_binary(fn, envelope, ce_id="again").status_code == 200

    assert fn.state("counts", "fig")["n"] == 1


def test_retryable_failure_asks_for_redelivery_until_retries_run_out(function):
    fn = function("CountItem", "step_event", "cloudevent")  # maxRetries = 2
    data = {"id": "kiwi", "fail": "retryable"}

    for attempt in (1, 2):
        envelope = pubsub_envelope(data, attempt=attempt, topic="item.added", event_id="evt-k")
        assert post_binary(fn, envelope).status_code == 500
        assert fn.dead_letters("CountItem") == []

    envelope = pubsub_envelope(data, attempt=3, topic="item.added", event_id="evt-k")
    assert post_binary(fn, envelope).status_code == 200  # acknowledged: no more redelivery

    [dead] = fn.dead_letters("CountItem")
    assert dead["event_id"] == "evt-k"
    assert dead["topic"] == "item.added"
    assert dead["input"] == data
    assert dead["attempts"] == 3
    assert "flaky downstream" in dead["error"]
    assert "RuntimeError" in dead["traceback"]
    assert fn.state("counts", "kiwi") is None


def test_non_retryable_failure_is_dead_lettered_at_once(function):
    fn = function("CountItem", "step_event", "cloudevent")
    envelope = pubsub_envelope(
        {"id": "lime", "fail": "fatal"}, attempt=1, topic="item.added", event_id="evt-l"
    )

    assert post_binary(fn, envelope).status_code == 200
    # A redelivery of the same message fails again and updates the same dead letter.
    assert post_binary(fn, {**envelope, "deliveryAttempt": 2}).status_code == 200

    [dead] = fn.dead_letters("CountItem")
    assert dead["event_id"] == "evt-l"
    assert dead["attempts"] == 2
    assert "can never be counted" in dead["error"]


def test_dead_letter_is_cleared_when_a_later_delivery_succeeds(function):
    fn = function("CountItem", "step_event", "cloudevent")
    failing = pubsub_envelope({"id": "plum", "fail": "fatal"}, topic="item.added", event_id="evt-p")
    assert post_binary(fn, failing).status_code == 200
    assert len(fn.dead_letters("CountItem")) == 1

    fixed = pubsub_envelope({"id": "plum"}, topic="item.added", event_id="evt-p")
    assert post_binary(fn, fixed).status_code == 200

    assert fn.state("counts", "plum")["n"] == 1
    assert fn.dead_letters("CountItem") == []


def test_message_that_is_no_cfp_event_is_dead_lettered(function):
    fn = function("CountItem", "step_event", "cloudevent")
    envelope = pubsub_envelope({"id": "x"}, topic="item.added")
    envelope["message"]["data"] = base64.b64encode(b"not json").decode()

    assert post_binary(fn, envelope).status_code == 200

    [dead] = fn.dead_letters("CountItem")
    assert "not base64 JSON" in dead["error"]
    assert dead["event_id"] == "pubsub:1234567890"


def test_event_on_a_topic_the_step_does_not_subscribe_is_dead_lettered(function):
    fn = function("CountItem", "step_event", "cloudevent")
    envelope = pubsub_envelope({"id": "x"}, topic="item.removed", event_id="evt-r")

    assert post_binary(fn, envelope).status_code == 200

    [dead] = fn.dead_letters("CountItem")
    assert "does not subscribe to topic 'item.removed'" in dead["error"]


def test_event_target_refuses_a_step_of_another_type(function):
    fn = function("AddItem", "step_event", "cloudevent")
    envelope = pubsub_envelope({"id": "x"}, topic="item.added", event_id="evt-w")

    # A misconfigured function must not acknowledge (and so lose) the message.
    assert post_binary(fn, envelope).status_code == 500


# -- step_api -------------------------------------------------------------------------------


def test_api_runs_the_step_and_keeps_the_callers_ids(function):
    fn = function("AddItem", "step_api")

    resp = fn.client.post(
        "/items/apple?color=red&tag=a&tag=b",
        json={"qty": 3},
        headers={"x-correlation-id": "corr-42", "traceparent": TRACEPARENT},
    )

    assert resp.status_code == 201
    assert resp.json == {
        "item": {"id": "apple", "qty": 3},
        "query": {"color": "red", "tag": ["a", "b"]},
        "correlation": "corr-42",
    }
    assert resp.headers["x-correlation-id"] == "corr-42"
    assert resp.headers["traceparent"] == TRACEPARENT
    assert resp.headers["x-trace-id"] == TRACE_ID
    assert resp.headers["x-step"] == "AddItem"
    assert fn.state("items", "apple") == {"id": "apple", "qty": 3}
    # The emit went to the queue for the subscriber's function.
    assert fn.run(fn.platform.queue.stats())["CountItem"]["pending"] == 1


def test_api_assigns_ids_when_the_caller_sends_none(function):
    fn = function("AddItem", "step_api")

    resp = fn.client.post("/items/pear", json={"qty": 1}, headers={"traceparent": "garbage"})

    assert resp.status_code == 201
    correlation = resp.headers["x-correlation-id"]
    assert correlation and resp.json["correlation"] == correlation
    parsed = parse_traceparent(resp.headers["traceparent"])
    assert parsed is not None and parsed[0] == resp.headers["x-trace-id"]


def assert_envelope(resp: Any, status: int, code: str, correlation: str | None = None) -> dict:
    assert resp.status_code == status, resp.data
    assert resp.mimetype == "application/json"
    error = resp.json["error"]
    assert set(error) == {"code", "message", "details", "correlation_id"}
    assert error["code"] == code
    assert error["correlation_id"] == resp.headers["x-correlation-id"]
    if correlation is not None:
        assert error["correlation_id"] == correlation
    return error


def test_api_errors_use_the_envelope(function, monkeypatch):
    monkeypatch.setenv("CFP_MAX_BODY_BYTES", "64")
    fn = function("AddItem", "step_api")
    ids = {"x-correlation-id": "corr-e"}

    assert_envelope(fn.client.post("/nope", json={}, headers=ids), 404, "not_found", "corr-e")
    resp = fn.client.get("/items/a", headers=ids)
    assert_envelope(resp, 405, "method_not_allowed", "corr-e")
    assert resp.headers["allow"] == "POST"
    bad_json = fn.client.post(
        "/items/a", data="{nope", headers={**ids, "content-type": "application/json"}
    )
    assert_envelope(bad_json, 400, "bad_request", "corr-e")
    big = fn.client.post("/items/a", json={"qty": 1, "pad": "x" * 100}, headers=ids)
    assert_envelope(big, 413, "payload_too_large", "corr-e")
    error = assert_envelope(
        fn.client.post("/items/a", json={"qty": 1, "explode": True}, headers=ids),
        500,
        "step_failed",
        "corr-e",
    )
    assert "kaboom" in error["message"]
    assert fn.state("items", "a") is None


def test_api_strict_mode_refuses_an_invalid_body_with_422(function, monkeypatch):
    monkeypatch.setenv("CFP_VALIDATION_MODE", "strict")
    fn = function("AddItem", "step_api")

    error = assert_envelope(
        fn.client.post("/items/a", json={"qty": "many"}), 422, "validation_failed"
    )

    assert error["details"][0]["pointer"] == "/qty"
    assert fn.state("items", "a") is None


def test_api_target_reports_a_misconfigured_function(function, monkeypatch):
    fn = function("NoSuchStep", "step_api")
    error = assert_envelope(fn.client.post("/items/a", json={"qty": 1}), 500, "settings_error")
    assert "NoSuchStep" in error["message"]

    monkeypatch.setenv("CFP_STEP", "CountItem")
    error = assert_envelope(fn.client.post("/items/a", json={"qty": 1}), 500, "settings_error")
    assert "--target step_event" in error["message"]


def test_api_without_a_manifest_names_the_setting(function, monkeypatch, tmp_path):
    monkeypatch.setenv("CFP_BUILD_DIR", str(tmp_path / "missing"))
    fn = function("AddItem", "step_api")

    error = assert_envelope(fn.client.post("/items/a", json={"qty": 1}), 500, "settings_error")
    assert "CFP_BUILD_DIR" in error["message"]


def test_cfp_project_overrides_the_manifest_root(function, monkeypatch, bundle, tmp_path):
    monkeypatch.setenv("CFP_BUILD_DIR", str(tmp_path / "missing"))
    monkeypatch.setenv("CFP_PROJECT", str(bundle))
    fn = function("AddItem", "step_api")

    assert fn.client.post("/items/a", json={"qty": 1}).status_code == 201
    assert fn.platform.project.slug == "shop"


# -- step_cron ------------------------------------------------------------------------------


def test_cron_runs_once_per_scheduled_time(function):
    fn = function("Tick", "step_cron")
    at = {"scheduled_at": "2026-03-01T10:05:00+00:00"}

    first = fn.client.post("/", json=at, headers={"x-correlation-id": "corr-c"})
    assert first.status_code == 200
    assert first.json == {
        "step": "Tick",
        "tick_id": f"cron:Tick:{int(datetime(2026, 3, 1, 10, 5, tzinfo=UTC).timestamp())}",
        "scheduled_at": "2026-03-01T10:05:00+00:00",
        "ran": True,
    }
    assert first.headers["x-correlation-id"] == "corr-c"
    assert fn.state("ticks", "count") == {"n": 1}

    # Cloud Scheduler retries the same tick: nothing runs twice.
    again = fn.client.post("/", json=at)
    assert again.status_code == 200 and again.json["ran"] is False
    assert fn.state("ticks", "count") == {"n": 1}

    later = fn.client.post("/", json={"scheduled_at": "2026-03-01T10:10:00Z"})
    assert later.json["ran"] is True
    assert fn.state("ticks", "count") == {"n": 2}


def test_cron_takes_cloud_schedulers_header_and_matches_the_local_tick(function):
    fn = function("Tick", "step_cron")
    # Octet-stream with no body is what a Cloud Scheduler job without a body sends.
    headers = {
        "x-cloudscheduler": "true",
        "x-cloudscheduler-scheduletime": "2026-03-01T11:00:00Z",
        "content-type": "application/octet-stream",
    }
    resp = fn.client.post("/", headers=headers)
    assert resp.status_code == 200 and resp.json["scheduled_at"] == "2026-03-01T11:00:00+00:00"
    assert fn.state("ticks", "count") == {"n": 1}

    # The embedded scheduler's tick for a time and this target's are one event: running the tick
    # here settles the delivery the local scheduler queued for it.
    when = datetime(2026, 3, 1, 11, 5, tzinfo=UTC).timestamp()
    fn.run(fn.platform.runtime.fire_cron(Schedule("Tick", "*/5 * * * *"), when))
    assert fn.run(fn.platform.queue.stats())["Tick"]["pending"] == 1
    resp = fn.client.post("/", json={"scheduled_at": "2026-03-01T11:05:00Z"})
    assert resp.json["tick_id"] == f"cron:Tick:{int(when)}"
    assert fn.run(fn.platform.queue.stats())["Tick"]["pending"] == 0
    assert fn.state("ticks", "count") == {"n": 2}


def test_cron_without_a_time_runs_now(function):
    fn = function("Tick", "step_cron")

    resp = fn.client.post("/")

    assert resp.status_code == 200 and resp.json["ran"] is True
    stamp = datetime.fromisoformat(resp.json["scheduled_at"])
    assert abs(stamp.timestamp() - datetime.now(UTC).timestamp()) < 60


def test_cron_errors(function):
    fn = function("Tick", "step_cron")

    assert_envelope(fn.client.post("/", json={"scheduled_at": "soon"}), 400, "bad_request")
    assert_envelope(fn.client.get("/"), 405, "method_not_allowed")


def test_failed_cron_tick_answers_500_and_leaves_a_dead_letter(function):
    fn = function("Tick", "step_cron")
    fn.client.post("/", json={"scheduled_at": "2026-03-01T09:00:00Z"})  # builds the platform
    switch = fn.platform.scope.state_item("ticks", "switch")
    fn.run(fn.platform.documents.apply([SetDoc(switch, {"value": {"fail": True}})]))

    resp = fn.client.post("/", json={"scheduled_at": "2026-03-01T09:05:00Z"})

    error = assert_envelope(resp, 500, "step_failed")
    assert "tick failed" in error["message"]
    [dead] = fn.dead_letters("Tick")
    when = datetime(2026, 3, 1, 9, 5, tzinfo=UTC).timestamp()
    assert dead["event_id"] == f"cron:Tick:{int(when)}"
    assert "tick failed" in dead["error"]
    assert fn.state("ticks", "count") == {"n": 1}


# -- the module itself ----------------------------------------------------------------------


def test_importing_the_module_loads_no_platform_code():
    code = (
        "import sys, functions.main\n"
        "heavy = {'cfp', 'flask', 'functions_framework', 'cloudevents', 'pydantic', 'starlette'}\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert result.stdout.strip() == "[]"


def test_targets_declare_their_signature_type_to_functions_framework(function):
    # No signature_type given: the decorators registered when the framework loaded the module.
    fn = function("CountItem", "step_event", None)
    envelope = pubsub_envelope({"id": "date"}, topic="item.added", event_id="evt-d")

    assert post_binary(fn, envelope).status_code == 200
    assert fn.state("counts", "date")["n"] == 1


@pytest.mark.process
def test_functions_framework_cli_serves_a_scaffolded_project(tmp_path):
    """`functions-framework --source functions/main.py --target step_event` from the repo root,
    without --signature-type: the target declares it is a CloudEvent function."""
    root = tmp_path / "hello"
    scaffold(root)
    build_dir, data_dir = tmp_path / "build", tmp_path / "data"
    build_dir.mkdir()
    (build_dir / "manifest.json").write_text(json.dumps(manifest(load_project(root))))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CFP_PROJECT", "FUNCTION_SIGNATURE_TYPE", "PYTHONPATH")
    }
    env.update(
        CFP_STEP="RememberHello",
        CFP_BUILD_DIR=str(build_dir),
        CFP_DATA_DIR=str(data_dir),
        CFP_LOG_LEVEL="error",
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path / "functions.log"
    cli = Path(sys.executable).parent / "functions-framework"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                str(cli),
                "--source",
                "functions/main.py",
                "--target",
                "step_event",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        envelope = pubsub_envelope(
            {"name": "Ada", "message": "Hello, Ada!"},
            attempt=1,
            topic="hello.said",
            event_id="evt-hello",
        )
        headers = {
            "ce-id": "1",
            "ce-source": "//pubsub.googleapis.com/projects/p/topics/hello.said",
            "ce-type": PUBSUB_TYPE,
            "ce-specversion": "1.0",
        }
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(200):
                if proc.poll() is not None:
                    raise AssertionError(f"functions-framework exited:\n{log.read_text()}")
                try:
                    first = client.post("/", json=envelope, headers=headers)
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            else:
                raise AssertionError(f"functions-framework did not start:\n{log.read_text()}")
            again = client.post("/", json=envelope, headers={**headers, "ce-id": "2"})
        assert (first.status_code, again.status_code) == (200, 200), log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    db = Database(data_dir / "cfp.db")
    try:
        store = SqliteDocumentStore(db)
        scope = Scope("local", "hello", "dev")
        doc = asyncio.run(store.get(scope.state_item("greetings", "Ada")))
        count = asyncio.run(store.get(scope.state_item("greeting_counts", "Ada")))
    finally:
        db.close()
    assert doc == {"value": {"message": "Hello, Ada!"}}
    assert count == {"value": 1}  # the same message twice counts once


# -- audit_checkpoints ----------------------------------------------------------------------


def test_audit_checkpoints_signs_and_anchors_every_chain_with_new_records(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cfp.domain.audit import Actor, AuditEntry, Target
    from cfp.services.audit import AuditLog

    anchors = tmp_path / "anchors"
    monkeypatch.setenv("CFP_AUDIT_ANCHOR_DIR", str(anchors))

    async def record(count: int) -> None:
        documents = SqliteDocumentStore(Database(tmp_path / "data" / "cfp.db"))
        log = AuditLog(documents)
        for index in range(count):
            entry = AuditEntry(
                actor=Actor(id="u_ada", kind="user"),
                action="team.create",
                target=Target(type="team", id=f"t{index}"),
                scope="system",
            )
            await log.append([entry])
        await documents.close()

    asyncio.run(record(3))
    fn = Function("audit_checkpoints", "http")
    try:
        first = fn.client.post("/")
        assert first.status_code == 200, first.get_data(as_text=True)
        [made] = first.get_json()["checkpoints"]
        assert made["chain"] == "system" and made["size"] == 3
        note = (anchors / "system" / f"{3:020d}.note").read_text()
        assert note.startswith("coditect.cfp/local/system\n3\n")
        again = fn.client.post("/")
        assert again.status_code == 200 and again.get_json() == {"checkpoints": []}
        asyncio.run(record(2))
        grown = fn.client.post("/").get_json()["checkpoints"]
        assert [(c["chain"], c["size"]) for c in grown] == [("system", 5)]
    finally:
        fn.module.reset()


def test_retention_purge_applies_each_tenants_periods_and_records_the_purge(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cfp.app import open_control
    from cfp.domain.callers import Caller
    from cfp.domain.reporting import RetentionIn
    from cfp.domain.tenancy import TenantIn
    from cfp.settings import Settings

    monkeypatch.setenv("CFP_AUDIT_ANCHOR_DIR", str(tmp_path / "anchors"))

    async def make_tenant() -> None:
        async with open_control(Settings.load()) as control:
            admin = Caller.system()
            body = TenantIn(id="acme", name="Acme", region="local")
            await control.tenancy.create_tenant(admin, body)
            periods = RetentionIn(executions_days=1, logs_days=1, session_logs_days=None)
            await control.retention.put(admin, "acme", periods, None)

    asyncio.run(make_tenant())
    fn = Function("retention_purge", "http")
    try:
        response = fn.client.post("/")
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        assert body["failed"] == {}
        assert [r["tenant"] for r in body["purged"]] == ["acme"]
        assert body["purged"][0]["held"] is False
    finally:
        fn.module.reset()

    async def purges() -> list[str]:
        async with open_control(Settings.load()) as control:
            page = await control.audit.list("tenant/acme", action="retention.purge")
            return [r["action"] for r in page.items]

    assert asyncio.run(purges()) == ["retention.purge"]
