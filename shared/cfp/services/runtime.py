"""The step runtime: runs api, event and cron handlers in-process on one asyncio loop, with a
bounded pool per step, and commits each successful attempt's effects once per (step, event id)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from cfp.domain.documents import SetDoc, Write, doc_id
from cfp.domain.events import CRON_TOPIC_PREFIX, Delivery, Event, derived_event_id
from cfp.domain.paths import Scope
from cfp.domain.schemas import SchemaValidator
from cfp.domain.tracing import make_traceparent, new_correlation_id, new_trace_id
from cfp.errors import BadRequest, CfpError, Conflict, EmitRefused, StepTimeout, ValidationFailed
from cfp.ports import DocumentStore, Schedule, Scheduler, Subscription
from cfp.services.context import (
    FlowContext,
    State,
    Stream,
    Streams,
    Transaction,
    check_emit,
    plain,
)
from cfp.services.loader import Project, StepDef
from cfp.services.observability import (
    LogBook,
    Metrics,
    StepLogger,
    correlation_var,
    flows_var,
    step_var,
    trace_var,
)
from cfp.services.streams import StreamHub

ValidationMode = Literal["strict", "permissive"]
VALIDATION_MODES = ("strict", "permissive")


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """Tunables of the runtime, from settings."""

    validation_mode: ValidationMode = "permissive"
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    poll_seconds: float = 0.25
    heartbeat_seconds: float = 5.0


@dataclass(slots=True)
class Origin:
    """Ids that travel with a request or event through every hop."""

    trace_id: str = field(default_factory=new_trace_id)
    correlation_id: str = field(default_factory=new_correlation_id)
    traceparent: str = ""

    def __post_init__(self) -> None:
        if not self.traceparent:
            self.traceparent = make_traceparent(self.trace_id)


@dataclass(slots=True)
class ApiResponse:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class StepFailed(Exception):
    """A handler raised or timed out; carries what the dead letter and trace will show."""

    def __init__(self, error: str, tb: str, *, retryable: bool = True) -> None:
        super().__init__(error)
        self.error = error
        self.traceback = tb
        self.retryable = retryable


def _response(raw: Any, step: str) -> ApiResponse:
    if raw is None:
        raise BadRequest(f"api step {step} returned nothing; return {{'status', 'body'}}")
    data = raw if isinstance(raw, dict) else getattr(raw, "__dict__", None)
    if not isinstance(data, dict) or not isinstance(data.get("status"), int):
        raise BadRequest(f"api step {step} must return {{'status': int, 'body': ...}}, got {raw!r}")
    headers = {str(k): str(v) for k, v in (data.get("headers") or {}).items()}
    return ApiResponse(status=data["status"], body=plain(data.get("body")), headers=headers)


class Runtime:
    """Runs one project's steps in one environment of one tenant."""

    def __init__(
        self,
        *,
        project: Project,
        scope: Scope,
        documents: DocumentStore,
        queue: Any,
        logbook: LogBook,
        metrics: Metrics,
        hub: StreamHub,
        scheduler: Scheduler | None = None,
        options: RuntimeOptions | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.project = project
        self.scope = scope
        self.documents = documents
        self.queue = queue
        self.logbook = logbook
        self.metrics = metrics
        self.hub = hub
        self.scheduler = scheduler
        self.options = options or RuntimeOptions()
        self.clock = clock
        self.validation_mode: ValidationMode = self.options.validation_mode
        self._validators: dict[int, SchemaValidator] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._running: set[asyncio.Task[Any]] = set()
        self.started = False
        # Held while the tenant is suspended: nothing is leased and no cron tick fires; what
        # was accepted stays queued and runs once the tenant is active again.
        self.held = False

    # -- set-up -------------------------------------------------------------------------

    def subscriptions(self) -> list[Subscription]:
        """One subscription per (topic, event step), and one internal topic per cron step."""
        subs: list[Subscription] = []
        for step in self.project.steps.values():
            q = step.queue
            topics = step.subscribes if step.type == "event" else []
            if step.type == "cron":
                topics = [CRON_TOPIC_PREFIX + step.name]
            for topic in topics:
                subs.append(
                    Subscription(
                        topic=topic,
                        step=step.name,
                        fifo=q.type == "fifo",
                        max_retries=q.maxRetries,
                        visibility_timeout=q.visibilityTimeout,
                        delay_seconds=q.delaySeconds,
                    )
                )
        return subs

    def consumers(self) -> list[StepDef]:
        return [s for s in self.project.steps.values() if s.type in ("event", "cron")]

    async def load_settings(self) -> None:
        stored = await self.documents.get(self.scope.settings())
        if stored and stored.get("validation_mode") in VALIDATION_MODES:
            self.validation_mode = stored["validation_mode"]

    async def set_validation_mode(
        self, mode: str, *, commit: Callable[[list[Write]], Awaitable[Any]] | None = None
    ) -> None:
        """Switch strict/permissive for this project environment, persisted, without restart.
        `commit` applies the write instead of the store (the control plane's audit log, so the
        change and its record commit together)."""
        if mode not in VALIDATION_MODES:
            raise BadRequest(
                f"validation_mode must be one of {list(VALIDATION_MODES)}, got {mode!r}",
                details={"field": "validation_mode"},
            )
        writes: list[Write] = [SetDoc(self.scope.settings(), {"validation_mode": mode})]
        await (commit or self.documents.apply)(writes)
        self.validation_mode = mode  # type: ignore[assignment]
        self.logbook.log("info", f"validation mode is now {mode}")

    async def start(self, *, consume: bool = True) -> None:
        """Declare subscriptions, take over dead processes' work, start consumers and cron."""
        await self.load_settings()
        self.queue.set_subscriptions(self.subscriptions())
        self._tasks.append(asyncio.create_task(self.logbook.run_flusher(), name="cfp-logs"))
        if consume:
            self.queue.on_publish(self._wake)
            released = await self.queue.recover()
            if released:
                self.logbook.log("info", f"took over {released} deliveries of a stopped process")
            for step in self.consumers():
                self._wakes[step.name] = asyncio.Event()
                self._tasks.append(
                    asyncio.create_task(self._consume(step), name=f"cfp-step-{step.name}")
                )
            self._tasks.append(asyncio.create_task(self._heartbeat(), name="cfp-heartbeat"))
            schedules = [Schedule(s.name, s.cron.expression) for s in self.project.cron_steps]
            if self.scheduler is not None and schedules:
                self._tasks.append(
                    asyncio.create_task(self.scheduler.run(schedules, self.fire_cron), name="cron")
                )
        self.started = True

    async def stop(self) -> None:
        """Stop consuming, let running handlers finish briefly, give back unfinished leases."""
        for task in self._tasks:
            task.cancel()
        if self._running:
            await asyncio.wait(self._running, timeout=5)
        for task in [*self._tasks, *self._running]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._running, return_exceptions=True)
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.logbook.flush()
        self.started = False

    # -- validation ---------------------------------------------------------------------

    def _validator(self, schema: dict[str, Any]) -> SchemaValidator:
        key = id(schema)
        if key not in self._validators:
            self._validators[key] = SchemaValidator(schema)
        return self._validators[key]

    def check(self, schema: dict[str, Any] | None, value: Any, what: str) -> list[dict[str, Any]]:
        """Schema violations of value; strict raises ValidationFailed, permissive logs them."""
        if not schema:
            return []
        problems = self._validator(schema).errors(value)
        if problems:
            if self.validation_mode == "strict":
                raise ValidationFailed(f"{what} does not match its schema", details=problems)
            self.logbook.log("warn", f"{what} does not match its schema", {"violations": problems})
        return problems

    async def _check_stream(self, what: str, value: Any, stream: str) -> None:
        del stream
        name = what.removeprefix("stream ")
        definition = self.project.streams.get(name)
        self.check(definition.schema if definition else None, value, what)

    # -- one attempt --------------------------------------------------------------------

    def _context(
        self,
        step: StepDef,
        origin: Origin,
        txn: Transaction,
        event_id: str,
        auth_context: Any = None,
    ) -> FlowContext:
        allowed = {e.topic for e in step.emits}
        counter = iter(range(1_000_000))

        async def emit(event: dict[str, Any]) -> None:
            try:
                topic, data, group = check_emit(event, allowed, step.name)
            except EmitRefused as exc:
                if self.validation_mode == "strict":
                    self.logbook.log("error", exc.message, exc.details)
                    raise
                self.logbook.log("warn", exc.message + " (dropped)", exc.details)
                return
            txn.emits.append(
                Event(
                    topic=topic,
                    data=data,
                    id=derived_event_id(event_id, step.name, next(counter)),
                    trace_id=origin.trace_id,
                    correlation_id=origin.correlation_id,
                    traceparent=make_traceparent(origin.trace_id),
                    message_group_id=group,
                    source_step=step.name,
                )
            )

        def stream(name: str) -> Stream:
            return Stream(name, self.documents, self.scope, txn, self._check_stream, self.hub.send)

        fields = {
            "step": step.name,
            "trace_id": origin.trace_id,
            "flows": step.flows,
            "correlation_id": origin.correlation_id,
        }
        return FlowContext(
            step=step.name,
            trace_id=origin.trace_id,
            flows=step.flows,
            emit=emit,
            state=State(self.documents, self.scope, txn),
            streams=Streams(stream, set(self.project.streams)),
            logger=StepLogger(self.logbook, fields),
            correlation_id=origin.correlation_id,
            traceparent=origin.traceparent,
            auth_context=auth_context,
        )

    async def _attempt(
        self, step: StepDef, origin: Origin, txn: Transaction, call: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Run one handler call with the step's timeout; failures become StepFailed."""
        self.metrics.in_flight.labels(step.name).inc()
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(call(), timeout=step.timeout)
        except TimeoutError:
            err = StepTimeout(f"step {step.name} timed out after {step.timeout:g} s")
            raise StepFailed(err.message, "".join(traceback.format_stack(limit=5))) from None
        except ValidationFailed:
            raise
        except EmitRefused as exc:
            raise StepFailed(exc.message, traceback.format_exc(), retryable=False) from exc
        except CfpError as exc:
            raise StepFailed(exc.message, traceback.format_exc(), retryable=exc.retryable) from exc
        except Exception as exc:
            raise StepFailed(f"{type(exc).__name__}: {exc}", traceback.format_exc()) from exc
        finally:
            self.metrics.in_flight.labels(step.name).dec()
            self.metrics.latency.labels(step.name).observe(time.perf_counter() - started)

    def _execution(
        self,
        step: StepDef,
        event_id: str,
        origin: Origin,
        attempt: int,
        status: str,
        started: float,
        error: str | None = None,
        topic: str | None = None,
    ) -> SetDoc:
        ended = self.clock()
        ident = doc_id(f"{step.name}:{event_id}:{attempt}")
        self.metrics.executions.labels(step.name, status).inc()
        if status != "ok":
            self.metrics.errors.labels(step.name).inc()
        return SetDoc(
            f"{self.scope.executions()}/{ident}",
            {
                "id": ident,
                "step": step.name,
                "type": step.type,
                "event_id": event_id,
                "topic": topic,
                "trace_id": origin.trace_id,
                "correlation_id": origin.correlation_id,
                "status": status,
                "attempt": attempt,
                "started_at": started,
                "ended_at": ended,
                "latency_ms": round((ended - started) * 1000, 3),
                "error": error,
            },
        )

    def _trace(self, origin: Origin, root: str, kind: str) -> SetDoc:
        now = self.clock()
        return SetDoc(
            f"{self.scope.traces()}/{doc_id(origin.trace_id)}",
            {
                "trace_id": origin.trace_id,
                "correlation_id": origin.correlation_id,
                "root": root,
                "kind": kind,
                "started_at": now,
                "started": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            },
        )

    async def _commit(
        self,
        step: StepDef,
        event_id: str,
        txn: Transaction,
        extra: list[Write],
        delivery: Delivery | None = None,
    ) -> bool:
        done = await self.queue.commit(
            step=step.name,
            event_id=event_id,
            writes=[*txn.writes, *extra],
            emits=txn.emits,
            delivery=delivery,
        )
        if done:
            for change in txn.changes:
                self.hub.send(change)
        return done

    # -- api steps ----------------------------------------------------------------------

    async def handle_api(
        self, step: StepDef, req: dict[str, Any], origin: Origin, auth_context: Any = None
    ) -> ApiResponse:
        """Run an api step's middleware and handler; commit effects before answering."""
        request_id = new_correlation_id()
        txn = Transaction()
        ctx = self._context(step, origin, txn, request_id, auth_context)
        started = self.clock()
        tokens = self._bind(step, origin)
        try:

            async def handler() -> Any:
                self.check(step.body_schema, req.get("body"), f"request body of {step.name}")
                return await step.handler(req, ctx)

            async def chain(index: int) -> Any:
                if index == len(step.middleware):
                    return await handler()
                return await step.middleware[index](req, ctx, lambda: chain(index + 1))

            try:
                response = _response(
                    await self._attempt(step, origin, txn, lambda: chain(0)), step.name
                )
            except ValidationFailed:
                await self.documents.apply(
                    [
                        self._execution(
                            step, request_id, origin, 1, "invalid", started, "request body invalid"
                        )
                    ]
                )
                raise
            except (StepFailed, BadRequest) as exc:
                message = exc.error if isinstance(exc, StepFailed) else exc.message
                self.logbook.log(
                    "error",
                    f"api step {step.name} failed: {message}",
                    {"traceback": getattr(exc, "traceback", None)},
                )
                await self.documents.apply(
                    [
                        self._trace(origin, step.name, "api"),
                        self._execution(step, request_id, origin, 1, "error", started, message),
                    ]
                )
                raise
            schema = step.response_schemas.get(response.status)
            if schema:
                try:
                    self.check(schema, response.body, f"response {response.status} of {step.name}")
                except ValidationFailed as exc:
                    # a handler's own response breaking its schema is the step's bug, not the
                    # caller's: log it, never turn it into a 422 for the caller
                    self.logbook.log("error", exc.message, {"violations": exc.details})
            await self._commit(
                step,
                request_id,
                txn,
                [
                    self._trace(origin, step.name, "api"),
                    self._execution(step, request_id, origin, 1, "ok", started),
                ],
            )
            return response
        finally:
            self._unbind(tokens)

    # -- events -------------------------------------------------------------------------

    async def ingest(
        self,
        topic: str,
        data: Any,
        origin: Origin,
        *,
        event_id: str | None = None,
        message_group_id: str | None = None,
    ) -> Event:
        """Accept an event from outside (HTTP, CLI); durable once this returns."""
        if not isinstance(topic, str) or not topic:
            raise BadRequest("topic must be a non-empty string", details={"field": "topic"})
        if topic.startswith(CRON_TOPIC_PREFIX):
            raise BadRequest(f"topic {topic!r} is internal", details={"field": "topic"})
        subscribers = self.project.subscribers(topic)
        for step in subscribers:
            self.check(step.input_schema, data, f"event {topic!r} for step {step.name}")
        if not subscribers:
            self.logbook.log("warn", f"event {topic!r} has no subscribers", {"topic": topic})
        event = Event(
            topic=topic,
            data=plain(data),
            id=event_id or new_correlation_id(),
            trace_id=origin.trace_id,
            correlation_id=origin.correlation_id,
            traceparent=origin.traceparent,
            message_group_id=message_group_id,
            created_at=self.clock(),
        )
        if not await self.queue.publish([event]):
            # a client retrying with its own id: answer with the event it already sent
            return await self.queue.get_event(event.id) or event
        await self.documents.apply([self._trace(origin, f"event:{topic}", "event")])
        return event

    def cron_event(self, step: str, scheduled_at: float, origin: Origin | None = None) -> Event:
        """The event of one tick; its id is step + scheduled time, so each tick runs once."""
        origin = origin or Origin()
        return Event(
            topic=CRON_TOPIC_PREFIX + step,
            data={
                "scheduled_at": datetime.fromtimestamp(scheduled_at, UTC).isoformat(
                    timespec="seconds"
                )
            },
            id=f"cron:{step}:{int(scheduled_at)}",
            trace_id=origin.trace_id,
            correlation_id=origin.correlation_id,
            traceparent=origin.traceparent,
            created_at=self.clock(),
        )

    async def fire_cron(self, schedule: Schedule, scheduled_at: float) -> None:
        """Enqueue one tick (the scheduler's callback); none while the tenant is held."""
        if self.held:
            return
        await self.queue.publish([self.cron_event(schedule.step, scheduled_at)])

    def hold(self, held: bool) -> None:
        """Stop (or resume) delivering events to steps: a suspended tenant's steps receive
        none."""
        if held != self.held:
            self.held = held
            self.logbook.log(
                "warn" if held else "info",
                "tenant suspended: deliveries held" if held else "deliveries resumed",
            )
            if not held:
                self._wake(set(self._wakes))

    async def execute(
        self, step: StepDef, event: Event, attempt: int, delivery: Delivery | None = None
    ) -> bool:
        """Run an event or cron step for one event and commit; False if already done.
        Raises StepFailed (with `retryable`) when the attempt failed."""
        origin = Origin(
            event.trace_id or new_trace_id(),
            event.correlation_id or new_correlation_id(),
            event.traceparent or "",
        )
        is_cron = event.topic.startswith(CRON_TOPIC_PREFIX)
        txn = Transaction()
        ctx = self._context(step, origin, txn, event.id)
        started = self.clock()
        tokens = self._bind(step, origin)
        extra: list[Write] = [self._trace(origin, step.name, "cron")] if is_cron else []
        try:
            try:
                if not is_cron:
                    try:
                        self.check(step.input_schema, event.data, f"input of {step.name}")
                    except ValidationFailed as exc:
                        raise StepFailed(
                            f"{exc.message}: {exc.details}", "", retryable=False
                        ) from exc

                def result_call() -> Awaitable[Any]:
                    return step.handler(ctx) if is_cron else step.handler(event.data, ctx)

                try:
                    await self._attempt(step, origin, txn, result_call)
                except ValidationFailed as exc:
                    raise StepFailed(
                        f"{exc.message}: {exc.details}", traceback.format_exc(), retryable=False
                    ) from exc
                extra.append(
                    self._execution(
                        step, event.id, origin, attempt, "ok", started, topic=event.topic
                    )
                )
                try:
                    return await self._commit(step, event.id, txn, extra, delivery)
                except Conflict as exc:
                    raise StepFailed(f"commit conflict: {exc.message}", "") from exc
            except StepFailed as exc:
                self.logbook.log(
                    "error",
                    f"step {step.name} failed (attempt {attempt}): {exc.error}",
                    {"traceback": exc.traceback, "event_id": event.id},
                )
                await self.documents.apply(
                    [
                        *(extra[:1] if is_cron else []),
                        self._execution(
                            step,
                            event.id,
                            origin,
                            attempt,
                            "error",
                            started,
                            exc.error,
                            topic=event.topic,
                        ),
                    ]
                )
                raise
        finally:
            self._unbind(tokens)

    async def _run_delivery(self, delivery: Delivery) -> None:
        step = self.project.steps[delivery.step]
        try:
            await self.execute(step, delivery.event, delivery.attempt, delivery)
        except StepFailed as exc:
            if exc.retryable and delivery.attempt <= step.queue.maxRetries:
                delay = min(
                    self.options.retry_base_seconds * 2 ** (delivery.attempt - 1),
                    self.options.retry_max_seconds,
                )
                await self.queue.retry(delivery, error=exc.error, delay=delay)
            else:
                await self.queue.dead_letter(delivery, error=exc.error, traceback=exc.traceback)
                self.logbook.log(
                    "error",
                    f"step {step.name} dead-lettered event "
                    f"{delivery.event.id} after {delivery.attempt} attempt(s)",
                    {"event_id": delivery.event.id, "topic": delivery.event.topic},
                )
        except Exception as exc:  # the queue itself failed; the lease will be recovered
            self.logbook.log(
                "error",
                f"delivery {delivery.id} of {step.name} could not be settled: {exc}",
                {"traceback": traceback.format_exc()},
            )

    # -- consumer loops -----------------------------------------------------------------

    def _wake(self, steps: set[str]) -> None:
        for name in steps:
            wake = self._wakes.get(name)
            if wake is not None:
                wake.set()

    async def _consume(self, step: StepDef) -> None:
        wake = self._wakes[step.name]
        capacity = max(1, step.concurrency)
        mine: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            mine.discard(task)
            self._running.discard(task)
            wake.set()

        while True:
            wake.clear()
            free = 0 if self.held else capacity - len(mine)
            leased: list[Delivery] = []
            if free > 0:
                try:
                    leased = await self.queue.lease(step.name, limit=free)
                except Exception as exc:
                    self.logbook.log("error", f"lease for {step.name} failed: {exc}")
                    await asyncio.sleep(self.options.poll_seconds)
            for delivery in leased:
                task = asyncio.create_task(self._run_delivery(delivery))
                mine.add(task)
                self._running.add(task)
                task.add_done_callback(finished)
            if not leased or len(mine) >= capacity:
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that lands
                # as the wait ends, and stop() would then wait for this loop forever
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.options.poll_seconds):
                        await wake.wait()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.options.heartbeat_seconds)
            with contextlib.suppress(Exception):
                await self.queue.heartbeat()
                await self.queue.recover()

    # -- request context ----------------------------------------------------------------

    @staticmethod
    def _bind(step: StepDef, origin: Origin) -> tuple[Any, ...]:
        return (
            step_var.set(step.name),
            trace_var.set(origin.trace_id),
            correlation_var.set(origin.correlation_id),
            flows_var.set(step.flows),
        )

    @staticmethod
    def _unbind(tokens: tuple[Any, ...]) -> None:
        for var, token in zip(
            (step_var, trace_var, correlation_var, flows_var), tokens, strict=True
        ):
            var.reset(token)
