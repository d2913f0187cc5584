"""The ports services depend on. Adapters in `cfp.adapters.local` and `cfp.adapters.gcp` implement
them; the contract suites in `tests/contract/` hold every adapter to the same behaviour."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from cfp.domain.documents import Filter, Page, Write
from cfp.domain.events import Delivery, Event


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


@runtime_checkable
class DocumentStore(Protocol):
    """Firestore-shaped documents: `get`, ordered `list` (filters, cursors), atomic `apply`."""

    async def get(self, path: str) -> dict[str, Any] | None: ...

    async def list(
        self,
        collection: str,
        *,
        where: Sequence[Filter] = (),
        order_by: str | None = None,
        descending: bool = False,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """Documents directly in `collection`, each with its `_id`, by `order_by` then id."""
        ...

    async def apply(self, writes: Sequence[Write]) -> list[Any]:
        """Apply all writes in one transaction; raise `Conflict` and change nothing on a failed
        precondition. Returns one result per write (new value for Increment/Merge, else None)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Subscription:
    """A step's subscription to a topic, with its queue options (Motia `infrastructure.queue`)."""

    topic: str
    step: str
    fifo: bool = False
    max_retries: int = 3
    visibility_timeout: float = 900.0
    delay_seconds: float = 0.0


class EventQueue(Protocol):
    """Durable at-least-once delivery of events to subscribing steps, with a once-per-(step,
    event id) commit of a step's effects (the transactional outbox)."""

    def set_subscriptions(self, subscriptions: Sequence[Subscription]) -> None:
        """Declare who receives which topic; publish fans out to these."""
        ...

    async def publish(self, events: Sequence[Event]) -> list[str]:
        """Durably accept events; an id already accepted is ignored. Returns the new ids."""
        ...

    async def get_event(self, event_id: str) -> Event | None:
        """An accepted event by id."""
        ...

    async def commit(
        self,
        *,
        step: str,
        event_id: str,
        writes: Sequence[Write],
        emits: Sequence[Event],
        delivery: Delivery | None = None,
    ) -> bool:
        """Atomically apply a step's writes, publish its emits and mark (step, event_id) done
        (and its delivery, if any). False, with nothing applied, if it was already done."""
        ...

    async def lease(self, step: str, *, limit: int) -> list[Delivery]:
        """Lease up to `limit` due deliveries of `step` to this process (fifo: group heads only)."""
        ...

    async def retry(self, delivery: Delivery, *, error: str, delay: float) -> None:
        """Give a failed delivery back, due again after `delay` seconds."""
        ...

    async def dead_letter(self, delivery: Delivery, *, error: str, traceback: str) -> None:
        """Park a delivery that exhausted its retries, with the error and traceback."""
        ...

    async def list_dead_letters(
        self,
        *,
        step: str | None = None,
        topic: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page: ...

    async def replay(
        self, *, ids: Sequence[str] = (), step: str | None = None, topic: str | None = None
    ) -> int:
        """Requeue dead letters (by id, or all matching step/topic) with attempts reset."""
        ...

    async def stats(self) -> dict[str, dict[str, int]]:
        """Per step: pending, in_flight and dead counts."""
        ...

    async def recover(self) -> int:
        """Release leases held by processes that are gone; returns how many."""
        ...

    async def close(self) -> None: ...


class BlobStore(Protocol):
    """Opaque bytes by key (GCS objects; local files)."""

    async def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...

    async def list(self, prefix: str = "") -> list[str]: ...


class KeyService(Protocol):
    """A key per tenant for envelope encryption (Cloud KMS; the local keyring)."""

    async def create_key(self, key_id: str) -> str: ...

    async def encrypt(self, key_id: str, plaintext: bytes, *, aad: bytes = b"") -> bytes: ...

    async def decrypt(self, key_id: str, ciphertext: bytes, *, aad: bytes = b"") -> bytes: ...

    async def destroy_key(self, key_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Schedule:
    step: str
    cron: str


TickHandler = Callable[[Schedule, float], Awaitable[None]]


class Scheduler(Protocol):
    """Calls `fire(schedule, scheduled_at)` at each tick of each schedule (in-process locally;
    Cloud Scheduler jobs in Google Cloud)."""

    async def run(self, schedules: Sequence[Schedule], fire: TickHandler) -> None: ...
