"""HTTP endpoints for a project's api steps, built from their declared paths."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cfp.api.errors import envelope
from cfp.api.runtime_routes import authorize_project
from cfp.domain.requests import motia_request
from cfp.errors import NotFound
from cfp.services.loader import StepDef
from cfp.services.runtime import Origin, StepFailed

Endpoint = Callable[[Request], Awaitable[Response]]
PREFIX_PARAMS = ("cfp_tenant", "cfp_project", "cfp_env")
PREFIX = "/p/{cfp_tenant}/{cfp_project}/{cfp_env}"


def step_endpoint(step: StepDef) -> Endpoint:
    """An endpoint that turns the request into Motia's `req` dict and runs the step. It serves
    the step's own path and `/p/{tenant}/{project}/{env}{path}`; no anonymous execution: the
    caller needs `step.invoke` in the project."""

    async def endpoint(request: Request) -> Response:
        platform = request.app.state.platform
        params = dict(request.path_params)
        prefixed = {k: params.pop(k) for k in PREFIX_PARAMS if k in params}
        scope = platform.scope
        if prefixed and prefixed != {
            "cfp_tenant": scope.tenant,
            "cfp_project": scope.project,
            "cfp_env": scope.env,
        }:
            raise NotFound(
                "no such api step here",
                details={"served": f"/p/{scope.tenant}/{scope.project}/{scope.env}"},
            )
        await authorize_project(request, platform, "step.invoke", tenant_in_path=True)
        raw = await request.body()
        req = motia_request(
            raw,
            content_type=request.headers.get("content-type"),
            headers=request.headers.items(),
            path_params=params,
            query=request.query_params.multi_items(),
        )
        state = request.scope["state"]
        origin = Origin(state["trace_id"], state["correlation_id"], state["traceparent"])
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
