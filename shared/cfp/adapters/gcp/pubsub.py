"""The EventQueue on Google Cloud: Pub/Sub carries events, Firestore keeps the ledger.

Pub/Sub is the transport: a topic per CFP topic, a subscription per (topic, step) with a
dead-letter topic as its backstop, message attributes carrying tenant, project, environment,
trace, correlation and event ids, and ordering keys for the topics of fifo steps. A message is
acknowledged only after it is recorded in the ledger, so nothing is lost between the two.

The ledger is a set of documents reached through the DocumentStore port (Firestore in Google
Cloud): every accepted event, one delivery per (step, event id) with its attempts, lease and due
time, a done marker per (step, event id) written in the same transaction as the step's effects,
and the dead letters. Because the ledger, not Pub/Sub, counts attempts and decides when a
delivery is due, `maxRetries` is exact (Pub/Sub's own dead-letter policy allows only 5-100
attempts and stays a backstop), `delaySeconds` and retry backoff are honoured to the second, and
a crashed process's leases are taken over at once.

Two ways in: a long-running worker pulls (`lease` drains the step's subscriptions into the
ledger, then leases from it), and a Cloud Run function receives pushes (`record_attempt` counts
the attempt, `commit` records the effects, `park` keeps a dead letter).

Emits committed by a step are stored in the same transaction and published right after it; an
event stored but not yet published (the process died in between) is published again by
`recover`, and its id makes the second copy harmless.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
import warnings
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cfp.adapters.processes import pid_alive
from cfp.domain.documents import (
    CompareAndSet,
    CreateDoc,
    DeleteDoc,
    Filter,
    Increment,
    Page,
    SetDoc,
    Write,
    doc_id,
)
from cfp.domain.events import Delivery, Event
from cfp.domain.naming import PubSubNames, SubscriptionSpec, subscription_specs
from cfp.errors import BadRequest, Conflict, NotFound, Unavailable
from cfp.ports import BlobStore, DocumentStore, Subscription

# A worker's pull must not wait when a subscription is empty: it polls many subscriptions in
# turn. `return_immediately` does exactly that (and the emulator honours it); the client calls it
# deprecated because Google may answer empty while messages exist, which a poll loop tolerates.
warnings.filterwarnings(
    "ignore", message="The return_immediately flag is deprecated", category=DeprecationWarning
)

HEARTBEAT_STALE_AFTER = 30.0
UNPUBLISHED_GRACE = 30.0  # an event older than this and still unpublished is republished
PULL_BATCH = 100
DEFAULT_INLINE_LIMIT = 256 * 1024  # larger payloads go to the blob store as a payload_ref
ACK_DEADLINE = 60  # seconds Pub/Sub waits for the ack of a pulled message (it is recorded first)
PAGE = 500


def due_key(due_at: float, seq: str) -> str:
    """Due time then publish order as one string that sorts like the pair, so a single
    range query returns deliveries in the order they are due (ties broken by seq)."""
    return f"{max(0.0, due_at):020.6f}|{seq}"


@dataclass
class _Ledger:
    """Document paths of the queue's ledger under one project environment's root."""

    root: str

    def event(self, event_id: str) -> str:
        return f"{self.root}/queue_events/{doc_id(event_id)}"

    def events(self) -> str:
        return f"{self.root}/queue_events"

    def deliveries(self, step: str) -> str:
        return f"{self.root}/queue_steps/{doc_id(step)}/deliveries"

    def delivery(self, step: str, event_id: str) -> str:
        return f"{self.deliveries(step)}/{doc_id(event_id)}"

    def done(self, step: str, event_id: str) -> str:
        return f"{self.root}/queue_steps/{doc_id(step)}/done/{doc_id(event_id)}"

    def attempts(self, step: str, event_id: str) -> str:
        return f"{self.root}/queue_steps/{doc_id(step)}/attempts/{doc_id(event_id)}"

    def dead_letters(self) -> str:
        return f"{self.root}/queue_dead"

    def dead_letter(self, dead_id: str) -> str:
        return f"{self.root}/queue_dead/{doc_id(dead_id)}"

    def owners(self) -> str:
        return f"{self.root}/queue_owners"

    def owner(self, owner: str) -> str:
        return f"{self.root}/queue_owners/{doc_id(owner)}"


@dataclass
class PubSubClients:
    """The Google clients the queue uses, built lazily; `emulator_host` selects an insecure
    channel to the Pub/Sub emulator instead of Google's endpoint."""

    project: str
    emulator_host: str | None = None
    _publisher: Any = field(default=None, repr=False)
    _subscriber: Any = field(default=None, repr=False)

    @property
    def publisher(self) -> Any:
        if self._publisher is None:
            from google.cloud import pubsub_v1

            options = pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
            kwargs: dict[str, Any] = {"publisher_options": options}
            if self.emulator_host:
                import grpc
                from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

                channel = grpc.insecure_channel(self.emulator_host)
                kwargs["transport"] = PublisherGrpcTransport(channel=channel)
            self._publisher = pubsub_v1.PublisherClient(**kwargs)
        return self._publisher

    @property
    def subscriber(self) -> Any:
        if self._subscriber is None:
            from google.cloud import pubsub_v1

            kwargs: dict[str, Any] = {}
            if self.emulator_host:
                import grpc
                from google.pubsub_v1.services.subscriber.transports import (
                    SubscriberGrpcTransport,
                )

                channel = grpc.insecure_channel(self.emulator_host)
                kwargs["transport"] = SubscriberGrpcTransport(channel=channel)
            self._subscriber = pubsub_v1.SubscriberClient(**kwargs)
        return self._subscriber

    def topic_path(self, topic_id: str) -> str:
        return f"projects/{self.project}/topics/{topic_id}"

    def subscription_path(self, name: str) -> str:
        return f"projects/{self.project}/subscriptions/{name}"

    def close(self) -> None:
        if self._subscriber is not None:
            self._subscriber.close()
            self._subscriber = None
        if self._publisher is not None:
            transport = getattr(self._publisher, "_transport", None)
            self._publisher.stop()
            if transport is not None:
                transport.close()
            self._publisher = None


class PubSubAdmin:
    """Idempotent creation of topics, subscriptions and dead-letter wiring. Errors keep Google's
    exception types; callers (the subscription lifecycle) decide what is transient."""

    def __init__(self, clients: PubSubClients) -> None:
        self.clients = clients

    def ensure_topic(self, topic_id: str) -> None:
        from google.api_core import exceptions

        try:
            self.clients.publisher.create_topic(name=self.clients.topic_path(topic_id))
        except exceptions.AlreadyExists:
            pass

    def ensure_subscription(self, spec: SubscriptionSpec) -> None:
        """Create the dead-letter topic and its keeper subscription, the topic, and the step's
        subscription with its dead-letter policy; an existing one is updated to match."""
        from google.api_core import exceptions

        for topic_id in (spec.dead_letter_topic_id, spec.topic_id):
            self.ensure_topic(topic_id)
        keeper = {
            "name": self.clients.subscription_path(f"{spec.dead_letter_topic_id}.keep"),
            "topic": self.clients.topic_path(spec.dead_letter_topic_id),
            "ack_deadline_seconds": 60,
        }
        try:  # a subscription on the dead-letter topic, so dead-lettered messages are retained
            self.clients.subscriber.create_subscription(request=keeper)
        except exceptions.AlreadyExists:
            pass
        request: dict[str, Any] = {
            "name": self.clients.subscription_path(spec.name),
            "topic": self.clients.topic_path(spec.topic_id),
            "ack_deadline_seconds": ACK_DEADLINE,
            "enable_message_ordering": spec.fifo,
            "dead_letter_policy": {
                "dead_letter_topic": self.clients.topic_path(spec.dead_letter_topic_id),
                "max_delivery_attempts": spec.max_delivery_attempts,
            },
            "retry_policy": {
                "minimum_backoff": {"seconds": 1},
                "maximum_backoff": {"seconds": 600},
            },
        }
        if spec.push_endpoint:
            request["push_config"] = {"push_endpoint": spec.push_endpoint}
        try:
            self.clients.subscriber.create_subscription(request=request)
        except exceptions.AlreadyExists:
            self._update(spec, request)

    def _update(self, spec: SubscriptionSpec, request: dict[str, Any]) -> None:
        """Bring an existing subscription's mutable settings in line (ordering cannot change)."""
        current = self.clients.subscriber.get_subscription(subscription=request["name"])
        if current.topic != request["topic"]:
            raise Conflict(
                f"subscription {spec.name} exists on another topic ({current.topic})",
                details={"subscription": spec.name, "topic": current.topic},
            )
        wanted_push = spec.push_endpoint or ""
        same = (
            current.ack_deadline_seconds == ACK_DEADLINE
            and current.dead_letter_policy.dead_letter_topic
            == request["dead_letter_policy"]["dead_letter_topic"]
            and current.dead_letter_policy.max_delivery_attempts == spec.max_delivery_attempts
            and current.push_config.push_endpoint == wanted_push
        )
        if same:
            return
        update = {k: v for k, v in request.items() if k not in {"enable_message_ordering"}}
        update.setdefault("push_config", {})
        paths = ["ack_deadline_seconds", "dead_letter_policy", "retry_policy", "push_config"]
        self.clients.subscriber.update_subscription(
            request={"subscription": update, "update_mask": {"paths": paths}}
        )

    def delete_subscription(self, name: str) -> None:
        from google.api_core import exceptions

        try:
            self.clients.subscriber.delete_subscription(
                subscription=self.clients.subscription_path(name)
            )
        except exceptions.NotFound:
            pass


TRANSIENT = (
    "ServiceUnavailable",
    "DeadlineExceeded",
    "InternalServerError",
    "Aborted",
    "ResourceExhausted",
    "TooManyRequests",
    "Unknown",
    "GatewayTimeout",
    "BadGateway",
)


class PubSubProvisioner:
    """The Provisioner port on Pub/Sub: Google's transient errors become `Unavailable`."""

    def __init__(self, admin: PubSubAdmin) -> None:
        self.admin = admin

    async def ensure(self, spec: SubscriptionSpec) -> None:
        try:
            await asyncio.to_thread(self.admin.ensure_subscription, spec)
        except Exception as exc:
            if type(exc).__name__ in TRANSIENT or isinstance(exc, TimeoutError | ConnectionError):
                raise Unavailable(f"Pub/Sub: {exc}") from exc
            raise


class PubSubEventQueue:
    """EventQueue on Pub/Sub (transport) and a DocumentStore ledger (Firestore in production)."""

    def __init__(
        self,
        *,
        documents: DocumentStore,
        clients: PubSubClients,
        names: PubSubNames,
        root: str,
        blobs: BlobStore | None = None,
        inline_limit: int = DEFAULT_INLINE_LIMIT,
        attributes: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.documents = documents
        self.clients = clients
        self.admin = PubSubAdmin(clients)
        self.names = names
        self.ledger = _Ledger(root)
        self.blobs = blobs
        self.inline_limit = inline_limit
        self.attributes = dict(attributes or {})  # tenant, project, env on every message
        self.clock = clock
        self.owner = uuid.uuid4().hex
        self.host = socket.gethostname()
        self._subs: dict[str, list[Subscription]] = defaultdict(list)
        self._by_step: dict[str, list[Subscription]] = defaultdict(list)
        self._listeners: list[Callable[[set[str]], None]] = []
        self._provisioned: set[str] = set()  # subscription names known to exist
        # Set by the composition root to the subscription lifecycle's `require`, so creation
        # on first use is recorded and retried like provisioning at start.
        self.require: Callable[[list[SubscriptionSpec]], Awaitable[None]] | None = None
        # A Cloud Run function receives pushes to subscriptions its deploy made (push endpoint
        # included): it only makes sure the topics it publishes to exist.
        self.manage_subscriptions = True
        self._registered = False
        self._seq = 0

    # -- subscriptions ------------------------------------------------------------------

    def set_subscriptions(self, subscriptions: Sequence[Subscription]) -> None:
        self._subs = defaultdict(list)
        self._by_step = defaultdict(list)
        for sub in subscriptions:
            self._subs[sub.topic].append(sub)
            self._by_step[sub.step].append(sub)

    def specs(self, push_endpoints: dict[str, str] | None = None) -> list[SubscriptionSpec]:
        """The Pub/Sub subscriptions the declared steps need, named as `cfp build` names them."""
        declared = [
            (s.topic, s.step, s.fifo, s.max_retries) for subs in self._subs.values() for s in subs
        ]
        return subscription_specs(declared, self.names, push_endpoints)

    def mark_provisioned(self, names: Sequence[str]) -> None:
        """Record subscriptions the lifecycle service created, so use skips re-creating them."""
        self._provisioned.update(names)

    async def _ensure(self, topics: Sequence[str] = ()) -> None:
        """Create any declared subscription (and the given topics) not yet known to exist:
        a message published before its subscription exists would reach no one."""
        missing = [s for s in self.specs() if s.name not in self._provisioned]
        if missing and self.manage_subscriptions:
            if self.require is not None:
                await self.require(missing)
            else:
                for spec in missing:
                    await asyncio.to_thread(self.admin.ensure_subscription, spec)
            self._provisioned.update(s.name for s in missing)
        for topic in topics:
            key = f"topic:{topic}"
            if key not in self._provisioned:
                await asyncio.to_thread(self.admin.ensure_topic, self.names.topic(topic))
                self._provisioned.add(key)

    def on_publish(self, listener: Callable[[set[str]], None]) -> None:
        """Call `listener(steps)` after this process published events those steps receive."""
        self._listeners.append(listener)

    def _notify(self, steps: set[str]) -> None:
        if steps:
            for listener in self._listeners:
                listener(steps)

    # -- publishing ---------------------------------------------------------------------

    async def _stored(self, event: Event) -> dict[str, Any]:
        """The event as the ledger keeps it: data inline, or in the blob store by reference."""
        body = event.to_dict()
        body["seq"] = self._next_seq(event.created_at)  # publish order, for fifo and ties
        raw = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False).encode()
        if len(raw) > self.inline_limit:
            if self.blobs is None:
                raise BadRequest(
                    f"event {event.id} on {event.topic!r} is {len(raw)} bytes, over the "
                    f"{self.inline_limit}-byte inline limit, and no blob store is configured"
                )
            ref = f"payloads/{doc_id(event.id)}.json"
            await self.blobs.put(ref, raw, content_type="application/json")
            body["data"] = None
            body["payload_ref"] = ref
        return body

    async def load_event(self, body: dict[str, Any]) -> Event:
        """An Event from its stored form, fetching a referenced payload."""
        body = dict(body)
        body.pop("seq", None)
        ref = body.pop("payload_ref", None)
        event = Event.from_dict(body)
        if ref:
            if self.blobs is None:
                raise NotFound(f"event {event.id} has payload_ref {ref} but no blob store is set")
            event.data = json.loads(await self.blobs.get(ref))
        return event

    def _attributes(self, body: dict[str, Any]) -> dict[str, str]:
        attrs = {
            **self.attributes,
            # not "topic": publish() takes the Pub/Sub topic under that name
            "event_topic": body["topic"],
            "event_id": body["id"],
            "trace_id": body.get("trace_id") or "",
            "correlation_id": body.get("correlation_id") or "",
            "traceparent": body.get("traceparent") or "",
            "created_at": repr(float(body.get("created_at") or 0.0)),
        }
        for name in ("message_group_id", "source_step", "payload_ref", "seq"):
            if body.get(name):
                attrs[name] = str(body[name])
        return attrs

    def _ordering_key(self, body: dict[str, Any]) -> str:
        if any(s.fifo for s in self._subs.get(body["topic"], ())):
            return body.get("message_group_id") or "_"  # one group for events without one
        return ""

    async def _send(self, bodies: Sequence[dict[str, Any]]) -> None:
        """Publish stored events to Pub/Sub, then mark them published in the ledger."""
        if not bodies:
            return
        await self._ensure([b["topic"] for b in bodies])

        def send() -> None:
            publisher = self.clients.publisher
            futures = []
            for body in bodies:
                topic_path = self.clients.topic_path(self.names.topic(body["topic"]))
                data = b"" if body.get("payload_ref") else json.dumps(body["data"]).encode()
                key = self._ordering_key(body)
                future = publisher.publish(
                    topic_path, data, ordering_key=key, **self._attributes(body)
                )
                futures.append((topic_path, key, future))
            errors = []
            for topic_path, key, future in futures:
                try:
                    future.result(timeout=60)
                except Exception as exc:  # collected, the first raised below
                    errors.append(exc)
                    if key:  # an ordering key stops after a failure until resumed
                        publisher.resume_publish(topic_path, key)
            if errors:
                raise errors[0]

        await asyncio.to_thread(send)
        await self.documents.apply(
            [SetDoc(self.ledger.event(b["id"]), self._event_doc(b, published=True)) for b in bodies]
        )
        steps = {s.step for b in bodies for s in self._subs.get(b["topic"], ())}
        self._notify(steps)

    @staticmethod
    def _event_doc(body: dict[str, Any], *, published: bool) -> dict[str, Any]:
        return {
            "event": body,
            "topic": body["topic"],
            "created_at": body["created_at"],
            "published": published,
        }

    async def publish(self, events: Sequence[Event]) -> list[str]:
        now = self.clock()
        accepted: list[dict[str, Any]] = []
        seen: set[str] = set()
        for event in events:
            if event.id in seen:
                continue
            seen.add(event.id)
            if not event.created_at:
                event.created_at = now
            body = await self._stored(event)
            try:
                await self.documents.apply(
                    [CreateDoc(self.ledger.event(event.id), self._event_doc(body, published=False))]
                )
            except Conflict:
                continue
            accepted.append(body)
        await self._send(accepted)
        return [b["id"] for b in accepted]

    async def get_event(self, event_id: str) -> Event | None:
        doc = await self.documents.get(self.ledger.event(event_id))
        return None if doc is None else await self.load_event(doc["event"])

    async def commit(
        self,
        *,
        step: str,
        event_id: str,
        writes: Sequence[Write],
        emits: Sequence[Event],
        delivery: Delivery | None = None,
    ) -> bool:
        now = self.clock()
        bodies = []
        for event in emits:
            if not event.created_at:
                event.created_at = now
            bodies.append(await self._stored(event))
        done = self.ledger.done(step, event_id)
        ops: list[Write] = [
            CreateDoc(done, {"at": now}),
            *writes,
            *[
                CreateDoc(self.ledger.event(b["id"]), self._event_doc(b, published=False))
                for b in bodies
            ],
            DeleteDoc(self.ledger.delivery(step, event_id)),
            DeleteDoc(self.ledger.attempts(step, event_id)),
        ]
        try:
            await self.documents.apply(ops)
        except Conflict:
            if await self.documents.get(done) is None:
                raise
            # Already committed (a redelivery): drop the delivery, and publish any emit that
            # the first commit stored but did not get to publish.
            await self.documents.apply([DeleteDoc(self.ledger.delivery(step, event_id))])
            await self._republish([b["id"] for b in bodies])
            if delivery is not None:
                self._notify({step})
            return False
        await self._send(bodies)
        return True

    async def _republish(self, event_ids: Sequence[str]) -> int:
        unpublished = []
        for event_id in event_ids:
            doc = await self.documents.get(self.ledger.event(event_id))
            if doc is not None and not doc.get("published"):
                unpublished.append(doc["event"])
        await self._send(unpublished)
        return len(unpublished)

    # -- consuming ----------------------------------------------------------------------

    def _next_seq(self, now: float) -> str:
        self._seq += 1
        return f"{int(now * 1_000_000):020d}{self._seq:010d}"

    async def _pull(self, sub: Subscription) -> list[Any]:
        name = self.clients.subscription_path(self.names.subscription(sub.step, sub.topic))

        def pull() -> list[Any]:
            response = self.clients.subscriber.pull(
                request={
                    "subscription": name,
                    "max_messages": PULL_BATCH,
                    "return_immediately": True,
                },
                timeout=30,
            )
            return list(response.received_messages)

        return await asyncio.to_thread(pull)

    async def _ack(self, sub: Subscription, ack_ids: list[str]) -> None:
        if not ack_ids:
            return
        name = self.clients.subscription_path(self.names.subscription(sub.step, sub.topic))
        await asyncio.to_thread(
            self.clients.subscriber.acknowledge,
            request={"subscription": name, "ack_ids": ack_ids},
        )

    def _message_body(self, received: Any) -> dict[str, Any]:
        message = received.message
        attrs = dict(message.attributes)
        body: dict[str, Any] = {
            "id": attrs.get("event_id") or message.message_id,
            "topic": attrs.get("event_topic") or attrs.get("topic") or "",
            "data": None,
            "trace_id": attrs.get("trace_id", ""),
            "correlation_id": attrs.get("correlation_id", ""),
            "traceparent": attrs.get("traceparent", ""),
            "message_group_id": attrs.get("message_group_id") or None,
            "source_step": attrs.get("source_step") or None,
            "created_at": float(attrs.get("created_at") or 0.0),
        }
        if attrs.get("seq"):
            body["seq"] = attrs["seq"]
        if attrs.get("payload_ref"):
            body["payload_ref"] = attrs["payload_ref"]
        else:
            body["data"] = json.loads(message.data or b"null")
        return body

    async def _ingest(self, step: str) -> None:
        """Move what Pub/Sub holds for `step` into the ledger, acknowledging what is recorded."""
        for sub in self._by_step.get(step, ()):
            received = await self._pull(sub)
            if not received:
                continue
            now = self.clock()
            ack_ids = []
            for message in received:
                try:
                    body = self._message_body(message)
                except (ValueError, TypeError):
                    body = None
                if body is None or not body["topic"]:
                    await self._park_unreadable(sub, message, now)
                    ack_ids.append(message.ack_id)
                    continue
                if await self._record(sub, body, now):
                    ack_ids.append(message.ack_id)
            await self._ack(sub, ack_ids)

    async def _record(self, sub: Subscription, body: dict[str, Any], now: float) -> bool:
        """Create the (step, event) delivery unless it exists or is done; True when settled."""
        step, event_id = sub.step, body["id"]
        if await self.documents.get(self.ledger.done(step, event_id)) is not None:
            return True
        created = body.get("created_at") or now
        delivery = {
            "event": body,
            "topic": body["topic"],
            "status": "pending",
            "due_at": max(now, created + sub.delay_seconds) if sub.delay_seconds else now,
            "due_key": "",
            "lease_until": 0.0,
            "owner": "",
            "attempts": 0,
            "group": (body.get("message_group_id") or "") if sub.fifo else None,
            "seq": body.get("seq") or self._next_seq(now),
            "rev": 0,
            "error": None,
        }
        delivery["due_key"] = due_key(delivery["due_at"], delivery["seq"])
        try:
            await self.documents.apply([CreateDoc(self.ledger.delivery(step, event_id), delivery)])
        except Conflict:
            pass  # already recorded by an earlier copy of the message
        return True

    async def _park_unreadable(self, sub: Subscription, message: Any, now: float) -> None:
        event = Event(
            topic=sub.topic,
            data={
                "attributes": dict(message.message.attributes),
                "data": repr(message.message.data),
            },
            id=f"pubsub:{message.message.message_id}",
            created_at=now,
        )
        await self.park(sub.step, event, "the Pub/Sub message is not a CFP event", "", 1)

    async def _open(self, step: str, status: str, **extra: Any) -> list[dict[str, Any]]:
        """Every delivery of `step` in `status` (paged through)."""
        out: list[dict[str, Any]] = []
        cursor = None
        where = [Filter("status", "==", status)]
        where += [Filter(k, "==", v) for k, v in extra.items()]
        while True:
            page = await self.documents.list(
                self.ledger.deliveries(step), where=where, limit=PAGE, cursor=cursor
            )
            out += page.items
            cursor = page.next_cursor
            if cursor is None:
                return out

    async def lease(self, step: str, *, limit: int) -> list[Delivery]:
        subs = self._by_step.get(step)
        if not subs:
            return []
        if not self._registered:  # leases need a live owner record for recover() to judge
            await self.heartbeat()
        await self._ensure()
        await self._ingest(step)
        fifo = any(s.fifo for s in subs)
        visibility = max(s.visibility_timeout for s in subs)
        now = self.clock()
        if fifo:
            candidates = self._fifo_heads(
                [*await self._open(step, "pending"), *await self._open(step, "leased")], now
            )
        else:
            due = await self.documents.list(
                self.ledger.deliveries(step),
                where=[
                    Filter("status", "==", "pending"),
                    Filter("due_key", "<=", due_key(now, "~")),
                ],
                order_by="due_key",
                limit=limit,
            )
            expired = await self.documents.list(
                self.ledger.deliveries(step),
                where=[Filter("status", "==", "leased"), Filter("lease_until", "<", now)],
                order_by="lease_until",
                limit=limit,
            )
            candidates = sorted([*due.items, *expired.items], key=lambda d: (d["due_at"], d["seq"]))
        leased: list[Delivery] = []
        for doc in candidates:
            if len(leased) >= limit:
                break
            taken = await self._take(step, doc, now, visibility)
            if taken is not None:
                leased.append(taken)
        return leased

    @staticmethod
    def _fifo_heads(docs: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
        heads: dict[Any, dict[str, Any]] = {}
        for doc in docs:
            group = doc.get("group") or ""
            if group not in heads or doc["seq"] < heads[group]["seq"]:
                heads[group] = doc
        due = [
            d
            for d in heads.values()
            if d["due_at"] <= now and (d["status"] == "pending" or d["lease_until"] < now)
        ]
        return sorted(due, key=lambda d: d["seq"])

    async def _take(
        self, step: str, doc: dict[str, Any], now: float, visibility: float
    ) -> Delivery | None:
        """Lease one delivery by compare-and-set on its revision; None if someone was faster."""
        stored = {k: v for k, v in doc.items() if k != "_id"}
        updated = {
            **stored,
            "status": "leased",
            "attempts": stored["attempts"] + 1,
            "owner": self.owner,
            "lease_until": now + visibility,
            "rev": stored["rev"] + 1,
        }
        path = self.ledger.delivery(step, stored["event"]["id"])
        try:
            await self.documents.apply([CompareAndSet(path, stored["rev"], updated, field="rev")])
        except Conflict:
            return None
        return Delivery(
            id=f"{doc_id(step)}/{doc_id(stored['event']['id'])}",
            step=step,
            event=await self.load_event(stored["event"]),
            attempt=updated["attempts"],
            lease_owner=self.owner,
            lease_expires_at=now + visibility,
            message_group_id=stored.get("group"),
        )

    async def _settle(self, delivery: Delivery, change: dict[str, Any]) -> dict[str, Any] | None:
        """Apply `change` to a delivery this process still holds; the new document or None."""
        path = self.ledger.delivery(delivery.step, delivery.event.id)
        for _ in range(5):
            doc = await self.documents.get(path)
            if doc is None or doc.get("owner") != delivery.lease_owner:
                return None
            if doc.get("status") != "leased":
                return None
            stored = {k: v for k, v in doc.items() if k != "_id"}
            updated = {**stored, **change, "rev": stored["rev"] + 1}
            updated["due_key"] = due_key(updated["due_at"], updated["seq"])
            try:
                await self.documents.apply(
                    [CompareAndSet(path, stored["rev"], updated, field="rev")]
                )
            except Conflict:
                continue
            return updated
        return None

    async def retry(self, delivery: Delivery, *, error: str, delay: float) -> None:
        now = self.clock()
        change = {
            "status": "pending",
            "owner": "",
            "lease_until": 0.0,
            "due_at": now + delay,
            "error": error,
        }
        await self._settle(delivery, change)
        self._notify({delivery.step})

    async def dead_letter(self, delivery: Delivery, *, error: str, traceback: str) -> None:
        now = self.clock()
        change = {"status": "dead", "owner": "", "lease_until": 0.0, "error": error}
        updated = await self._settle(delivery, change)
        if updated is None:
            return
        await self._keep_dead(
            delivery.step, updated["event"], error, traceback, updated["attempts"], now
        )
        self._notify({delivery.step})

    async def _keep_dead(
        self,
        step: str,
        body: dict[str, Any],
        error: str,
        traceback: str,
        attempts: int,
        now: float,
    ) -> str:
        """The dead letter record, and a copy on the step's dead-letter topic."""
        dead_id = f"{int(now * 1_000_000):020d}-{uuid.uuid4().hex[:12]}"
        record = {
            "step": step,
            "topic": body["topic"],
            "event_id": body["id"],
            "event": body,
            "attempts": attempts,
            "error": error,
            "traceback": traceback,
            "failed_at": now,
        }
        await self.documents.apply([SetDoc(self.ledger.dead_letter(dead_id), record)])
        await self._publish_dead(step, body, error, attempts)
        return dead_id

    async def _publish_dead(
        self, step: str, body: dict[str, Any], error: str, attempts: int
    ) -> None:
        topic_id = self.names.dead_letter_topic(step)
        attrs = {**self._attributes(body), "step": step, "error": error[:1024]}
        attrs["attempts"] = str(attempts)
        data = b"" if body.get("payload_ref") else json.dumps(body.get("data")).encode()

        def send() -> None:
            self.admin.ensure_topic(topic_id)
            self.clients.publisher.publish(self.clients.topic_path(topic_id), data, **attrs).result(
                timeout=60
            )

        await asyncio.to_thread(send)

    async def park(
        self, step: str, event: Event, error: str, traceback: str, attempts: int
    ) -> None:
        """Record a dead letter for an event delivered from outside the ledger (a push)."""
        now = self.clock()
        if not event.created_at:
            event.created_at = now
        body = await self._stored(event)
        try:
            await self.documents.apply(
                [CreateDoc(self.ledger.event(event.id), self._event_doc(body, published=True))]
            )
        except Conflict:
            pass
        path = self.ledger.delivery(step, event.id)
        existing = await self.documents.get(path)
        seq = existing["seq"] if existing else self._next_seq(now)
        delivery = {
            "event": body,
            "topic": event.topic,
            "status": "dead",
            "due_at": now,
            "lease_until": 0.0,
            "owner": "",
            "attempts": attempts,
            "group": event.message_group_id,
            "seq": seq,
            "due_key": due_key(now, seq),
            "rev": (existing["rev"] + 1) if existing else 0,
            "error": error,
        }
        await self.documents.apply([SetDoc(path, delivery)])
        await self._keep_dead(step, body, error, traceback, attempts, now)

    async def record_attempt(self, step: str, event_id: str) -> int:
        """Count one more pushed delivery of (step, event id); returns the attempt number."""
        (count,) = await self.documents.apply(
            [Increment(self.ledger.attempts(step, event_id), 1, field="count")]
        )
        return int(count)

    # -- dead letters -------------------------------------------------------------------

    @staticmethod
    def _dead_item(doc: dict[str, Any]) -> dict[str, Any]:
        body = doc["event"]
        return {
            "id": doc["_id"],
            "step": doc["step"],
            "topic": doc["topic"],
            "event_id": doc["event_id"],
            "input": body.get("data"),
            "payload_ref": body.get("payload_ref"),
            "trace_id": body.get("trace_id"),
            "attempts": doc["attempts"],
            "error": doc["error"],
            "traceback": doc["traceback"],
            "failed_at": doc["failed_at"],
        }

    async def list_dead_letters(
        self,
        *,
        step: str | None = None,
        topic: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        where = [Filter(k, "==", v) for k, v in (("step", step), ("topic", topic)) if v]
        page = await self.documents.list(
            self.ledger.dead_letters(), where=where, limit=limit, cursor=cursor
        )
        return Page(items=[self._dead_item(d) for d in page.items], next_cursor=page.next_cursor)

    async def get_dead_letter(self, dead_letter_id: str) -> dict[str, Any] | None:
        doc = await self.documents.get(self.ledger.dead_letter(dead_letter_id))
        if doc is None:
            return None
        return self._dead_item({**doc, "_id": dead_letter_id})

    async def replay(
        self, *, ids: Sequence[str] = (), step: str | None = None, topic: str | None = None
    ) -> int:
        now = self.clock()
        records: list[dict[str, Any]] = []
        if ids:
            for dead_id in dict.fromkeys(ids):
                doc = await self.documents.get(self.ledger.dead_letter(dead_id))
                if doc is not None and (not step or doc["step"] == step):
                    if not topic or doc["topic"] == topic:
                        records.append({**doc, "_id": dead_id})
        else:
            cursor = None
            while True:
                page = await self.list_dead_letters(
                    step=step, topic=topic, limit=PAGE, cursor=cursor
                )
                records += [{**i, "_id": i["id"]} for i in page.items]
                cursor = page.next_cursor
                if cursor is None:
                    break
        steps: set[str] = set()
        count = 0
        for record in records:
            dead_path = self.ledger.dead_letter(record["_id"])
            path = self.ledger.delivery(record["step"], record["event_id"])
            doc = await self.documents.get(path)
            if doc is None or doc.get("status") != "dead":
                await self.documents.apply([DeleteDoc(dead_path)])
                continue
            stored = {k: v for k, v in doc.items() if k != "_id"}
            updated = {
                **stored,
                "status": "pending",
                "attempts": 0,
                "due_at": now,
                "due_key": due_key(now, stored["seq"]),
                "error": None,
                "rev": stored["rev"] + 1,
            }
            try:
                await self.documents.apply(
                    [CompareAndSet(path, stored["rev"], updated, field="rev"), DeleteDoc(dead_path)]
                )
            except Conflict:
                continue
            count += 1
            steps.add(record["step"])
        self._notify(steps)
        return count

    # -- operations ---------------------------------------------------------------------

    async def stats(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        await self._ensure()
        for step in self._by_step:
            await self._ingest(step)  # what Pub/Sub still holds is pending too
            out[step] = {
                "pending": len(await self._open(step, "pending")),
                "in_flight": len(await self._open(step, "leased")),
                "dead": len(await self._open(step, "dead")),
            }
        return out

    async def heartbeat(self) -> None:
        await self.documents.apply(
            [
                SetDoc(
                    self.ledger.owner(self.owner),
                    {"pid": os.getpid(), "host": self.host, "heartbeat": self.clock()},
                )
            ]
        )
        self._registered = True

    async def recover(self) -> int:
        """Free leases of owners whose process is gone (same host) or silent (other hosts),
        and publish events that were stored but never published."""
        if not self._registered:
            await self.heartbeat()
        now = self.clock()
        released = 0
        page = await self.documents.list(self.ledger.owners(), limit=PAGE)
        for owner in page.items:
            if owner["_id"] == doc_id(self.owner):
                continue
            gone = owner.get("host") == self.host and not pid_alive(int(owner.get("pid", 0)))
            if gone or now - float(owner.get("heartbeat", 0)) > HEARTBEAT_STALE_AFTER:
                from cfp.domain.documents import raw_id

                released += await self._release(raw_id(owner["_id"]), now)
                await self.documents.apply([DeleteDoc(self.ledger.owner(raw_id(owner["_id"])))])
        stale = await self.documents.list(
            self.ledger.events(),
            where=[
                Filter("published", "==", False),
                Filter("created_at", "<", now - UNPUBLISHED_GRACE),
            ],
            order_by="created_at",
            limit=PAGE,
        )
        await self._send([d["event"] for d in stale.items])
        if released:
            self._notify(set(self._by_step))
        return released

    async def _release(self, owner: str, now: float) -> int:
        released = 0
        for step in self._by_step:
            for doc in await self._open(step, "leased", owner=owner):
                stored = {k: v for k, v in doc.items() if k != "_id"}
                updated = {
                    **stored,
                    "status": "pending",
                    "owner": "",
                    "lease_until": 0.0,
                    "rev": stored["rev"] + 1,
                }
                path = self.ledger.delivery(step, stored["event"]["id"])
                try:
                    await self.documents.apply(
                        [CompareAndSet(path, stored["rev"], updated, field="rev")]
                    )
                except Conflict:
                    continue
                released += 1
        return released

    async def close(self) -> None:
        """Give this process's unfinished leases back at once, so no one waits for them."""
        try:
            await self._release(self.owner, self.clock())
            await self.documents.apply([DeleteDoc(self.ledger.owner(self.owner))])
        finally:
            self.clients.close()  # quick; and at interpreter exit no thread can run it
