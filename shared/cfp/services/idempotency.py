"""Idempotent creates: a client that sends `Idempotency-Key` with a create may retry it safely.

Per principal and route (method, path and tenant), a key is kept 24 hours in
`idempotency/{sha256(principal|method|path|tenant|key)}`: the same key with the same body gets the
first answer again (status and body) without the action running twice; with another body, 409.

A key is reserved before the action runs (a create of its document, or a compare-and-set of an
expired one), so two concurrent requests with one key cannot both run it: the second gets 409
`idempotency_key_in_use` and retries later. The first stores its answer when it succeeds; when it
fails (an error, a non-2xx answer) the reservation is released, since an error changed nothing
and a retry should run again. A reservation whose request never finished (the process died) is
taken over after `PENDING_LEASE`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import rfc8785

from cfp.domain.documents import CompareAndSet, CreateDoc, DeleteDoc, Filter
from cfp.errors import BadRequest, Conflict
from cfp.ports import DocumentStore

IDEMPOTENCY = "idempotency"
RETENTION = 24 * 3600
PENDING_LEASE = 300.0  # Cloud Run's default request timeout: no request runs longer
MAX_KEY = 255
# printable ASCII (a structured-field string, as draft-ietf-httpapi-idempotency-key-header has it),
# neither starting nor ending with a space, which a header value would lose
KEY_PATTERN = rf"^[!-~]([ -~]{{0,{MAX_KEY - 2}}}[!-~])?$"
_KEY = re.compile(KEY_PATTERN)
_ATTEMPTS = 4  # reads after a lost race for the reservation, then "in use"


class IdempotencyKeyReused(Conflict):
    """The key was used for this route with another body: a client bug, not a race."""

    code, retryable = "idempotency_key_reused", False


class IdempotencyKeyInUse(Conflict):
    """A request with this key is still running; retry when it has answered."""

    code, retryable = "idempotency_key_in_use", True


@dataclass(frozen=True, slots=True)
class RequestKey:
    """What an idempotency key is scoped to: its principal and route."""

    principal: str
    method: str
    path: str
    tenant: str | None
    key: str

    def document(self) -> str:
        parts = (self.principal, self.method.upper(), self.path, self.tenant or "", self.key)
        return f"{IDEMPOTENCY}/{hashlib.sha256('|'.join(parts).encode()).hexdigest()}"


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer as it is kept and replayed: its status, JSON body and the headers that matter."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def body_hash(raw: bytes) -> str:
    """SHA-256 of a body, as RFC 8785 canonical JSON when it is JSON: the same object sent with
    other spacing or key order is the same body."""
    try:
        canonical = rfc8785.dumps(json.loads(raw))
    except (ValueError, TypeError, rfc8785.CanonicalizationError):
        canonical = raw
    return hashlib.sha256(canonical).hexdigest()


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise BadRequest(
            f"Idempotency-Key is 1 to {MAX_KEY} printable ASCII characters",
            details={"header": "Idempotency-Key"},
        )
    return key


class Idempotency:
    """Runs an action at most once per key within the retention window."""

    def __init__(self, documents: DocumentStore, *, clock: Callable[[], float] = time.time) -> None:
        self.documents = documents
        self.clock = clock

    async def run(
        self, request: RequestKey, body: bytes, action: Callable[[], Awaitable[Reply]]
    ) -> tuple[Reply, bool]:
        """The reply of `action`, or of its first run with this key and body; True when it is
        replayed. IdempotencyKeyReused (409) for another body, IdempotencyKeyInUse (409) while
        the first request is still running."""
        check_key(request.key)
        path = request.document()
        digest = body_hash(body)
        now = self.clock()
        token = secrets.token_hex(12)
        reservation = {
            "state": "pending",
            "token": token,
            "body_hash": digest,
            "status": None,
            "body": None,
            "headers": {},
            "created_at": now,
            "expires_at": now + RETENTION,
        }
        for _ in range(_ATTEMPTS):
            stored = await self.documents.get(path)
            if stored is None:
                write: CreateDoc | CompareAndSet = CreateDoc(path, reservation)
            elif stored["expires_at"] <= now or (
                stored["state"] == "pending" and stored["created_at"] + PENDING_LEASE <= now
            ):
                write = CompareAndSet(path, stored["token"], reservation, "token")
            elif stored["body_hash"] != digest:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was used with another body; use a new key for a new "
                    "request",
                    details={"header": "Idempotency-Key"},
                )
            elif stored["state"] == "pending":
                raise _in_use()
            else:
                return Reply(stored["status"], stored["body"], dict(stored["headers"])), True
            try:
                await self.documents.apply([write])
                break
            except Conflict:
                continue  # another request reserved or answered meanwhile: read what it did
        else:
            raise _in_use()
        try:
            reply = await action()
        except BaseException:
            with contextlib.suppress(Exception):
                await self._release(path, token)
            raise
        if not 200 <= reply.status < 300:
            await self._release(path, token)
            return reply, False
        done = {
            **reservation,
            "state": "done",
            "status": reply.status,
            "body": reply.body,
            "headers": reply.headers,
        }
        with contextlib.suppress(Conflict):  # taken over after the lease: this reply stands
            await self.documents.apply([CompareAndSet(path, token, done, "token")])
        return reply, False

    async def _release(self, path: str, token: str) -> None:
        """Forget a reservation that is still ours, so that a retry runs the action."""
        released = {"state": "released", "token": token, "created_at": 0.0, "expires_at": 0.0}
        with contextlib.suppress(Conflict):
            await self.documents.apply([CompareAndSet(path, token, released, "token")])

    async def purge_expired(self, *, batch: int = 200) -> int:
        """Delete the keys past their retention; returns how many."""
        removed = 0
        while True:
            page = await self.documents.list(
                IDEMPOTENCY, where=[Filter("expires_at", "<=", self.clock())], limit=batch
            )
            if not page.items:
                return removed
            await self.documents.apply(
                [DeleteDoc(f"{IDEMPOTENCY}/{item['_id']}") for item in page.items]
            )
            removed += len(page.items)


def _in_use() -> IdempotencyKeyInUse:
    return IdempotencyKeyInUse(
        "a request with this Idempotency-Key is still running; retry when it has answered",
        details={"header": "Idempotency-Key"},
    )
