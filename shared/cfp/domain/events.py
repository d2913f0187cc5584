"""Events, deliveries and executions: the runtime's data, as plain values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

CRON_TOPIC_PREFIX = "__cron__."  # a cron tick is an event on this internal per-step topic


@dataclass(slots=True)
class Event:
    """One emitted or ingested event; `id` is the idempotency key across redeliveries."""

    topic: str
    data: Any
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    trace_id: str = ""
    correlation_id: str = ""
    traceparent: str = ""
    message_group_id: str | None = None
    source_step: str | None = None
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "topic": self.topic,
            "data": self.data,
            "trace_id": self.trace_id,
            "correlation_id": self.correlation_id,
            "traceparent": self.traceparent,
            "message_group_id": self.message_group_id,
            "source_step": self.source_step,
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Event:
        return cls(**{k: raw.get(k) for k in cls.__slots__ if k in raw})  # type: ignore[attr-defined]


def derived_event_id(parent_id: str, step: str, index: int) -> str:
    """The id of the index-th event a step emits while handling parent_id: same on every retry."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"cfp:{step}:{parent_id}:{index}").hex


@dataclass(slots=True)
class Delivery:
    """An event leased to one subscribing step; `attempt` counts from 1."""

    id: str
    step: str
    event: Event
    attempt: int
    lease_owner: str
    lease_expires_at: float
    message_group_id: str | None = None
