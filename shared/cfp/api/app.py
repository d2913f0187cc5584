"""The HTTP application: every route listed here, top to bottom."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from cfp.api import control_routes as cp
from cfp.api import runtime_routes as rt
from cfp.api import subscription_routes as subs
from cfp.api.audit_routes import AUDIT_OPERATIONS
from cfp.api.auth_routes import AUTH_OPERATIONS
from cfp.api.errors import HANDLERS
from cfp.api.member_routes import MEMBER_OPERATIONS
from cfp.api.middleware import BodyLimit, RequestIds
from cfp.api.operations import idempotent
from cfp.api.report_routes import REPORT_OPERATIONS
from cfp.api.steps import PREFIX, step_endpoint
from cfp.api.ws import stream_socket
from cfp.app import Platform

R = "/v1/projects/{project}/envs/{env}"


# What the workbench's page may load: itself, its API and websocket ('self' covers the same
# origin's ws:// and wss://, CSP level 3); React Flow styles inline.
WORKBENCH_CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)


async def index(request: Request) -> Response:
    """A browser gets the workbench (when it is built); an API client the surfaces below."""
    p: Platform = request.app.state.platform
    page = p.settings.web_build / "index.html"
    if _wants_html(request) and page.is_file():
        return FileResponse(
            page,
            headers={
                "content-security-policy": WORKBENCH_CSP,
                "cache-control": "no-cache",
                "x-content-type-options": "nosniff",
                "referrer-policy": "no-referrer",
            },
        )
    return _surfaces(p)


def _wants_html(request: Request) -> bool:
    """A browser's navigation (HTML asked for before any JSON)."""
    accept = request.headers.get("accept", "")
    html, json = accept.find("text/html"), accept.find("application/json")
    return html >= 0 and (json < 0 or html < json)


def _surfaces(p: Platform) -> JSONResponse:
    base = f"/v1/projects/{p.project.slug}/envs/{p.scope.env}"
    return JSONResponse(
        {
            "name": "CFP — Coditect Flow Platform",
            "project": p.project.slug,
            "env": p.scope.env,
            "surfaces": {
                "health": "/health",
                "ready": "/ready",
                "metrics": "/metrics",
                "projects": "/v1/projects",
                "subscriptions": "/v1/subscriptions",
                "flows": f"{base}/flows",
                "steps": f"{base}/steps",
                "traces": f"{base}/traces",
                "logs": f"{base}/logs",
                "state": f"{base}/state",
                "dead_letters": f"{base}/dead-letters",
                "events": f"{base}/events",
                "settings": f"{base}/settings",
                "websocket": f"{base}/ws",
            },
            "api_steps": [
                {"step": s.name, "method": s.route.method, "path": s.route.path}
                for s in p.project.api_steps
                if s.route
            ],
        }
    )


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> JSONResponse:
    p: Platform = request.app.state.platform
    if not p.runtime.started:
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse(
        {"status": "ready", "project": p.project.slug, "steps": len(p.project.steps)}
    )


async def metrics(request: Request) -> Response:
    p: Platform = request.app.state.platform
    for step, counts in (await p.queue.stats()).items():
        for state, value in counts.items():
            p.metrics.queue_depth.labels(step, state).set(value)
    return Response(
        generate_latest(p.metrics.registry), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


async def projects(request: Request) -> Response:
    """`/v1/projects`: with `x-tenant-id`, the tenant's projects (control plane); without it,
    what this process serves (the runtime's own listing, as before tenants)."""
    if request.headers.get("x-tenant-id") or request.method == "POST":
        handler = _create_project if request.method == "POST" else cp.list_projects
        return await handler(request)
    return await rt.list_projects(request)


_create_project = idempotent(cp.create_project)


def routes(platform: Platform) -> list[BaseRoute]:
    """Platform routes first, then the project's api steps at their declared paths."""
    table: list[BaseRoute] = [
        Route("/", index),
        Route("/health", health),
        Route("/ready", ready),
        Route("/metrics", metrics),
        Route("/v1/projects", projects, methods=["GET", "POST"]),
        Route("/v1/subscriptions", subs.list_subscriptions),
        Route("/v1/subscriptions/provision", subs.provision_subscriptions, methods=["POST"]),
        Route(f"{R}/flows", rt.list_flows),
        Route(f"{R}/flows/{{flow}}", rt.get_flow),
        Route(f"{R}/flows/{{flow}}/layout", rt.get_flow_layout, methods=["GET"]),
        Route(f"{R}/flows/{{flow}}/layout", rt.put_flow_layout, methods=["PUT"]),
        Route(f"{R}/steps", rt.list_steps),
        Route(f"{R}/traces", rt.list_traces),
        Route(f"{R}/traces/{{trace_id}}", rt.get_trace),
        Route(f"{R}/logs", rt.get_logs),
        Route(f"{R}/state", rt.list_state_groups),
        Route(f"{R}/state/{{group}}", rt.get_state_group),
        Route(f"{R}/state/{{group}}/{{key}}", rt.get_state_item),
        Route(f"{R}/streams", rt.list_streams),
        Route(f"{R}/streams/{{name}}/{{group}}", rt.get_stream_group),
        Route(f"{R}/streams/{{name}}/{{group}}/{{id}}", rt.get_stream_item),
        Route(f"{R}/dead-letters", rt.list_dead_letters),
        Route(f"{R}/dead-letters/replay", rt.replay_dead_letters, methods=["POST"]),
        Route(f"{R}/dead-letters/{{id}}", rt.get_dead_letter),
        Route(f"{R}/dead-letters/{{id}}/replay", rt.replay_dead_letter, methods=["POST"]),
        Route(f"{R}/events", rt.post_event, methods=["POST"]),
        Route(f"{R}/diagnostics", rt.get_diagnostics),
        Route(f"{R}/settings", rt.get_settings, methods=["GET"]),
        Route(f"{R}/settings", rt.put_settings, methods=["PUT"]),
        WebSocketRoute(f"{R}/ws", stream_socket),
        *[
            op.route()
            for op in [*AUTH_OPERATIONS, *cp.OPERATIONS, *MEMBER_OPERATIONS, *AUDIT_OPERATIONS]
        ],
        *[op.route() for op in REPORT_OPERATIONS],
    ]
    assets = platform.settings.web_build / "assets"
    if assets.is_dir():  # the workbench's built scripts and styles (hashed names: cached)
        table.append(Mount("/assets", app=StaticFiles(directory=assets), name="assets"))
    for step in platform.project.api_steps:
        if step.route is not None:
            endpoint = step_endpoint(step)
            for path in (step.route.starlette_path, PREFIX + step.route.starlette_path):
                table.append(Route(path, endpoint, methods=[step.route.method]))
    return table


def create_app(platform: Platform, *, consume: bool = True) -> Starlette:
    """The ASGI app for one platform; starts and stops the runtime with the server."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await platform.start(consume=consume)
        try:
            yield
        finally:
            await platform.stop()

    app = Starlette(
        routes=routes(platform),
        middleware=[
            Middleware(RequestIds),
            Middleware(BodyLimit, limit=platform.settings.max_body_bytes),
        ],
        exception_handlers=HANDLERS,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.platform = platform
    return app
