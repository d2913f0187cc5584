"""The runtime routes as declared operations, for the OpenAPI document: the same handlers as the
routes in `cfp.api.app`, with the shapes they answer. Items whose fields come from user code
(state values, stream items, log lines) are open objects."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cfp.api import runtime_routes as rt
from cfp.api import subscription_routes as subs
from cfp.api.operations import Operation

R = "/v1/projects/{project}/envs/{env}"


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FlowSummary(Open):
    name: str
    steps: int
    edges: int


class FlowGraph(Open):
    name: str
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]


class StepSummary(Open):
    name: str
    type: str


class Trace(Open):
    trace_id: str
    executions: list[dict[str, Any]]


class StateGroup(Open):
    group: str


class StateItem(Open):
    key: str
    value: Any = None


class StateValue(Open):
    group: str
    key: str
    value: Any = None


class DeadLetter(Open):
    id: str
    step: str
    topic: str
    event_id: str
    attempts: int


class Replayed(BaseModel):
    replayed: int


class RuntimeSettings(Open):
    validation_mode: str


class StreamSummary(BaseModel):
    name: str
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    guarded: bool


class Diagnostics(Open):
    project: str
    env: str
    tenant: str
    backend: str
    region: str
    process: dict[str, Any]
    runtime: dict[str, Any]
    queue: dict[str, Any]
    subscriptions: dict[str, int]
    audit: dict[str, Any]


class Provisioned(Open):
    items: list[dict[str, Any]]
    failed: int


def _op(method: str, path: str, handler: Any, op_id: str, summary: str, **kw: Any) -> Operation:
    kw.setdefault("errors", ("400", "401", "403", "404"))
    return Operation(method, path, handler, op_id, summary, "runtime", **kw)


RUNTIME_OPERATIONS: list[Operation] = [
    _op(
        "GET",
        f"{R}/flows",
        rt.list_flows,
        "listFlows",
        "The project's flows",
        response=FlowSummary,
        paged=True,
    ),
    _op("GET", f"{R}/flows/{{flow}}", rt.get_flow, "getFlow", "A flow graph", response=FlowGraph),
    _op(
        "GET",
        f"{R}/flows/{{flow}}/layout",
        rt.get_flow_layout,
        "getFlowLayout",
        "A flow's saved canvas layout (version 0 while none is saved); its `ETag` is its version",
        response=rt.FlowLayout,
    ),
    _op(
        "PUT",
        f"{R}/flows/{{flow}}/layout",
        rt.put_flow_layout,
        "putFlowLayout",
        "Save a flow's canvas layout for every user of the project (audited); `{}` clears it",
        body=rt.FlowLayoutIn,
        response=rt.FlowLayout,
        headers=("if-match",),
        errors=("400", "401", "403", "404", "409", "412", "422"),
    ),
    _op(
        "GET",
        f"{R}/steps",
        rt.list_steps,
        "listSteps",
        "Every step",
        response=StepSummary,
        paged=True,
    ),
    _op(
        "GET",
        f"{R}/traces",
        rt.list_traces,
        "listTraces",
        "Latest traces",
        response=Open,
        paged=True,
    ),
    _op(
        "GET",
        f"{R}/traces/{{trace_id}}",
        rt.get_trace,
        "getTrace",
        "A trace's executions",
        response=Trace,
    ),
    _op(
        "GET",
        f"{R}/logs",
        rt.get_logs,
        "listLogs",
        "Stored log lines, newest first",
        response=Open,
        paged=True,
        query=(
            ("trace_id", "Only this trace"),
            ("step", "Only this step"),
            ("level", "debug, info, warn or error"),
        ),
    ),
    _op(
        "GET",
        f"{R}/state",
        rt.list_state_groups,
        "listStateGroups",
        "State groups",
        response=StateGroup,
        paged=True,
    ),
    _op(
        "GET",
        f"{R}/state/{{group}}",
        rt.get_state_group,
        "getStateGroup",
        "A state group's keys and values",
        response=StateItem,
        paged=True,
    ),
    _op(
        "GET",
        f"{R}/state/{{group}}/{{key}}",
        rt.get_state_item,
        "getStateItem",
        "One value",
        response=StateValue,
    ),
    _op(
        "GET",
        f"{R}/streams",
        rt.list_streams,
        "listStreams",
        "The project's streams",
        response=StreamSummary,
        paged=True,
    ),
    _op(
        "GET",
        f"{R}/streams/{{name}}/{{group}}",
        rt.get_stream_group,
        "getStreamGroup",
        "A stream group's items",
        response=Open,
        paged=True,
    ),
    _op(
        "GET",
        f"{R}/streams/{{name}}/{{group}}/{{id}}",
        rt.get_stream_item,
        "getStreamItem",
        "A stream item",
        response=Open,
    ),
    _op(
        "GET",
        f"{R}/dead-letters",
        rt.list_dead_letters,
        "listDeadLetters",
        "Failed deliveries",
        response=DeadLetter,
        paged=True,
        query=(("step", "Only this step"), ("topic", "Only this topic")),
    ),
    _op(
        "POST",
        f"{R}/dead-letters/replay",
        rt.replay_dead_letters,
        "replayDeadLetters",
        "Replay many (by ids, step or topic)",
        body=rt.ReplayIn,
        response=Replayed,
        status=202,
        errors=("400", "401", "403", "404", "422"),
    ),
    _op(
        "GET",
        f"{R}/dead-letters/{{id}}",
        rt.get_dead_letter,
        "getDeadLetter",
        "A dead letter",
        response=DeadLetter,
    ),
    _op(
        "POST",
        f"{R}/dead-letters/{{id}}/replay",
        rt.replay_dead_letter,
        "replayDeadLetter",
        "Replay one",
        response=Replayed,
        status=202,
    ),
    _op(
        "POST",
        f"{R}/events",
        rt.post_event,
        "postEvent",
        "Ingest an event",
        body=rt.EventIn,
        response=rt.EventAccepted,
        status=202,
        errors=("400", "401", "403", "404", "413", "422", "503"),
    ),
    _op(
        "GET",
        f"{R}/settings",
        rt.get_settings,
        "getSettings",
        "Runtime settings",
        response=RuntimeSettings,
    ),
    _op(
        "GET",
        f"{R}/diagnostics",
        rt.get_diagnostics,
        "getDiagnostics",
        "What the serving process is doing (only with CFP_DIAGNOSTICS; each use is audited)",
        response=Diagnostics,
    ),
    _op(
        "PUT",
        f"{R}/settings",
        rt.put_settings,
        "putSettings",
        "Switch the validation mode",
        body=rt.SettingsIn,
        response=RuntimeSettings,
        errors=("400", "401", "403", "404", "422"),
    ),
    _op(
        "GET",
        "/v1/subscriptions",
        subs.list_subscriptions,
        "listSubscriptions",
        "The subscriptions the steps need, with their state",
        response=Open,
        paged=True,
        query=(("state", "pending, active or failed"),),
    ),
    _op(
        "POST",
        "/v1/subscriptions/provision",
        subs.provision_subscriptions,
        "provisionSubscriptions",
        "Provision again (idempotent)",
        response=Provisioned,
    ),
]
