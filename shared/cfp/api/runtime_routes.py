"""The runtime surface under `R = /v1/projects/{project}/envs/{env}`: flows, steps, traces, logs,
state, streams, dead letters, events and settings. Thin: parse, call a service, shape the reply."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from cfp.app import Platform
from cfp.domain.documents import ABSENT, CompareAndSet, Filter, doc_id, raw_id
from cfp.domain.flows import build_flows
from cfp.domain.rbac import AccessScope
from cfp.errors import BadRequest, Conflict, NotFound, ValidationFailed
from cfp.services.runtime import Origin
from cfp.services.tenancy import PreconditionFailed, now_iso

MAX_LIMIT = 500


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topic: str = Field(min_length=1)
    data: Any = None
    id: str | None = Field(default=None, min_length=1, max_length=200)
    messageGroupId: str | None = None


class EventAccepted(BaseModel):
    event_id: str
    trace_id: str


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str] = []
    step: str | None = None
    topic: str | None = None


class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    validation_mode: str


def platform(request: Request) -> Platform:
    """The platform serving this request, after checking the path names its project and env."""
    served: Platform = request.app.state.platform
    params = request.path_params
    if "project" in params and params["project"] != served.project.slug:
        raise NotFound(
            f"project {params['project']!r} is not served here",
            details={"served": served.project.slug},
        )
    if "env" in params and params["env"] != served.scope.env:
        raise NotFound(
            f"environment {params['env']!r} is not served here",
            details={"served": served.scope.env},
        )
    return served


async def authorized(request: Request, action: str) -> Platform:
    """The platform serving this request's project environment, once the caller (credentials
    and `x-tenant-id`, as on every tenant-scoped route) may do `action` in that project."""
    served = platform(request)
    return await authorize_project(request, served, action)


async def authorize_project(
    request: Request, served: Platform, action: str, *, tenant_in_path: bool = False
) -> Platform:
    """`tenant_in_path`: the tenant is the served one (an api step's URL names it, or the
    process serves one project), so no `x-tenant-id` is needed; membership is still checked."""
    from cfp.api.callers import tenant_caller

    who, tenant = await tenant_caller(
        request, tenant=served.scope.tenant if tenant_in_path else None
    )
    scope = served.scope
    if tenant != scope.tenant:
        raise NotFound(
            f"project {scope.project!r} of tenant {tenant!r} is not served here",
            details={"served": {"tenant": scope.tenant, "project": scope.project}},
        )
    team = await served.control.tenancy.project_team(tenant, scope.project)
    who.check(action, AccessScope.for_project(tenant, scope.project), team=team)
    return served


def page_args(request: Request, default: int = 50) -> tuple[int, str | None]:
    raw = request.query_params.get("limit", str(default))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(
            f"limit must be an integer from 1 to {MAX_LIMIT}, got {raw!r}",
            details={"parameter": "limit"},
        )
    return int(raw), request.query_params.get("cursor") or None


def listing(items: list[Any], next_cursor: str | None) -> JSONResponse:
    return JSONResponse({"items": items, "next_cursor": next_cursor})


async def read_json(request: Request, model: type[BaseModel]) -> Any:
    """The body parsed into `model`: 400 for malformed JSON, 422 with pointers for bad fields."""
    raw = await request.body()
    try:
        data = json.loads(raw or b"null")
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [
            {"pointer": "/" + "/".join(str(p) for p in err["loc"]), "message": err["msg"]}
            for err in exc.errors()
        ]
        raise ValidationFailed("request body is invalid", details=details) from None


def _step_summary(step: Any) -> dict[str, Any]:
    return {
        "name": step.name,
        "type": step.type,
        "file": step.file,
        "flows": step.flows,
        "description": getattr(step.config, "description", None),
        "subscribes": step.subscribes,
        "emits": [e.model_dump() for e in step.emits],
        "path": step.route.path if step.route else None,
        "method": step.route.method if step.route else None,
        "cron": step.cron.expression if step.cron else None,
        "queue": step.queue.model_dump() if step.type == "event" else None,
        "timeout": step.timeout,
        "concurrency": step.concurrency,
        "input_schema": step.input_schema,
        "body_schema": step.body_schema,
        "response_schemas": {str(k): v for k, v in step.response_schemas.items()},
    }


async def list_projects(request: Request) -> JSONResponse:
    served: Platform = request.app.state.platform
    return listing(
        [
            {
                "slug": served.project.slug,
                "envs": [served.scope.env],
                "steps": len(served.project.steps),
                "streams": len(served.project.streams),
            }
        ],
        None,
    )


async def list_flows(request: Request) -> JSONResponse:
    p = await authorized(request, "flow.read")
    flows = build_flows(p.project.steps.values())
    return listing(
        [
            {"name": f["name"], "steps": len(f["nodes"]), "edges": len(f["edges"])}
            for f in flows.values()
        ],
        None,
    )


async def get_flow(request: Request) -> JSONResponse:
    p = await authorized(request, "flow.read")
    flows = build_flows(p.project.steps.values())
    name = request.path_params["flow"]
    if name not in flows:
        raise NotFound(f"no flow named {name!r}", details={"flows": sorted(flows)})
    return JSONResponse(flows[name])


async def list_steps(request: Request) -> JSONResponse:
    p = await authorized(request, "flow.read")
    return listing([_step_summary(s) for s in p.project.steps.values()], None)


async def list_traces(request: Request) -> JSONResponse:
    p = await authorized(request, "execution.read")
    limit, cursor = page_args(request)
    page = await p.documents.list(
        p.scope.traces(), order_by="started_at", descending=True, limit=limit, cursor=cursor
    )
    return listing(
        [{k: v for k, v in t.items() if k != "_id"} for t in page.items], page.next_cursor
    )


async def get_trace(request: Request) -> JSONResponse:
    p = await authorized(request, "execution.read")
    trace_id = request.path_params["trace_id"]
    executions = []
    cursor = None
    while True:
        page = await p.documents.list(
            p.scope.executions(),
            where=[Filter("trace_id", "==", trace_id)],
            order_by="started_at",
            limit=500,
            cursor=cursor,
        )
        executions += [{k: v for k, v in e.items() if k != "_id"} for e in page.items]
        cursor = page.next_cursor
        if not cursor:
            break

    summary = await p.documents.get(f"{p.scope.traces()}/{doc_id(trace_id)}")
    if summary is None and not executions:
        raise NotFound(f"no trace {trace_id!r}")
    return JSONResponse({**(summary or {"trace_id": trace_id}), "executions": executions})


async def get_logs(request: Request) -> JSONResponse:
    p = await authorized(request, "execution.read")
    limit, cursor = page_args(request, 100)
    q = request.query_params
    level = q.get("level")
    if level and level not in ("debug", "info", "warn", "error"):
        raise BadRequest(f"level must be debug, info, warn or error, got {level!r}")
    page = await p.logbook.query(
        trace_id=q.get("trace_id"), step=q.get("step"), level=level, limit=limit, cursor=cursor
    )
    return listing(
        [{k: v for k, v in line.items() if k != "_id"} for line in page.items], page.next_cursor
    )


async def list_state_groups(request: Request) -> JSONResponse:
    p = await authorized(request, "state.read")
    limit, cursor = page_args(request)
    page = await p.documents.list(p.scope.state_groups(), limit=limit, cursor=cursor)
    return listing([{"group": g["name"]} for g in page.items], page.next_cursor)


async def get_state_group(request: Request) -> JSONResponse:
    p = await authorized(request, "state.read")
    limit, cursor = page_args(request)
    page = await p.documents.list(
        p.scope.state_items(request.path_params["group"]), limit=limit, cursor=cursor
    )
    return listing(
        [{"key": raw_id(d["_id"]), "value": d.get("value")} for d in page.items], page.next_cursor
    )


async def get_state_item(request: Request) -> JSONResponse:
    p = await authorized(request, "state.read")
    group, key = request.path_params["group"], request.path_params["key"]
    doc = await p.documents.get(p.scope.state_item(group, key))
    if doc is None:
        raise NotFound(f"no state at {group}/{key}")
    return JSONResponse({"group": group, "key": key, "value": doc.get("value")})


def _stream_name(p: Platform, request: Request) -> str:
    name = request.path_params["name"]
    if name not in p.project.streams:
        raise NotFound(f"no stream named {name!r}", details={"streams": sorted(p.project.streams)})
    return name


async def list_streams(request: Request) -> JSONResponse:
    """The project's streams: name, schema and whether access is guarded (`canAccess`)."""
    p = await authorized(request, "state.read")
    items = [
        {"name": s.name, "schema": s.schema, "guarded": s.can_access is not None}
        for s in sorted(p.project.streams.values(), key=lambda s: s.name)
    ]
    return listing(items, None)


async def get_stream_group(request: Request) -> JSONResponse:
    p = await authorized(request, "state.read")
    name = _stream_name(p, request)
    limit, cursor = page_args(request)
    page = await p.documents.list(
        p.scope.stream_items(name, request.path_params["group"]), limit=limit, cursor=cursor
    )
    return listing(
        [{k: v for k, v in d.items() if k != "_id"} for d in page.items], page.next_cursor
    )


async def get_stream_item(request: Request) -> JSONResponse:
    p = await authorized(request, "state.read")
    name = _stream_name(p, request)
    group, item = request.path_params["group"], request.path_params["id"]
    doc = await p.documents.get(p.scope.stream_item(name, group, item))
    if doc is None:
        raise NotFound(f"no item {item!r} in {name}/{group}")
    return JSONResponse(doc)


async def list_dead_letters(request: Request) -> JSONResponse:
    p = await authorized(request, "execution.read")
    limit, cursor = page_args(request)
    page = await p.queue.list_dead_letters(
        step=request.query_params.get("step"),
        topic=request.query_params.get("topic"),
        limit=limit,
        cursor=cursor,
    )
    return listing(page.items, page.next_cursor)


async def get_dead_letter(request: Request) -> JSONResponse:
    p = await authorized(request, "execution.read")
    item = await p.queue.get_dead_letter(request.path_params["id"])
    if item is None:
        raise NotFound(f"no dead letter {request.path_params['id']!r}")
    return JSONResponse(item)


async def replay_dead_letter(request: Request) -> JSONResponse:
    p = await authorized(request, "execution.replay")
    ident = request.path_params["id"]
    if await p.queue.get_dead_letter(ident) is None:
        raise NotFound(f"no dead letter {ident!r}")
    count = await p.queue.replay(ids=[ident])
    await _record_replay(request, p, ident, {"ids": [ident], "replayed": count})
    p.logbook.log("info", f"dead letter {ident} replayed")
    return JSONResponse({"replayed": count}, status_code=202)


async def replay_dead_letters(request: Request) -> JSONResponse:
    p = await authorized(request, "execution.replay")
    body = await read_json(request, ReplayIn) if await request.body() else ReplayIn()
    count = await p.queue.replay(ids=body.ids, step=body.step, topic=body.topic)
    details = {"ids": body.ids, "step": body.step, "topic": body.topic, "replayed": count}
    await _record_replay(request, p, body.step or body.topic or "all", details)
    p.logbook.log(
        "info", f"{count} dead letters replayed", {"step": body.step, "topic": body.topic}
    )
    return JSONResponse({"replayed": count}, status_code=202)


async def _record_replay(request: Request, p: Platform, target: str, details: dict) -> None:
    """The audit record of a replay. The queue (SQLite or the Pub/Sub ledger) is not the
    document store's transaction, so it is appended right after the replay, not with it."""
    caller = request.state.caller
    scope = p.scope
    await p.control.audit.append(
        [
            caller.entry(
                "dead_letter.replay",
                "dead_letter",
                target,
                f"tenant/{scope.tenant}/project/{scope.project}",
                details={k: v for k, v in details.items() if v not in (None, [])},
            )
        ]
    )


async def post_event(request: Request) -> JSONResponse:
    p = await authorized(request, "event.publish")
    body: EventIn = await read_json(request, EventIn)
    state = request.scope["state"]
    origin = Origin(state["trace_id"], state["correlation_id"], state["traceparent"])
    event = await p.runtime.ingest(
        body.topic, body.data, origin, event_id=body.id, message_group_id=body.messageGroupId
    )
    return JSONResponse(
        EventAccepted(event_id=event.id, trace_id=event.trace_id).model_dump(), status_code=202
    )


async def get_settings(request: Request) -> JSONResponse:
    p = await authorized(request, "project.read")
    return JSONResponse({"validation_mode": p.runtime.validation_mode})


async def put_settings(request: Request) -> JSONResponse:
    p = await authorized(request, "project.manage")
    body: SettingsIn = await read_json(request, SettingsIn)
    if body.validation_mode == p.runtime.validation_mode:  # nothing changes, nothing recorded
        return JSONResponse({"validation_mode": p.runtime.validation_mode})
    scope = p.scope
    entry = request.state.caller.entry(
        "env.settings.update",
        "env",
        f"{scope.project}/{scope.env}",
        f"tenant/{scope.tenant}/project/{scope.project}",
        details={"validation_mode": body.validation_mode, "previous": p.runtime.validation_mode},
    )
    await p.runtime.set_validation_mode(
        body.validation_mode, commit=lambda writes: p.control.audit.commit(writes, [entry])
    )
    return JSONResponse({"validation_mode": p.runtime.validation_mode})


async def get_diagnostics(request: Request) -> JSONResponse:
    """What the process serving this environment is doing: only when CFP_DIAGNOSTICS enables
    it, for callers holding `diagnostics.use`; each use is an audit record."""
    served = platform(request)
    if not served.settings.diagnostics:
        raise NotFound(
            "diagnostics are disabled on this deployment (CFP_DIAGNOSTICS)",
            details={"setting": "CFP_DIAGNOSTICS"},
        )
    p = await authorized(request, "diagnostics.use")
    scope = p.scope
    await p.control.audit.append(
        [
            request.state.caller.entry(
                "diagnostics.use",
                "env",
                f"{scope.project}/{scope.env}",
                f"tenant/{scope.tenant}/project/{scope.project}",
                details={"endpoint": "diagnostics"},
            )
        ]
    )
    return JSONResponse(await p.diagnostics())


class NoBody(BaseModel):
    """The body of an action that takes no options: nothing, or `{}`."""

    model_config = ConfigDict(extra="forbid")


async def no_body(request: Request) -> None:
    """Refuse a body an action does not take (malformed JSON, unknown fields) with 400/422,
    rather than act as if it were not there."""
    if (await request.body()).strip():
        await read_json(request, NoBody)


# -- flow layouts: where the workbench draws each step of a flow -------------------------------

MAX_LAYOUT_NODES = 2000
MAX_COORDINATE = 10_000_000.0  # far beyond any canvas; keeps the numbers sane
MAX_UNKNOWN_NAMED = 20  # how many unknown step names an error message spells out


class LayoutPosition(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    x: float = Field(ge=-MAX_COORDINATE, le=MAX_COORDINATE, allow_inf_nan=False)
    y: float = Field(ge=-MAX_COORDINATE, le=MAX_COORDINATE, allow_inf_nan=False)


class LayoutViewport(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    x: float = Field(ge=-MAX_COORDINATE, le=MAX_COORDINATE, allow_inf_nan=False)
    y: float = Field(ge=-MAX_COORDINATE, le=MAX_COORDINATE, allow_inf_nan=False)
    zoom: float = Field(gt=0, le=100, allow_inf_nan=False)


class FlowLayoutIn(BaseModel):
    """A flow's layout: step name -> position, and the viewport; `{}` clears it (the workbench
    lays the flow out by itself again)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    nodes: dict[str, LayoutPosition] = Field(default_factory=dict, max_length=MAX_LAYOUT_NODES)
    viewport: LayoutViewport | None = None


class FlowLayout(BaseModel):
    """A flow's saved layout; `version` (its ETag) is 0 while none was ever saved."""

    flow: str
    nodes: dict[str, LayoutPosition]
    viewport: LayoutViewport | None = None
    version: int
    updated_at: str | None = None
    updated_by: str | None = None


def _flow_graph(p: Platform, request: Request) -> dict[str, Any]:
    flows = build_flows(p.project.steps.values())
    name = request.path_params["flow"]
    if name not in flows:
        raise NotFound(f"no flow named {name!r}", details={"flows": sorted(flows)})
    return flows[name]


def _layout_reply(flow: dict[str, Any], doc: dict[str, Any] | None) -> JSONResponse:
    """The stored layout of `flow` as its steps are now (a step since removed is left out),
    with its version as the ETag."""
    doc = doc or {}
    steps = {node["id"] for node in flow["nodes"]}
    layout = FlowLayout(
        flow=flow["name"],
        nodes={
            n["step"]: LayoutPosition(x=n["x"], y=n["y"])
            for n in doc.get("nodes", [])
            if n["step"] in steps
        },
        viewport=LayoutViewport(**doc["viewport"]) if doc.get("viewport") else None,
        version=doc.get("version", 0),
        updated_at=doc.get("updated_at"),
        updated_by=doc.get("updated_by"),
    )
    response = JSONResponse(layout.model_dump(mode="json"))
    response.headers["etag"] = f'"{layout.version}"'
    return response


def _pointer(name: str) -> str:
    return "/nodes/" + name.replace("~", "~0").replace("/", "~1")


async def get_flow_layout(request: Request) -> JSONResponse:
    p = await authorized(request, "flow.read")
    flow = _flow_graph(p, request)
    return _layout_reply(flow, await p.documents.get(p.scope.flow_layout(flow["name"])))


async def put_flow_layout(request: Request) -> JSONResponse:
    """Save where the workbench draws a flow's steps, for every user of the project. Audited
    (`flow.layout.update`, with counts, never coordinates); `If-Match` guards the version read;
    a layout that changes nothing writes and records nothing."""
    from cfp.api.control_routes import if_match  # control_routes imports this module

    p = await authorized(request, "flow.edit")
    flow = _flow_graph(p, request)
    expected = if_match(request)
    body: FlowLayoutIn = await read_json(request, FlowLayoutIn)
    steps = {node["id"] for node in flow["nodes"]}
    unknown = sorted(set(body.nodes) - steps)
    if unknown:
        named = ", ".join(repr(n[:100]) for n in unknown[:MAX_UNKNOWN_NAMED])
        extra = len(unknown) - MAX_UNKNOWN_NAMED
        more = f" and {extra} more" if extra > 0 else ""
        raise ValidationFailed(
            f"not steps of flow {flow['name']!r}: {named}{more}",
            details=[
                {"pointer": _pointer(n), "message": f"{n!r} is not a step of this flow"}
                for n in unknown
            ],
        )
    path = p.scope.flow_layout(flow["name"])
    nodes = [{"step": name, "x": pos.x, "y": pos.y} for name, pos in sorted(body.nodes.items())]
    viewport = body.viewport.model_dump() if body.viewport else None
    scope = p.scope
    for _ in range(3):  # a concurrent save without If-Match: read again, save over it
        current = await p.documents.get(path)
        version = current["version"] if current else 0
        if expected is not None and expected != version:
            raise PreconditionFailed(
                f"the layout of flow {flow['name']!r} changed since it was read (version "
                f"{version}, If-Match {expected})",
                details={"version": version},
            )
        if current and current.get("nodes") == nodes and current.get("viewport") == viewport:
            return _layout_reply(flow, current)  # nothing changes, nothing recorded
        updated = {
            "flow": flow["name"],
            "nodes": nodes,
            "viewport": viewport,
            "version": version + 1,
            "updated_at": now_iso(p.runtime.clock),
            "updated_by": request.state.caller.principal_id,
        }
        entry = request.state.caller.entry(
            "flow.layout.update",
            "flow",
            flow["name"],
            f"tenant/{scope.tenant}/project/{scope.project}",
            details={
                "env": scope.env,
                "nodes": len(nodes),
                "steps": len(steps),
                "viewport": viewport is not None,
                "version": version + 1,
            },
        )
        write = CompareAndSet(path, version if current else ABSENT, updated, field="version")
        try:
            await p.control.audit.commit([write], [entry])
        except Conflict:
            if expected is not None:
                raise PreconditionFailed(
                    f"the layout of flow {flow['name']!r} changed while it was being saved"
                ) from None
            continue
        return _layout_reply(flow, updated)
    raise Conflict(f"the layout of flow {flow['name']!r} is being saved by others; try again")
