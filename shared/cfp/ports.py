"""The ports services depend on. Adapters in `cfp.adapters.local` and `cfp.adapters.gcp` implement
them; the contract suites in `tests/contract/` hold every adapter to the same behaviour."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from cfp.domain.documents import Filter, Page, Write
from cfp.domain.events import Delivery, Event
from cfp.domain.naming import SubscriptionSpec
from cfp.errors import BadRequest


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


class Provisioner(Protocol):
    """Creates what a subscription needs in the event backend (Pub/Sub topics, subscriptions
    and dead-letter wiring; nothing for the embedded queue). `ensure` is idempotent and raises
    `Unavailable` for a transient failure worth retrying, anything else for a lasting one."""

    async def ensure(self, spec: SubscriptionSpec) -> None: ...


class BlobStore(Protocol):
    """Opaque bytes by key (GCS objects; local files). Keys are relative '/'-separated paths
    with no empty, '.' or '..' segment; anything else is a BadRequest on every store.

    Signed URLs (direct upload/download by a browser) are not part of this port: only
    `cfp.adapters.gcp.storage.GcsBlobStore.signed_url` offers them; locally the API streams the
    bytes itself."""

    async def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> None: ...

    async def create(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> None:
        """Store `data` under `key` only if nothing is there: Conflict otherwise, atomically
        (write-once objects: audit anchors)."""
        ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...

    async def list(self, prefix: str = "") -> list[str]: ...


# Ed25519 where the key service offers it; ECDSA P-256 over SHA-256 otherwise.
SigningAlgorithm = Literal["ed25519", "ecdsa-p256-sha256"]

# The most a key service takes in one request (Cloud KMS: plaintext, AAD and signed data).
KEY_SERVICE_MAX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class PublicKey:
    """The public half of one version of a signing key. Keep it with what it signed: a
    destroyed key no longer hands it out."""

    key_id: str
    version: int
    algorithm: SigningAlgorithm
    pem: str  # SubjectPublicKeyInfo

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether `signature` (Ed25519: 64 raw bytes; ECDSA: DER) signs `message` with this key."""
        # Imported here: most importers of the ports never verify anything.
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519

        key = serialization.load_pem_public_key(self.pem.encode())
        try:
            if self.algorithm == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, message)
                return True
            if (
                self.algorithm == "ecdsa-p256-sha256"
                and isinstance(key, ec.EllipticCurvePublicKey)
                and isinstance(key.curve, ec.SECP256R1)
            ):
                key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
                return True
        except InvalidSignature:
            return False
        return False


@dataclass(frozen=True, slots=True)
class Signature:
    """A signature with the key version that made it: verify with `public_key(key_id, version)`."""

    key_id: str
    version: int
    algorithm: SigningAlgorithm
    value: bytes


class KeyService(Protocol):
    """Keys per tenant (Cloud KMS; the local keyring): encryption keys for envelope encryption,
    signing keys for tokens and audit checkpoints. A key id names one key of one purpose; using
    it for the other purpose is a BadRequest (code `wrong_key_purpose`). Ids are 1-63 of
    `[A-Za-z0-9_-]` (Cloud KMS's rule, applied everywhere); `aad` and signed messages are at most
    KEY_SERVICE_MAX_BYTES. A destroyed key raises KeyDestroyed for every use, creation included.
    """

    async def create_key(self, key_id: str) -> str:
        """Create an encryption key if absent; returns its id either way."""
        ...

    async def encrypt(self, key_id: str, plaintext: bytes, *, aad: bytes = b"") -> bytes: ...

    async def decrypt(self, key_id: str, ciphertext: bytes, *, aad: bytes = b"") -> bytes: ...

    async def rotate_key(self, key_id: str) -> int:
        """Add a key version and make it current; older versions still decrypt (and their
        public keys stay available). Returns the new version."""
        ...

    async def destroy_key(self, key_id: str) -> None:
        """Destroy every version (crypto-shredding); destroying twice is harmless."""
        ...

    async def create_signing_key(self, key_id: str) -> PublicKey:
        """Create an asymmetric signing key if absent; its current public key either way."""
        ...

    async def sign(self, key_id: str, message: bytes) -> Signature:
        """Sign `message` with the key's current version."""
        ...

    async def public_key(self, key_id: str, version: int | None = None) -> PublicKey:
        """The public key of `version` (default: the current one)."""
        ...


@dataclass(frozen=True, slots=True)
class Schedule:
    step: str
    cron: str


TickHandler = Callable[[Schedule, float], Awaitable[None]]


class Scheduler(Protocol):
    """Calls `fire(schedule, scheduled_at)` at each tick of each schedule (in-process locally;
    Cloud Scheduler jobs in Google Cloud)."""

    async def run(self, schedules: Sequence[Schedule], fire: TickHandler) -> None: ...


# -- task queue (Cloud Tasks) ----------------------------------------------------------------

# Cloud Tasks' rules for ids, applied by every adapter so a name that works locally works there.
TASK_NAME = re.compile(r"[A-Za-z0-9_-]{1,500}")
QUEUE_NAME = re.compile(r"[A-Za-z0-9-]{1,100}")
MAX_TASK_BYTES = 1_000_000  # Cloud Tasks' limit on a task's size; larger payloads go by reference


def task_name(*parts: object) -> str:
    """A task name for `parts` (e.g. step, event id, attempt): the same parts always give the same
    name, so enqueuing the same work twice is refused. It starts with a hash of the parts, as
    Cloud Tasks asks of named tasks so they spread evenly, and keeps only allowed characters."""
    raw = "-".join(str(part) for part in parts)
    digest = hashlib.sha256(raw.encode()).hexdigest()[:12]
    return f"{digest}-{re.sub(r'[^A-Za-z0-9_-]', '_', raw)}"[:500]


def check_queue_name(queue: str) -> str:
    """`queue` if it is a valid queue id (1-100 letters, digits, hyphens); else BadRequest."""
    if not QUEUE_NAME.fullmatch(queue):
        raise BadRequest(
            "a queue name is 1-100 letters, digits or hyphens", details={"queue": queue}
        )
    return queue


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """An HTTP task: from `schedule_at` (epoch seconds; None: now) POST `body` with `headers` to
    `url`, again with the queue's backoff until the target answers 2xx. A `name` (1-500 letters,
    digits, `-` or `_`) deduplicates: while a task of that name is queued, and for a while after
    it ran or was deleted (Cloud Tasks: about an hour), another one of that name is refused."""

    name: str | None = None
    url: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    schedule_at: float | None = None

    def __post_init__(self) -> None:
        if self.name is not None and not TASK_NAME.fullmatch(self.name):
            raise BadRequest(
                "a task name is 1-500 letters, digits, hyphens or underscores",
                details={"name": self.name},
            )
        if not self.url.startswith(("http://", "https://")):
            raise BadRequest("a task's url is http(s)", details={"url": self.url})
        if len(self.body) + sum(len(k) + len(v) for k, v in self.headers.items()) > MAX_TASK_BYTES:
            raise BadRequest(
                f"a task is at most {MAX_TASK_BYTES} bytes: pass a large payload by reference",
                details={"name": self.name, "body_bytes": len(self.body)},
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueSettings:
    """A queue's retries and rate limits: Cloud Tasks' RetryConfig and RateLimits, with its
    defaults. `max_attempts` counts the first attempt too; None retries without end."""

    max_attempts: int | None = 100
    min_backoff: float = 0.1
    max_backoff: float = 3600.0
    max_doublings: int = 16
    max_dispatches_per_second: float = 500.0
    max_concurrent_dispatches: int = 1000

    def __post_init__(self) -> None:
        problems = []
        if self.max_attempts is not None and self.max_attempts < 1:
            problems.append("max_attempts is at least 1 (None: no limit)")
        if not 0 <= self.min_backoff <= self.max_backoff:
            problems.append("0 <= min_backoff <= max_backoff")
        if self.max_doublings < 0:
            problems.append("max_doublings is at least 0")
        if not 0 < self.max_dispatches_per_second <= 500:
            problems.append("max_dispatches_per_second is in (0, 500]")
        if not 1 <= self.max_concurrent_dispatches <= 5000:
            problems.append("max_concurrent_dispatches is in [1, 5000]")
        if problems:
            raise BadRequest("invalid queue settings", details={"problems": problems})

    def backoff(self, retry: int) -> float:
        """Seconds before retry number `retry` (1: the first retry), as Cloud Tasks spaces them:
        doubling from min_backoff `max_doublings` times, then growing linearly, capped at
        max_backoff (min 10 s, max 300 s, 3 doublings: 10, 20, 40, 80, 160, 240, 300, 300...)."""
        k = max(retry, 1) - 1
        if k <= self.max_doublings:
            delay = self.min_backoff * 2**k
        else:
            delay = self.min_backoff * 2**self.max_doublings * (k - self.max_doublings + 1)
        return min(delay, self.max_backoff)


@dataclass(frozen=True, slots=True)
class QueuedTask:
    """A task not yet done, as `TaskQueue.list` shows it: `schedule_at` is its next dispatch."""

    name: str
    url: str
    schedule_at: float
    dispatch_count: int = 0


class TaskQueue(Protocol):
    """HTTP tasks delivered at a time and retried until they succeed (Cloud Tasks; the embedded
    SQLite queue). Delayed retries and `delaySeconds` are tasks scheduled later; a task named
    from what it does (`task_name(step, event_id, attempt)`) is enqueued at most once. A task that
    exhausts its queue's `max_attempts` is dropped, as Cloud Tasks drops it: the caller keeps
    its own dead-letter record."""

    async def ensure_queue(self, queue: str, settings: QueueSettings = QueueSettings()) -> None:
        """Create the queue, or bring its settings to these; running it twice changes nothing."""
        ...

    async def enqueue(self, queue: str, task: Task) -> bool:
        """Queue the task. False, queuing nothing, when a task of its name is queued, or ran or
        was deleted recently. NotFound if the queue was never ensured."""
        ...

    async def delete(self, queue: str, name: str) -> bool:
        """Remove a task before it runs (its name stays taken); False if none is queued."""
        ...

    async def list(self, queue: str) -> list[QueuedTask]:
        """The queue's tasks not yet done, by schedule time; NotFound for an unknown queue."""
        ...

    async def close(self) -> None: ...


class Mailer(Protocol):
    """Sends plain-text mail (invites, password resets). The local adapter writes each message
    to `<data-dir>/outbox/`; a message may carry a one-time token, so none is ever logged."""

    async def send(self, to: str, subject: str, text: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    """Who an outside identity provider says signed in: `uid` is unique within `provider`
    (e.g. `firebase:{project}`); `claims` are the token's verified claims."""

    uid: str
    email: str | None
    email_verified: bool
    provider: str
    claims: dict[str, Any] = field(default_factory=dict)


class IdentityVerifier(Protocol):
    """Verifies ID tokens an outside identity provider issued (Identity Platform / Firebase
    Auth): signature, expiry, audience, and that the provider has not revoked the session."""

    async def verify(self, token: str) -> ExternalIdentity:
        """The identity the token proves. Unauthorized with code invalid_token, token_expired
        or token_revoked (revoked, or the account disabled or deleted at the provider);
        Unavailable when the provider cannot be reached."""
        ...
