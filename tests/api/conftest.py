"""The API tier: a real app on the embedded backend, driven over HTTP and websockets through
starlette's TestClient. The client runs the app (and its runtime) on a loop of its own in another
thread, so tests wait with `wait_for`, which sleeps, rather than with `eventually`."""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cfp.api.app import create_app
from cfp.app import build
from cfp.settings import Settings
from starlette.testclient import TestClient

from tests.conftest import write_project

R = "/v1/projects/proj/envs/dev"

# One small project that exercises every surface: an api step that echoes its request and emits,
# an event step that records, a step that dead-letters until fixed, two streams (one guarded by a
# sync canAccess, one by an async one) and a step that writes them.
PROJECT = {
    "steps/echo_step.py": """
        config = {"type": "api", "name": "Echo", "path": "/echo/:kind/:id", "method": "POST",
                  "emits": [{"topic": "echo.seen", "label": "when asked", "conditional": True}],
                  "flows": ["demo"]}

        async def handler(req, context):
            context.logger.info("echoing", {"kind": req["pathParams"]["kind"]})
            await context.emit({"topic": "echo.seen", "data": {"id": req["pathParams"]["id"]}})
            return {"status": 200, "headers": {"x-echo": "yes"},
                    "body": {"req": req, "trace_id": context.trace_id,
                             "correlation_id": context.correlation_id}}
    """,
    "steps/record_step.py": """
        config = {"type": "event", "name": "Record", "subscribes": ["echo.seen", "note"],
                  "flows": ["demo"]}

        async def handler(input, context):
            await context.state.increment("counts", input["id"])
            await context.state.set("seen", input["id"], {"input": input,
                                    "trace_id": context.trace_id,
                                    "correlation_id": context.correlation_id})
            context.logger.warn("recorded", {"item": input["id"]})
    """,
    "steps/review_step.py": """
        config = {"type": "noop", "name": "Review", "virtualSubscribes": ["echo.seen"],
                  "virtualEmits": [{"topic": "note", "label": "approved"}], "flows": ["demo"]}
    """,
    "steps/typed_step.py": """
        from pydantic import BaseModel

        class Body(BaseModel):
            name: str
            qty: int

        config = {"type": "api", "name": "Typed", "path": "/typed", "method": "POST",
                  "bodySchema": Body, "flows": ["ops"]}

        async def handler(req, context):
            return {"status": 201, "body": {"got": req["body"]}}
    """,
    "steps/boom_step.py": """
        config = {"type": "api", "name": "Boom", "path": "/boom", "method": "GET",
                  "flows": ["ops"]}

        async def handler(req, context):
            raise RuntimeError("kaboom")
    """,
    "steps/fix_step.py": """
        config = {"type": "api", "name": "Fix", "path": "/fix", "method": "POST",
                  "flows": ["ops"]}

        async def handler(req, context):
            await context.state.set("switch", "fixed", True)
            return {"status": 204, "body": None}
    """,
    "steps/flaky_step.py": """
        config = {"type": "event", "name": "Flaky", "subscribes": ["job"], "flows": ["ops"],
                  "infrastructure": {"queue": {"maxRetries": 0}}}

        async def handler(input, context):
            if not await context.state.get("switch", "fixed"):
                raise RuntimeError(f"downstream is down for {input['id']}")
            await context.state.set("jobs", input["id"], input)
    """,
    "steps/board_stream.py": """
        def can_access(subscription, auth_context):
            return subscription["groupId"] != "private"

        config = {"name": "board", "baseConfig": {"storageType": "default"},
                  "schema": {"type": "object", "properties": {"text": {"type": "string"}}},
                  "canAccess": can_access}
    """,
    "steps/vault_stream.py": """
        async def can_access(subscription, auth_context):
            if auth_context["query"].get("token") == "explode":
                raise RuntimeError("token service unavailable")
            return auth_context["query"].get("token") == "letmein"

        config = {"name": "vault", "baseConfig": {"storageType": "default"},
                  "schema": {"type": "object"}, "canAccess": can_access}
    """,
    "steps/board_step.py": """
        config = {"type": "event", "name": "Board", "subscribes": ["board.op"], "flows": ["ops"]}

        async def handler(input, context):
            stream = context.streams[input.get("stream", "board")]
            group, item = input["group"], input.get("id")
            if input["op"] == "set":
                await stream.set(group, item, input["value"])
            elif input["op"] == "delete":
                await stream.delete(group, item)
            else:
                channel = {"groupId": group, **({"id": item} if item else {})}
                await stream.send(channel, {"type": input["type"], "data": input.get("value")})
            context.logger.info("board op", {"op": input["op"]})
    """,
}

Serve = Callable[..., TestClient]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """`serve(files=PROJECT, **settings)`: a started app on a fresh data dir; stopped at the end.
    `raise_server_exceptions=False` answers unexpected errors as a server would, with a 500."""
    with contextlib.ExitStack() as stack:
        count = 0

        def start(
            files: dict[str, str] | None = None,
            *,
            project_dir: Path | None = None,
            raise_server_exceptions: bool = True,
            **overrides: Any,
        ) -> TestClient:
            nonlocal count
            count += 1
            root = project_dir or write_project(tmp_path / f"proj{count}", files or PROJECT)
            values: dict[str, Any] = dict(
                project_dir=root,
                data_dir=tmp_path / f"data{count}",
                retry_base_seconds=0.01,
                poll_seconds=0.02,
                project_name="proj",
                password_profile="test",
            )
            values.update(overrides)
            platform = build(Settings(**values), log_stream=io.StringIO())
            client = TestClient(
                create_app(platform), raise_server_exceptions=raise_server_exceptions
            )
            stack.enter_context(client)
            if platform.credentials_path.exists():  # as `cfp dev` users do: the dev API key
                creds = json.loads(platform.credentials_path.read_text())
                client.headers["authorization"] = f"Bearer {creds['api_key']}"
                client.headers["x-tenant-id"] = creds["tenant"]
            return client

        yield start


def wait_for(check: Callable[[], Any], within: float = 10.0) -> Any:
    """Poll `check` until it returns a truthy value; fail with its last value on timeout."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {within}s; last value: {last!r}")


def ok_json(response: Any, status: int = 200) -> Any:
    """The JSON body of a response that must have `status`."""
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    """The `error` of an envelope response, checking its status, shape and correlation id."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details", "correlation_id"}
    assert error["code"] == code and error["message"]
    assert error["correlation_id"] == response.headers["x-correlation-id"]
    return error
