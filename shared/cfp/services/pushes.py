"""What an event step's Cloud Run function does with one pushed Pub/Sub message.

Pub/Sub push cannot hold a message back for a chosen time: it redelivers a failed push with the
subscription's own backoff (seconds to 10 minutes) and has no per-message delay. So when a task
queue and the function's own URL are configured, the function schedules the work itself:

- `delaySeconds`: an event that arrives before it is due becomes a task due at
  `created_at + delaySeconds`, and the push is acknowledged.
- A retryable failure with retries left becomes a task due after the step's exponential backoff
  (the embedded queue's `retry_base_seconds * 2**(attempt-1)`), and the push is acknowledged.

Every push counts as an attempt (the queue counts them: Pub/Sub's own `deliveryAttempt` exists
only with a dead-letter policy, and a task's delivery is not Pub/Sub's). Tasks are named from the
step, the event and the attempt (or `delay`), so a copy of the same push never schedules the same
work twice. A task carries the message as a Pub/Sub push body, back to this function.
If scheduling fails, or no task queue is configured, `Redeliver` asks Pub/Sub to redeliver
instead: nothing is ever acknowledged before it is either done, dead-lettered or scheduled.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from cfp.domain.events import Event
from cfp.ports import Task, TaskQueue
from cfp.services.loader import StepDef
from cfp.services.runtime import Runtime, StepFailed

DELAYED_ATTRIBUTE = "cfp_delayed"  # set on a message a delay task sends back: it is now due
EARLY_TOLERANCE = 0.5  # seconds early an event may arrive and still run now

Outcome = Literal["done", "duplicate", "deferred", "retry_scheduled", "dead_lettered"]


class Redeliver(Exception):
    """The push must be answered with an error so Pub/Sub delivers it again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TaskTarget:
    """Where delayed work goes: a task queue, its queue name and this function's URL."""

    tasks: TaskQueue
    queue: str
    function_url: str


def task_name(step: str, event_id: str, what: str) -> str:
    """A Cloud Tasks name (letters, digits, `-`, `_`) unique to (step, event, what)."""
    digest = hashlib.sha256(f"{step}\0{event_id}".encode()).hexdigest()[:32]
    readable = re.sub(r"[^A-Za-z0-9_-]", "-", step)[:60]
    return f"{readable}-{digest}-{what}"


def push_body(event: Event, message: dict[str, Any], *, delayed: bool) -> bytes:
    """The Pub/Sub push body a task sends back to the function: the original message, with the
    event's own id and topic in its attributes (a plain publisher's message has neither)."""
    attributes = dict(message.get("attributes") or {})
    attributes.setdefault("event_id", event.id)
    attributes.setdefault("event_topic", event.topic)
    if delayed:
        attributes[DELAYED_ATTRIBUTE] = "1"
    body = {
        "message": {
            "data": message.get("data") or "",
            "attributes": attributes,
            "messageId": str(message.get("messageId") or message.get("message_id") or event.id),
            "publishTime": message.get("publishTime") or "",
        },
        "subscription": "cfp-task",
    }
    return json.dumps(body).encode()


class PushHandler:
    """Runs one pushed event for one step: counts the attempt, defers an early event, retries
    through the task queue, dead-letters after `maxRetries`."""

    def __init__(
        self,
        runtime: Runtime,
        queue: Any,
        *,
        target: TaskTarget | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runtime = runtime
        self.queue = queue
        self.target = target
        self.clock = clock
        self._queue_ready = False

    async def handle(
        self, step: StepDef, event: Event, message: dict[str, Any], *, pubsub_attempt: int = 1
    ) -> Outcome:
        now = self.clock()
        delayed = (message.get("attributes") or {}).get(DELAYED_ATTRIBUTE) == "1"
        due = event.created_at + step.queue.delaySeconds
        if step.queue.delaySeconds and not delayed and due > now + EARLY_TOLERANCE:
            await self._schedule(step, event, message, "delay", due, delayed=True)
            return "deferred"
        attempt = pubsub_attempt
        record_attempt = getattr(self.queue, "record_attempt", None)
        if record_attempt is not None:
            # Pub/Sub's deliveryAttempt exists only with a dead-letter policy, whose minimum is
            # 5 attempts, and a task's delivery is not a Pub/Sub one: the ledger counts them all.
            attempt = max(attempt, await record_attempt(step.name, event.id))
        try:
            ran = await self.runtime.execute(step, event, attempt)
        except StepFailed as exc:
            if exc.retryable and attempt <= step.queue.maxRetries:
                delay = min(
                    self.runtime.options.retry_base_seconds * 2 ** (attempt - 1),
                    self.runtime.options.retry_max_seconds,
                )
                if self.target is None:
                    raise Redeliver(exc.error) from exc
                await self._schedule(
                    step, event, message, f"retry-{attempt}", now + delay, delayed=True
                )
                return "retry_scheduled"
            await self.queue.park(step.name, event, exc.error, exc.traceback, attempt)
            self.runtime.logbook.log(
                "error",
                f"step {step.name} dead-lettered event {event.id} after {attempt} attempt(s): "
                f"{exc.error}",
                {"event_id": event.id, "topic": event.topic, "step": step.name},
            )
            return "dead_lettered"
        return "done" if ran else "duplicate"

    async def _schedule(
        self,
        step: StepDef,
        event: Event,
        message: dict[str, Any],
        what: str,
        at: float,
        *,
        delayed: bool,
    ) -> None:
        if self.target is None:
            raise Redeliver(f"{step.name}: no task queue to schedule {what} of event {event.id}")
        task = Task(
            name=task_name(step.name, event.id, what),
            url=self.target.function_url,
            body=push_body(event, message, delayed=delayed),
            headers={"content-type": "application/json"},
            schedule_at=at,
        )
        try:
            if not self._queue_ready:  # idempotent; once per process
                await self.target.tasks.ensure_queue(self.target.queue)
                self._queue_ready = True
            await self.target.tasks.enqueue(self.target.queue, task)
        except Exception as exc:  # the push is not acknowledged: Pub/Sub tries again
            raise Redeliver(f"scheduling {what} of event {event.id} failed: {exc}") from exc
        wait = max(0.0, at - self.clock())
        self.runtime.logbook.log(
            "info",
            f"step {step.name}: event {event.id} {what} scheduled in {wait:.1f}s",
            {"event_id": event.id, "task": task.name},
        )
