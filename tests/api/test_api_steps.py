"""A project's api steps over HTTP: request shape, ids on every response and on the events they
emit, body limits and the error envelope."""

from __future__ import annotations

import json
import re

import pytest
from cfp.domain.tracing import parse_traceparent

from tests.api.conftest import PROJECT, R, error_of, ok_json, wait_for

pytestmark = pytest.mark.api

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def test_api_step_gets_params_query_headers_and_raw_body(serve):
    client = serve()
    sent = {"hello": "world", "n": [1, 2]}
    response = client.post(
        "/echo/wid%20get/42?tag=a&tag=b&one=1",
        content=json.dumps(sent).encode(),
        headers={"Content-Type": "application/json", "X-Custom-Header": "Yes"},
    )
    body = ok_json(response)
    req = body["req"]
    assert req["pathParams"] == {"kind": "wid get", "id": "42"}
    assert req["queryParams"] == {"tag": ["a", "b"], "one": "1"}
    assert req["headers"]["x-custom-header"] == "Yes"
    assert all(key == key.lower() for key in req["headers"])
    assert req["body"] == sent and req["rawBody"] == json.dumps(sent)
    assert response.headers["x-echo"] == "yes"
    assert response.headers["x-trace-id"] == body["trace_id"]


def test_non_json_body_arrives_as_text(serve):
    client = serve()
    response = client.post(
        "/echo/t/1", content=b"plain words", headers={"content-type": "text/plain"}
    )
    req = ok_json(response)["req"]
    assert req["body"] == "plain words" == req["rawBody"]


def test_api_step_errors_use_the_envelope(serve):
    client = serve()
    malformed = client.post(
        "/echo/t/1", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert "not valid JSON" in error_of(malformed, 400, "bad_request")["message"]
    failed = error_of(client.get("/boom"), 500, "step_failed")
    assert "kaboom" in failed["message"]
    error_of(client.get("/nowhere"), 404, "not_found")
    error_of(client.get("/echo/t/1"), 405, "method_not_allowed")


def test_unexpected_error_is_a_500_envelope_with_the_request_ids(serve):
    files = {
        **PROJECT,
        "steps/when_step.py": """
            from datetime import datetime

            config = {"type": "api", "name": "When", "path": "/when", "method": "GET",
                      "flows": ["ops"]}

            async def handler(req, context):
                return {"status": 200, "body": {"at": datetime(2020, 1, 1)}}  # not JSON
        """,
    }
    client = serve(files, raise_server_exceptions=False)
    response = client.get(
        "/when", headers={"x-correlation-id": "c-500", "traceparent": TRACEPARENT}
    )
    error = error_of(response, 500, "internal")
    assert error["correlation_id"] == "c-500" and "TypeError" in error["message"]
    assert response.headers["traceparent"] == TRACEPARENT


def test_no_content_response_has_no_body(serve):
    client = serve()
    response = client.post("/fix")
    assert response.status_code == 204 and response.content == b""
    assert "content-type" not in response.headers


def test_ids_are_generated_when_absent(serve):
    client = serve()
    response = client.post("/echo/t/1", json={})
    body = ok_json(response)
    correlation = response.headers["x-correlation-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", correlation)
    parsed = parse_traceparent(response.headers["traceparent"])
    assert parsed is not None
    assert body["trace_id"] == parsed[0] and body["correlation_id"] == correlation
    other = client.post("/echo/t/2", json={})
    assert other.headers["x-correlation-id"] != correlation
    assert other.headers["traceparent"] != response.headers["traceparent"]


def test_ids_are_kept_when_sent_and_carried_by_emitted_events(serve):
    client = serve()
    sent = {"x-correlation-id": "order-123", "traceparent": TRACEPARENT}
    response = client.post("/echo/t/c1", json={}, headers=sent)
    body = ok_json(response)
    assert response.headers["x-correlation-id"] == "order-123"
    assert response.headers["traceparent"] == TRACEPARENT
    assert body["trace_id"] == TRACE and body["correlation_id"] == "order-123"

    def both_ran():
        runs = ok_json(client.get(f"{R}/traces/{TRACE}"))["executions"]
        return runs if len(runs) == 2 else None

    runs = wait_for(both_ran)
    assert {r["step"] for r in runs} == {"Echo", "Record"}
    assert {(r["trace_id"], r["correlation_id"]) for r in runs} == {(TRACE, "order-123")}
    seen = ok_json(client.get(f"{R}/state/seen/c1"))["value"]
    assert (seen["trace_id"], seen["correlation_id"]) == (TRACE, "order-123")


def test_posted_events_carry_the_request_ids(serve):
    client = serve()
    sent = {"x-correlation-id": "batch-7", "traceparent": TRACEPARENT}
    accepted = client.post(
        f"{R}/events", json={"topic": "note", "data": {"id": "e1"}}, headers=sent
    )
    assert ok_json(accepted, 202)["trace_id"] == TRACE
    seen = wait_for(lambda: client.get(f"{R}/state/seen/e1").json().get("value"))
    assert (seen["trace_id"], seen["correlation_id"]) == (TRACE, "batch-7")


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE[:-1]}-00f067aa0ba902b7-01",
    ],
)
def test_invalid_traceparent_is_replaced(serve, bad):
    client = serve()
    response = client.get("/health", headers={"traceparent": bad})
    assert response.headers["traceparent"] != bad
    assert parse_traceparent(response.headers["traceparent"]) is not None


def test_ids_are_echoed_on_errors_and_platform_routes(serve):
    client = serve()
    sent = {"x-correlation-id": "err-1", "traceparent": TRACEPARENT}
    for response in (
        client.get("/nowhere", headers=sent),
        client.get(f"{R}/flows/nope", headers=sent),
        client.get("/boom", headers=sent),
    ):
        assert response.headers["x-correlation-id"] == "err-1"
        assert response.headers["traceparent"] == TRACEPARENT
        assert response.json()["error"]["correlation_id"] == "err-1"
    for response in (client.get("/health", headers=sent), client.get("/metrics", headers=sent)):
        assert response.headers["x-correlation-id"] == "err-1"


def test_body_over_the_limit_is_413_by_length_and_while_streaming(serve):
    client = serve(max_body_bytes=64)
    small = client.post("/echo/t/small", content=b'{"a": 1}')
    assert ok_json(small)["req"]["body"] == {"a": 1}
    big = b'{"a": "' + b"x" * 100 + b'"}'
    by_length = client.post("/echo/t/big", content=big, headers={"x-correlation-id": "big-1"})
    error = error_of(by_length, 413, "payload_too_large")
    assert error["details"] == {"limit": 64} and error["correlation_id"] == "big-1"

    def chunks():
        yield b'{"a": "'
        for _ in range(10):
            yield b"x" * 20
        yield b'"}'

    streamed = client.post("/echo/t/chunked", content=chunks())
    assert "content-length" not in streamed.request.headers
    assert streamed.request.headers["transfer-encoding"] == "chunked"
    error_of(streamed, 413, "payload_too_large")
    error_of(client.post(f"{R}/events", content=big), 413, "payload_too_large")
    chunked_event = client.post(f"{R}/events", content=chunks())
    error_of(chunked_event, 413, "payload_too_large")
    # refused bodies never reached a handler
    assert client.get(f"{R}/state/counts/big").status_code == 404
    assert client.get(f"{R}/state/counts/chunked").status_code == 404
