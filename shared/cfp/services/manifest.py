"""What `cfp build` and `cfp generate openapi` derive from a loaded project.

`manifest(project)` is the deploy input (build/manifest.json): one function per step with its
trigger, the Pub/Sub topics and subscriptions, the Cloud Scheduler jobs and the streams.
`openapi(project)` documents the project's api steps as OpenAPI 3.1. Both are pure functions of
the project and list everything in a stable order, so a rebuild of unchanged code is identical.
"""

from __future__ import annotations

import copy
import re
from http import HTTPStatus
from typing import Any

from cfp.domain.naming import PubSubNames, pubsub_name
from cfp.domain.paths import LOCAL_TENANT
from cfp.services.loader import Project, StepDef

__all__ = ["manifest", "openapi", "pubsub_name"]

MANIFEST_VERSION = 1

TARGETS = {"api": "step_api", "event": "step_event", "cron": "step_cron"}
"""The functions/main.py target that runs each step type (noop steps are never deployed)."""


def _trigger(step: StepDef) -> dict[str, Any]:
    if step.type == "api" and step.route is not None:
        return {"type": "http", "method": step.route.method, "path": step.route.path}
    if step.type == "event":
        return {"type": "topic", "topics": sorted(set(step.subscribes))}
    if step.type == "cron" and step.cron is not None:
        return {"type": "schedule", "cron": step.cron.expression}
    return {"type": "none"}


def _step(step: StepDef) -> dict[str, Any]:
    queue = None
    if step.type == "event":
        q = step.queue
        queue = {
            "type": q.type,
            "maxRetries": q.maxRetries,
            "visibilityTimeout": q.visibilityTimeout,
            "delaySeconds": q.delaySeconds,
        }
    return {
        "name": step.name,
        "type": step.type,
        "target": TARGETS.get(step.type),
        "file": step.file,
        "flows": list(step.flows),
        "trigger": _trigger(step),
        "emits": sorted(step.emit_topics),
        "queue": queue,
        "timeout": step.timeout,
        "concurrency": step.concurrency,
    }


def _scheduler_job(names: PubSubNames, step: str, cron: str, has_seconds: bool) -> dict[str, Any]:
    """The Cloud Scheduler job that ticks a cron step: it POSTs to the step's `step_cron`
    function, which reads the tick's time from Cloud Scheduler's X-CloudScheduler-ScheduleTime
    header. Cloud Scheduler's granularity is a minute, so a schedule with node-cron's seconds
    field has no job (it runs on a long-running worker's in-process scheduler only)."""
    if has_seconds:
        return {
            "name": None,
            "unsupported": "Cloud Scheduler schedules are 5-field unix-cron (a minute at the "
            "finest); this schedule has a seconds field",
        }
    return {
        "name": names.scheduler_job(step),
        "schedule": cron,
        "time_zone": "Etc/UTC",
        "target": TARGETS["cron"],
        "http_method": "POST",
        "headers": {"content-type": "application/json"},
        "body": "",
        "retry_config": {"retry_count": 0},  # a failed tick leaves a dead letter instead
        "attempt_deadline": "180s",
    }


def _topics(project: Project) -> list[str]:
    topics: set[str] = set()
    for step in project.steps.values():
        topics.update(e.topic for e in [*step.emits, *step.virtual_emits])
        topics.update([*step.subscribes, *step.virtual_subscribes])
    return sorted(topics)


def manifest(project: Project, *, tenant: str = LOCAL_TENANT, env: str = "dev") -> dict[str, Any]:
    """The deploy input for `project` in one tenant's environment; see the module docstring."""
    slug = project.slug
    names = PubSubNames(tenant, slug, env)
    steps = sorted(project.steps.values(), key=lambda s: s.name)
    subscriptions = [
        {
            "name": names.subscription(step.name, topic),
            "topic": topic,
            "topic_id": names.topic(topic),
            "step": step.name,
            "fifo": step.queue.type == "fifo",
            "maxRetries": step.queue.maxRetries,
            "dead_letter_topic": names.dead_letter_topic(step.name),
        }
        for step in steps
        if step.type == "event"
        for topic in sorted(set(step.subscribes))
    ]
    schedules = [
        {
            "step": step.name,
            "cron": step.cron.expression,
            "timezone": "UTC",
            "job": _scheduler_job(names, step.name, step.cron.expression, step.cron.has_seconds),
        }
        for step in steps
        if step.type == "cron" and step.cron is not None
    ]
    streams = [
        {"name": s.name, "file": s.file, "has_can_access": s.can_access is not None}
        for s in sorted(project.streams.values(), key=lambda s: s.name)
    ]
    return {
        "version": MANIFEST_VERSION,
        "project": {"slug": slug, "root": str(project.root.resolve())},
        "tenant": tenant,
        "env": env,
        "steps": [_step(s) for s in steps],
        "topics": _topics(project),
        "pubsub_topics": {topic: names.topic(topic) for topic in _topics(project)},
        "subscriptions": subscriptions,
        "schedules": schedules,
        "streams": streams,
    }


# -- OpenAPI ------------------------------------------------------------------------------------

ERROR_ENVELOPE = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
                "correlation_id": {"type": ["string", "null"]},
            },
        }
    },
}


class _Components:
    """Collects the `$defs` of step schemas as shared components: a pydantic model's `$defs`
    resolve against the document root in OpenAPI 3.1, so they must move under
    `#/components/schemas` and their `$ref`s must follow."""

    def __init__(self, **fixed: dict[str, Any]) -> None:
        self.schemas: dict[str, Any] = dict(fixed)
        self._raw: dict[str, Any] = dict(fixed)

    def _name_for(self, name: str, raw: Any, owner: str) -> str:
        candidate = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "Schema"
        if candidate in self._raw and self._raw[candidate] != raw:
            candidate = f"{owner}_{candidate}"
            base, n = candidate, 1
            while candidate in self._raw and self._raw[candidate] != raw:
                n += 1
                candidate = f"{base}_{n}"
        self._raw[candidate] = raw
        return candidate

    def adopt(self, schema: dict[str, Any], owner: str) -> dict[str, Any]:
        """`schema` with its `$defs` hoisted into the components and `$ref`s rewritten."""
        schema = copy.deepcopy(schema)
        defs = schema.pop("$defs", {}) or {}
        names = {name: self._name_for(name, raw, owner) for name, raw in sorted(defs.items())}
        refs = {f"#/$defs/{old}": f"#/components/schemas/{new}" for old, new in names.items()}
        for old, new in names.items():
            self.schemas[new] = _rewrite(defs[old], refs)
        return _rewrite(schema, refs)


def _rewrite(value: Any, refs: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            k: (refs.get(v, v) if k == "$ref" and isinstance(v, str) else _rewrite(v, refs))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rewrite(v, refs) for v in value]
    return value


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _describe(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _operation(step: StepDef, path_names: list[str], components: _Components) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": step.name}
    if step.description:
        op["summary"] = step.description
    if step.flows:
        op["tags"] = list(step.flows)
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in path_names
    ]
    for param in getattr(step.config, "queryParams", []):
        entry: dict[str, Any] = {"name": param.name, "in": "query", "schema": {"type": "string"}}
        if param.description:
            entry["description"] = param.description
        parameters.append(entry)
    if parameters:
        op["parameters"] = parameters
    if step.body_schema:
        op["requestBody"] = {
            "required": True,
            "content": _json_content(components.adopt(step.body_schema, step.name)),
        }
    responses: dict[str, Any] = {}
    for status in sorted(step.response_schemas):
        responses[str(status)] = {
            "description": _describe(status),
            "content": _json_content(components.adopt(step.response_schemas[status], step.name)),
        }
    if step.body_schema and 422 not in step.response_schemas:
        responses["422"] = {
            "description": "The request body does not match its schema (strict validation)",
            "content": _json_content({"$ref": "#/components/schemas/ErrorEnvelope"}),
        }
    if not responses:
        responses["default"] = {"description": f"The response of {step.name}"}
    op["responses"] = responses
    return op


def openapi(project: Project) -> dict[str, Any]:
    """An OpenAPI 3.1 document of the project's api steps (paths in Express `:id` become `{id}`)."""
    components = _Components(ErrorEnvelope=ERROR_ENVELOPE)
    paths: dict[str, dict[str, Any]] = {}
    # OpenAPI forbids two templates differing only in parameter names (`/o/{id}`, `/o/{oid}`),
    # which two methods of one route may use: the first template of a shape names them for all.
    templates: dict[str, tuple[str, list[str]]] = {}
    api_steps = sorted(
        (s for s in project.api_steps if s.route is not None),
        key=lambda s: (s.route.starlette_path, s.route.method),  # type: ignore[union-attr]
    )
    for step in api_steps:
        route = step.route
        assert route is not None
        shape = route.shape.partition(" ")[2]
        template, names = templates.setdefault(shape, (route.starlette_path, route.param_names))
        paths.setdefault(template, {})[route.method.lower()] = _operation(step, names, components)
    tags = sorted({flow for s in api_steps for flow in s.flows})
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": f"{project.slug} API", "version": "1.0.0"},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(components.schemas.items()))},
    }
    if tags:
        document["tags"] = [{"name": t} for t in tags]
    return document
