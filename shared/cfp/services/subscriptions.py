"""Subscription lifecycle: create what each step's subscription needs, idempotently, retrying
transient failures with backoff, and keep a readable state per subscription.

States: `pending` (being created), `active` (exists as declared), `failed` (with the error and
the attempts made). Running provisioning again changes nothing for active subscriptions and
retries the others; `GET /v1/subscriptions` shows the records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any

from cfp.domain.documents import Page, SetDoc, doc_id
from cfp.domain.naming import SubscriptionSpec
from cfp.domain.paths import Scope
from cfp.errors import Unavailable
from cfp.ports import DocumentStore, Provisioner

STATES = ("pending", "active", "failed")


class SubscriptionLifecycle:
    """Provisions subscriptions through a `Provisioner` and records their states."""

    def __init__(
        self,
        documents: DocumentStore,
        scope: Scope,
        provisioner: Provisioner,
        *,
        backend: str,
        attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.documents = documents
        self.scope = scope
        self.provisioner = provisioner
        self.backend = backend
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.clock = clock
        self.sleep = sleep
        self.active: set[str] = set()

    def collection(self) -> str:
        return f"{self.scope.root}/subscriptions"

    def path(self, name: str) -> str:
        return f"{self.collection()}/{doc_id(name)}"

    async def _record(
        self, spec: SubscriptionSpec, state: str, *, error: str | None, attempts: int
    ) -> dict[str, Any]:
        record = {
            **asdict(spec),
            "backend": self.backend,
            "state": state,
            "error": error,
            "attempts": attempts,
            "updated_at": self.clock(),
        }
        await self.documents.apply([SetDoc(self.path(spec.name), record)])
        return record

    async def ensure(self, spec: SubscriptionSpec) -> dict[str, Any]:
        """Provision one subscription; its final record (active or failed)."""
        await self._record(spec, "pending", error=None, attempts=0)
        delay = self.base_delay
        for attempt in range(1, self.attempts + 1):
            try:
                await self.provisioner.ensure(spec)
            except Unavailable as exc:
                if attempt == self.attempts:
                    return await self._record(spec, "failed", error=str(exc), attempts=attempt)
                await self.sleep(delay)
                delay = min(self.max_delay, delay * 2)
                continue
            except Exception as exc:  # a lasting failure: no point retrying now
                error = f"{type(exc).__name__}: {exc}"
                return await self._record(spec, "failed", error=error, attempts=attempt)
            self.active.add(spec.name)
            return await self._record(spec, "active", error=None, attempts=attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def provision(self, specs: Sequence[SubscriptionSpec]) -> list[dict[str, Any]]:
        """Provision every spec (active ones are checked again: creation is idempotent)."""
        return [await self.ensure(spec) for spec in specs]

    async def require(self, specs: Sequence[SubscriptionSpec]) -> None:
        """Make sure these subscriptions exist before anything is published to their topics;
        Unavailable, naming them, if one cannot be created now (the publisher retries)."""
        failed = []
        for spec in specs:
            if spec.name in self.active:
                continue
            record = await self.ensure(spec)
            if record["state"] != "active":
                failed.append(f"{spec.name}: {record['error']}")
        if failed:
            raise Unavailable(
                "subscriptions are not ready, so the event was not accepted: " + "; ".join(failed),
                details={"subscriptions": failed},
            )

    async def list(self, *, limit: int = 100, cursor: str | None = None) -> Page:
        page = await self.documents.list(self.collection(), limit=limit, cursor=cursor)
        items = [{k: v for k, v in item.items() if k != "_id"} for item in page.items]
        return Page(items=items, next_cursor=page.next_cursor)
