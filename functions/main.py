"""Cloud Run function targets that run one step of a `cfp build` bundle through the CFP runtime.

One function per step, chosen by `CFP_STEP` (its name); `CFP_BUILD_DIR` (default build/) holds
the manifest.json `cfp build` wrote, and the project root comes from it unless `CFP_PROJECT` says
otherwise:

    functions-framework --source functions/main.py --target step_api     # api steps (HTTP)
    functions-framework --source functions/main.py --target step_event   # event steps (Pub/Sub)
    functions-framework --source functions/main.py --target step_cron    # cron (Cloud Scheduler)

The platform is built on the first call and kept for the life of the process: it is wiring, not
request state. Flask calls targets from worker threads while the runtime is asyncio code whose
SQLite futures and asyncio objects belong to one loop, so every call runs on the one event loop
thread this module owns. `cfp` is imported inside the targets: a cold start that only imports
this module stays cheap (`python -X importtime -c "import functions.main"`).

A Pub/Sub message for `step_event` carries the event's JSON payload as its data and the event's
ids as attributes named like `Event`'s fields: `topic`, `event_id`, `trace_id`,
`correlation_id`, `traceparent`, `message_group_id` (the ordering key also serves as the group).
"""

from __future__ import annotations

import atexit
import base64
import binascii
import json
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import asyncio

    import flask
    from cfp.app import Platform
    from cfp.domain.events import Event
    from cfp.services.loader import StepDef
    from cfp.services.pushes import PushHandler
    from cfp.services.runtime import Origin
    from cloudevents.http import CloudEvent

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

CORRELATION_HEADER = "x-correlation-id"
TRACEPARENT_HEADER = "traceparent"
SCHEDULE_TIME_HEADER = "x-cloudscheduler-scheduletime"
PUBSUB_MESSAGE_TYPE = "type.googleapis.com/google.pubsub.v1.PubsubMessage"
PUBSUB_EVENT_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_thread: threading.Thread | None = None
_platform: Platform | None = None


def _declare(kind: str) -> Callable[[F], F]:
    """Mark a target's signature type for functions-framework when it is the one loading us, so
    `--target` alone suffices; importing the framework here would cost every cold start ~140 ms.
    """

    def mark(func: F) -> F:
        framework = sys.modules.get("functions_framework")
        if framework is None:
            return func
        return getattr(framework, kind)(func)

    return mark


# -- the process-wide platform and its loop -------------------------------------------------------


def _event_loop() -> asyncio.AbstractEventLoop:
    """The module's loop, started on first use (call with `_lock` held)."""
    import asyncio

    global _loop, _loop_thread
    if _loop is None:
        _loop = asyncio.new_event_loop()
        _loop_thread = threading.Thread(
            target=_loop.run_forever, name="cfp-functions-loop", daemon=True
        )
        _loop_thread.start()
    return _loop


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the module's loop and wait for it from this (Flask) thread."""
    with _lock:
        loop = _event_loop()
    return _wait(coro, loop)


def _wait(
    coro: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop, timeout: float | None = None
) -> T:
    import asyncio

    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


def _build() -> Platform:
    from pathlib import Path

    from cfp.app import build
    from cfp.errors import SettingsError
    from cfp.settings import Settings

    settings = Settings.load()
    if not settings.step:
        raise SettingsError("CFP_STEP is not set: name the step this function runs")
    if settings.project_dir is None:
        path = Path(settings.build_dir) / "manifest.json"
        try:
            project = json.loads(path.read_text())["project"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SettingsError(
                f"CFP_BUILD_DIR: cannot read the project from {path} ({exc}); run `cfp build` "
                "or set CFP_PROJECT"
            ) from None
        settings = Settings.load(
            project_dir=project["root"], project_name=settings.project_name or project["slug"]
        )
    platform = build(settings)
    if settings.step not in platform.project.steps:
        import asyncio

        asyncio.run(platform.stop())
        raise SettingsError(
            f"CFP_STEP: project {platform.project.slug!r} has no step {settings.step!r} "
            f"(steps: {', '.join(sorted(platform.project.steps))})"
        )
    return platform


def _platform_for(kind: str) -> tuple[Platform, StepDef]:
    """The cached platform (built on first use) and the step it serves, checked to be `kind`."""
    global _platform
    from cfp.errors import SettingsError

    with _lock:
        if _platform is None:
            platform = _build()
            loop = _event_loop()
            _wait(platform.start(consume=False), loop)
            _platform = platform
            atexit.register(reset)  # flush logs and give back the database on shutdown
        platform = _platform
    step = platform.project.steps[str(platform.settings.step)]
    if step.type != kind:
        where = (
            "noop steps are never called, so never deployed"
            if step.type == "noop"
            else f"deploy it with --target step_{step.type}"
        )
        raise SettingsError(
            f"CFP_STEP={step.name} is a {step.type} step; this function's target serves "
            f"{kind} steps ({where})"
        )
    return platform, step


def reset() -> None:
    """Stop the cached platform and the loop; the next call builds them anew (tests, exit)."""
    global _platform, _loop, _loop_thread
    with _lock:
        platform, loop, thread = _platform, _loop, _loop_thread
        _platform = _loop = _loop_thread = None
        _push_handlers.clear()
    if loop is None:
        return
    if platform is not None:
        _wait(platform.stop(), loop, timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    if thread is not None:
        thread.join(timeout=10)
    loop.close()


# -- HTTP helpers ---------------------------------------------------------------------------------


def _origin(headers: Any) -> Origin:
    """Keep the caller's correlation id and trace context, or assign new ones."""
    from cfp.domain.tracing import new_correlation_id, parse_traceparent
    from cfp.services.runtime import Origin

    correlation = (headers.get(CORRELATION_HEADER) or "").strip()[:128] or new_correlation_id()
    raw = (headers.get(TRACEPARENT_HEADER) or "").strip().lower()
    parsed = parse_traceparent(raw)
    if parsed is None:
        return Origin(correlation_id=correlation)
    return Origin(parsed[0], correlation, raw)


def _id_headers(origin: Origin) -> dict[str, str]:
    return {
        CORRELATION_HEADER: origin.correlation_id,
        TRACEPARENT_HEADER: origin.traceparent,
        "x-trace-id": origin.trace_id,
    }


def _json_response(body: Any, status: int, headers: dict[str, str]) -> flask.Response:
    import flask

    text = "" if status in (204, 304) else json.dumps(body, ensure_ascii=False, default=str)
    return flask.Response(text, status=status, headers=headers, mimetype="application/json")


def _error(status: int, code: str, message: str, details: Any, origin: Origin) -> flask.Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": details,
            "correlation_id": origin.correlation_id,
        }
    }
    return _json_response(body, status, _id_headers(origin))


def _failure(exc: Exception, origin: Origin, step: str | None = None) -> flask.Response:
    """The error envelope for what a target raised, as the embedded server answers it: a
    CfpError says its own status and code, a failed step is 500 `step_failed`."""
    from cfp.errors import CfpError
    from cfp.services.runtime import StepFailed

    if isinstance(exc, StepFailed):
        return _error(500, "step_failed", f"step {step} failed: {exc.error}", None, origin)
    if isinstance(exc, CfpError):
        return _error(exc.status, exc.code, exc.message, exc.details, origin)
    return _error(500, "internal", f"internal error: {type(exc).__name__}", None, origin)


def _read_body(request: flask.Request, limit: int) -> bytes:
    from cfp.errors import PayloadTooLarge

    if (request.content_length or 0) > limit:
        raise PayloadTooLarge(f"request body is over {limit} bytes")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body is over {limit} bytes")
    return raw


def _motia_request(
    request: flask.Request, raw: bytes, path_params: dict[str, str]
) -> dict[str, Any]:
    """Motia's `req` dict, as the embedded server builds it."""
    from cfp.domain.requests import motia_request

    return motia_request(
        raw,
        content_type=request.headers.get("content-type"),
        headers=request.headers.items(),
        path_params=path_params,
        query=request.args.items(multi=True),
    )


# -- targets --------------------------------------------------------------------------------------


@_declare("http")
def step_api(request: flask.Request) -> flask.Response:
    """Serve an api step: the request becomes Motia's `req`, the step's answer the response."""
    import flask
    from cfp.errors import CfpError, NotFound
    from cfp.services.runtime import StepFailed

    origin = _origin(request.headers)
    try:
        platform, step = _platform_for("api")
        assert step.route is not None
        if request.method != step.route.method:
            response = _error(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed here; {step.name} serves {step.route.method}",
                None,
                origin,
            )
            response.headers["allow"] = step.route.method
            return response
        params = step.route.match(request.path)
        if params is None:
            raise NotFound(f"no route {request.path}; {step.name} serves {step.route.path}")
        raw = _read_body(request, platform.settings.max_body_bytes)
        req = _motia_request(request, raw, params)

        async def serve() -> Any:
            await _authorize_invoke(platform, request, origin)
            try:
                return await platform.runtime.handle_api(step, req, origin)
            finally:
                await platform.logbook.flush()

        result = _run(serve())
    except Exception as exc:
        if not isinstance(exc, CfpError | StepFailed):  # the runtime logged those
            _log_unexpected(exc)
        return _failure(exc, origin, _step_name())
    ids = _id_headers(origin)
    headers = {k: v for k, v in result.headers.items() if k.lower() not in ids} | ids
    if isinstance(result.body, bytes | str) and "content-type" in {k.lower() for k in headers}:
        return flask.Response(result.body, status=result.status, headers=headers)
    return _json_response(result.body, result.status, headers)


async def _authorize_invoke(platform: Platform, request: flask.Request, origin: Origin) -> None:
    """No anonymous execution: a bearer credential whose principal may `step.invoke` here."""
    from cfp.errors import Unauthorized

    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("this api step needs `Authorization: Bearer <token or API key>`")
    caller = await platform.control.authenticate(
        token.strip(),
        correlation_id=origin.correlation_id,
        trace_id=origin.trace_id,
        client_address=request.remote_addr,
        user_agent=request.headers.get("user-agent"),
    )
    scope = platform.scope
    await platform.control.authorize_project(caller, scope.tenant, scope.project, "step.invoke")


@_declare("cloud_event")
def step_event(cloud_event: CloudEvent) -> None:
    """Run an event step for one Pub/Sub message (services/pushes.py says how). Returning
    acknowledges the message: the step ran, its event was dead-lettered, or a task will bring it
    back later. Raising (`Redeliver`) answers 500 so Pub/Sub delivers it again."""
    from cfp.errors import BadRequest

    platform, step = _platform_for("event")
    envelope = cloud_event.data if isinstance(cloud_event.data, dict) else {}
    attempt = _delivery_attempt(envelope)
    try:
        event, payload_ref = _pubsub_event(cloud_event, envelope, _topics_by_id(platform))
        if payload_ref:
            event = _run(_resolve_payload(platform, event, payload_ref))
    except BadRequest as exc:
        _run(
            _park(
                platform, step, _unreadable_event(cloud_event, envelope), exc.message, "", attempt
            )
        )
        return
    if event.topic not in step.subscribes:
        _run(
            _park(
                platform,
                step,
                event,
                f"step {step.name} does not subscribe to topic {event.topic!r}",
                "",
                attempt,
            )
        )
        return
    message = _message_of(cloud_event, envelope)

    async def run() -> None:
        try:
            await _push_handler(platform).handle(step, event, message, pubsub_attempt=attempt)
        finally:
            await platform.logbook.flush()

    _run(run())


_push_handlers: dict[int, PushHandler] = {}


def _push_handler(platform: Platform) -> PushHandler:
    """The platform's push handler: with a task queue when this function knows its own URL
    (CFP_FUNCTION_URL), so delays and retries are scheduled tasks; else Pub/Sub redelivers."""
    from cfp.services.pushes import PushHandler, TaskTarget

    handler = _push_handlers.get(id(platform))
    if handler is not None:
        return handler
    settings = platform.settings
    target = None
    if platform.tasks is not None and settings.function_url:
        target = TaskTarget(platform.tasks, platform.task_queue, settings.function_url)
    _push_handlers.clear()  # one platform per process; a reset one is gone
    handler = _push_handlers[id(platform)] = PushHandler(
        platform.runtime, platform.queue, target=target
    )
    return handler


@_declare("http")
def step_cron(request: flask.Request) -> flask.Response:
    """Run a cron step once for one scheduled time: `{"scheduled_at": iso}` in the body, else
    Cloud Scheduler's X-CloudScheduler-ScheduleTime header, else now. The tick's id is step +
    scheduled time, so a repeated call for the same time is a no-op. A failed tick answers the
    error envelope and leaves a dead letter, which a later successful run of the tick clears
    (Cloud Scheduler retries only as its job's retry config says)."""
    from cfp.errors import CfpError
    from cfp.services.runtime import StepFailed

    origin = _origin(request.headers)
    try:
        platform, step = _platform_for("cron")
        if request.method != "POST":
            response = _error(405, "method_not_allowed", "cron ticks are POSTed", None, origin)
            response.headers["allow"] = "POST"
            return response
        raw = _read_body(request, platform.settings.max_body_bytes)
        scheduled_at = _scheduled_at(raw, request.headers.get(SCHEDULE_TIME_HEADER))
        event = platform.runtime.cron_event(step.name, scheduled_at, origin)

        async def run() -> bool:
            try:
                return await platform.runtime.execute(step, event, 1)
            except StepFailed as exc:
                await _park(platform, step, event, exc.error, exc.traceback, 1)
                raise
            finally:
                await platform.logbook.flush()

        ran = _run(run())
    except Exception as exc:
        if not isinstance(exc, CfpError | StepFailed):
            _log_unexpected(exc)
        return _failure(exc, origin, _step_name())
    body = {
        "step": step.name,
        "tick_id": event.id,
        "scheduled_at": event.data["scheduled_at"],
        "ran": ran,
    }
    return _json_response(body, 200, _id_headers(origin))


@_declare("http")
def audit_checkpoints(request: flask.Request) -> flask.Response:
    """Cloud Scheduler's tick for the audit checkpoints (every minute; Cloud Run's invoker
    check admits only the scheduler's service account): sign, store and anchor a checkpoint of
    every chain with records since its last one. Idempotent: a repeated tick makes nothing."""

    async def work(control: Any) -> dict[str, Any]:
        made = await control.checkpoints.checkpoint_all()
        return {"checkpoints": [{"chain": c.chain, "size": c.size, "root": c.root} for c in made]}

    return _control_tick(request, work)


@_declare("http")
def retention_purge(request: flask.Request) -> flask.Response:
    """Cloud Scheduler's tick for retention (hourly): apply every tenant's retention periods,
    unless a legal hold suspends them; each purge is audited. Idempotent."""

    async def work(control: Any) -> dict[str, Any]:
        run = await control.retention.purge_all(time.time())
        return {"purged": [r.model_dump(mode="json") for r in run.results], "failed": run.failed}

    return _control_tick(request, work)


def _control_tick(
    request: flask.Request, work: Callable[[Any], Coroutine[Any, Any, dict[str, Any]]]
) -> flask.Response:
    """Run `work(control plane)` for a scheduler's tick; its dict is the 200 answer."""
    from cfp.errors import CfpError

    async def run() -> dict[str, Any]:
        from cfp.app import open_control
        from cfp.settings import Settings

        async with open_control(Settings.load()) as control:
            return await work(control)

    origin = _origin(request.headers)
    try:
        body = _run(run())
    except Exception as exc:
        if not isinstance(exc, CfpError):
            _log_unexpected(exc)
        return _failure(exc, origin)
    return _json_response(body, 200, _id_headers(origin))


# -- Pub/Sub and cron details ---------------------------------------------------------------------


def _delivery_attempt(envelope: dict[str, Any]) -> int:
    """Pub/Sub's 1-based delivery attempt; it is sent only when the subscription has a dead-letter
    policy (which `cfp build`'s subscriptions always have), so 1 when absent."""
    value = envelope.get("deliveryAttempt")
    if value is None:
        value = (envelope.get("message") or {}).get("deliveryAttempt")
    try:
        return max(1, int(value)) if value is not None else 1
    except (TypeError, ValueError):
        return 1


def _topics_by_id(platform: Platform) -> dict[str, str]:
    """CFP topic by Pub/Sub topic id, for messages whose attributes do not name it (a plain
    publisher's message on a project topic)."""
    from cfp.domain.naming import PubSubNames

    names = PubSubNames(platform.scope.tenant, platform.scope.project, platform.scope.env)
    return {names.topic(t): t for s in platform.project.steps.values() for t in s.subscribes}


async def _resolve_payload(platform: Platform, event: Event, ref: str) -> Event:
    """Fetch a payload passed by reference (events over the inline limit live in the bucket)."""
    from cfp.errors import BadRequest, NotFound

    try:
        raw = await platform.blobs.get(ref)
        event.data = json.loads(raw)
    except (NotFound, ValueError) as exc:
        raise BadRequest(f"payload_ref {ref!r} of event {event.id} is unreadable: {exc}") from None
    return event


def _message_of(cloud_event: CloudEvent, envelope: dict[str, Any]) -> dict[str, Any]:
    """The Pub/Sub message of a push, whether Eventarc wrapped it or functions-framework
    converted a raw push (then the data is the message and the CloudEvent's id its id)."""
    message = envelope.get("message")
    if message is None and envelope.get("@type") == PUBSUB_MESSAGE_TYPE:
        message = {**envelope, "messageId": cloud_event["id"]}
    return message if isinstance(message, dict) else {}


def _pubsub_event(
    cloud_event: CloudEvent, envelope: dict[str, Any], topics_by_id: dict[str, str] | None = None
) -> tuple[Event, str | None]:
    """The CFP event a Pub/Sub push envelope carries, and its payload_ref when the payload is
    in the bucket (data then comes from there); BadRequest if it carries no event."""
    from cfp.domain.events import Event
    from cfp.errors import BadRequest

    if cloud_event["type"] != PUBSUB_EVENT_TYPE:
        raise BadRequest(f"unexpected CloudEvent type {cloud_event['type']!r}")
    message = _message_of(cloud_event, envelope)
    if not message:
        raise BadRequest("the CloudEvent carries no Pub/Sub message")
    attributes = message.get("attributes") or {}
    topic = attributes.get("event_topic") or attributes.get("topic")
    if not topic:
        # the CloudEvent source is //pubsub.googleapis.com/projects/P/topics/ID
        topic_id = str(cloud_event.get("source") or "").rpartition("/topics/")[2]
        topic = (topics_by_id or {}).get(topic_id)
    if not topic:
        raise BadRequest(
            "the Pub/Sub message has no `event_topic` attribute and comes from no topic a "
            "step subscribes to"
        )
    event_id = attributes.get("event_id") or message.get("messageId") or message.get("message_id")
    if not event_id:
        raise BadRequest("the Pub/Sub message has neither an `event_id` attribute nor an id")
    payload_ref = attributes.get("payload_ref") or None
    try:
        raw = base64.b64decode(message.get("data") or "", validate=True)
        data = None if payload_ref else json.loads(raw or b"null")
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"the Pub/Sub message data is not base64 JSON: {exc}") from None
    event = Event(
        topic=topic,
        data=data,
        id=str(event_id),
        trace_id=attributes.get("trace_id") or "",
        correlation_id=attributes.get("correlation_id") or "",
        traceparent=attributes.get("traceparent") or "",
        message_group_id=attributes.get("message_group_id") or message.get("orderingKey") or None,
        source_step=attributes.get("source_step") or None,
        created_at=_created_at(attributes, message, cloud_event),
    )
    return event, payload_ref


def _created_at(attributes: dict[str, Any], message: dict[str, Any], ce: CloudEvent) -> float:
    """When the event was created: CFP's `created_at` attribute, else when Pub/Sub accepted
    the message (a plain publisher's), else now. `delaySeconds` counts from it."""
    try:
        return float(attributes["created_at"])
    except (KeyError, TypeError, ValueError):
        pass
    for stamp in (message.get("publishTime"), message.get("publish_time"), ce.get("time")):
        if isinstance(stamp, str) and stamp:
            try:
                return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return time.time()


def _unreadable_event(cloud_event: CloudEvent, envelope: dict[str, Any]) -> Event:
    """What can be kept of a message that is no CFP event, for its dead letter."""
    from cfp.domain.events import Event

    message = envelope.get("message") if isinstance(envelope.get("message"), dict) else {}
    attributes = message.get("attributes") or {}
    ident = message.get("messageId") or message.get("message_id") or cloud_event["id"]
    return Event(
        topic=str(attributes.get("event_topic") or attributes.get("topic") or "?"),
        data={"cloudevent_type": cloud_event["type"], "envelope": cloud_event.data},
        id=f"pubsub:{ident}",
    )


async def _park(
    platform: Platform, step: StepDef, event: Event, error: str, tb: str, attempts: int
) -> None:
    await platform.queue.park(step.name, event, error, tb, attempts)
    platform.logbook.log(
        "error",
        f"step {step.name} dead-lettered event {event.id} after {attempts} attempt(s): {error}",
        {"event_id": event.id, "topic": event.topic, "step": step.name},
    )
    await platform.logbook.flush()


def _scheduled_at(raw: bytes, header: str | None) -> float:
    from cfp.errors import BadRequest

    value: Any = None
    if raw.strip():
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from None
        value = body.get("scheduled_at") if isinstance(body, dict) else None
    value = value or header
    if not value:
        return time.time()
    try:
        stamp = datetime.fromisoformat(str(value))
    except ValueError:
        raise BadRequest(
            f"scheduled_at {value!r} is not an ISO 8601 time", details={"field": "scheduled_at"}
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def _step_name() -> str | None:
    platform = _platform
    return platform.settings.step if platform is not None else None


def _log_unexpected(exc: Exception) -> None:
    import traceback

    platform = _platform
    text = "".join(traceback.format_exception(exc))
    if platform is not None:
        platform.logbook.log(
            "error", f"function failed: {type(exc).__name__}: {exc}", {"traceback": text}
        )
    else:
        sys.stderr.write(text)
