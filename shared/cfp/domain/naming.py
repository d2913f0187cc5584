"""Names of the Google resources a project environment uses, derived without I/O, so `cfp build`
(the deploy input) and the running adapters always agree."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_PUBSUB_ALLOWED = re.compile(r"[^A-Za-z0-9\-_.~+%]")
_PUBSUB_MAX = 255


def pubsub_name(raw: str) -> str:
    """A valid Pub/Sub topic or subscription id for `raw`: letters, digits and `-_.~+%`,
    starting with a letter, 3-255 characters, not starting with `goog`. Names that had to change
    get a short hash of the original, so two different raw names never collide."""
    name = _PUBSUB_ALLOWED.sub("-", raw)
    if not name[:1].isalpha() or name.lower().startswith("goog"):
        name = "cfp-" + name
    changed = name != raw
    if changed or len(name) > _PUBSUB_MAX:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        name = f"{name[: _PUBSUB_MAX - 9]}-{digest}"
    return name.ljust(3, "-")


@dataclass(frozen=True, slots=True)
class PubSubNames:
    """Pub/Sub ids of one tenant's project environment. Tenant, project and environment slugs
    hold only `[a-z0-9-]`, so the `cfp.{tenant}.{project}.{env}` prefix is unambiguous and one
    Google project can hold many tenants' environments; `~` separates the CFP names after it."""

    tenant: str
    project: str
    env: str

    @property
    def prefix(self) -> str:
        return f"cfp.{self.tenant}.{self.project}.{self.env}"

    def topic(self, topic: str) -> str:
        return pubsub_name(f"{self.prefix}~{topic}")

    def subscription(self, step: str, topic: str) -> str:
        return pubsub_name(f"{self.prefix}~{step}~{topic}")

    def dead_letter_topic(self, step: str) -> str:
        return pubsub_name(f"{self.prefix}~dlq~{step}")

    def scheduler_job(self, step: str) -> str:
        """The Cloud Scheduler job id of a cron step: letters, digits, `-` and `_` only, with a
        short hash of the step's name when it had to change."""
        raw = f"cfp-{self.tenant}-{self.project}-{self.env}-{step}"
        name = re.sub(r"[^A-Za-z0-9_-]", "-", raw)
        if name != raw or len(name) > 500:
            name = f"{name[:491]}-{hashlib.sha256(raw.encode()).hexdigest()[:8]}"
        return name


def max_delivery_attempts(max_retries: int) -> int:
    """A subscription's dead-letter backstop: above the step's own limit (the queue counts
    attempts and dead-letters at `maxRetries + 1`), within Pub/Sub's 5-100."""
    return min(100, max(5, max_retries + 2))


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """One subscription a step needs, as provisioning creates it and `GET /v1/subscriptions`
    shows it: the CFP topic and step, their Pub/Sub ids, and the delivery options."""

    name: str
    topic: str
    step: str
    topic_id: str
    dead_letter_topic_id: str
    fifo: bool
    max_delivery_attempts: int
    push_endpoint: str | None = None


def subscription_specs(
    subscriptions: Iterable[tuple[str, str, bool, int]],
    names: PubSubNames,
    push_endpoints: Mapping[str, str] | None = None,
) -> list[SubscriptionSpec]:
    """Specs for `(topic, step, fifo, max_retries)` subscriptions, in a stable order."""
    push_endpoints = push_endpoints or {}
    return [
        SubscriptionSpec(
            name=names.subscription(step, topic),
            topic=topic,
            step=step,
            topic_id=names.topic(topic),
            dead_letter_topic_id=names.dead_letter_topic(step),
            fifo=fifo,
            max_delivery_attempts=max_delivery_attempts(max_retries),
            push_endpoint=push_endpoints.get(step),
        )
        for topic, step, fifo, max_retries in sorted(set(subscriptions), key=lambda s: (s[1], s[0]))
    ]
