"""HTTP endpoints for a project's api steps, built from their declared paths."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cfp.api.errors import envelope
from cfp.errors import BadRequest
from cfp.services.loader import StepDef
from cfp.services.runtime import Origin, StepFailed

Endpoint = Callable[[Request], Awaitable[Response]]


def _query(request: Request) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        out[key] = values[0] if len(values) == 1 else values
    return out


def step_endpoint(step: StepDef) -> Endpoint:
    """An endpoint that turns the request into Motia's `req` dict and runs the step."""

    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        body: Any = None
        if raw:
            if "json" in request.headers.get("content-type", "application/json"):
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise BadRequest(f"request body is not valid JSON: {exc}") from None
            else:
                body = raw.decode("utf-8", errors="replace")
        req = {
            "body": body,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "pathParams": dict(request.path_params),
            "queryParams": _query(request),
            "rawBody": raw.decode("utf-8", errors="replace"),
        }
        state = request.scope["state"]
        origin = Origin(state["trace_id"], state["correlation_id"], state["traceparent"])
        platform = request.app.state.platform
        try:
            result = await platform.runtime.handle_api(step, req, origin)
        except StepFailed as exc:
            return envelope(500, "step_failed", f"step {step.name} failed: {exc.error}")
        headers = {"x-trace-id": origin.trace_id, **result.headers}
        if result.status < 200 or result.status in (204, 304):
            # these statuses have no body on the wire: a JSON `null` would break HTTP framing
            return Response(status_code=result.status, headers=headers)
        if isinstance(result.body, bytes | str) and "content-type" in {
            k.lower() for k in result.headers
        }:
            return Response(result.body, status_code=result.status, headers=headers)
        return JSONResponse(result.body, status_code=result.status, headers=headers)

    endpoint.__name__ = f"step_{step.name}"
    return endpoint
