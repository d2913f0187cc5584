"""Large payloads on the Google adapters: over the inline limit an event's data goes to Cloud
Storage and travels as `payload_ref` — not in the Pub/Sub message, not in the ledger."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cfp.adapters.gcp.emulators import Emulators
from cfp.adapters.gcp.firestore import FirestoreDocumentStore
from cfp.adapters.gcp.pubsub import PubSubClients, PubSubEventQueue
from cfp.adapters.gcp.storage import GcsBlobStore
from cfp.domain.events import Event, derived_event_id
from cfp.domain.naming import PubSubNames
from cfp.domain.paths import Scope
from cfp.errors import BadRequest
from cfp.ports import Subscription

pytestmark = pytest.mark.emulator

LIMIT = 1024
BIG = {"blob": "y" * 5000, "n": 1}


class Setup:
    def __init__(self, emulators: Emulators) -> None:
        tenant = f"p{uuid.uuid4().hex[:10]}"
        self.emulators = emulators
        self.database = f"payloads-{tenant}"
        self.names = PubSubNames(tenant, "big", "dev")
        self.scope = Scope(tenant, "big", "dev")
        self.documents = FirestoreDocumentStore.connect(
            emulators.project, self.database, emulator_host=emulators.firestore_host
        )
        self.blobs = GcsBlobStore(f"bucket-{tenant}", endpoint=emulators.gcs_url)

    def queue(self, blobs: GcsBlobStore | None) -> PubSubEventQueue:
        queue = PubSubEventQueue(
            documents=self.documents,
            clients=PubSubClients(self.emulators.project, emulator_host=self.emulators.pubsub_host),
            names=self.names,
            root=self.scope.root,
            blobs=blobs,
            inline_limit=LIMIT,
        )
        queue.set_subscriptions([Subscription("big", "Eat"), Subscription("chew", "Chew")])
        return queue

    def tap(self, topic: str) -> str:
        """A plain subscription on the topic, to see the messages as Pub/Sub carries them."""
        from google.cloud import pubsub_v1

        subscriber = pubsub_v1.SubscriberClient()
        publisher = pubsub_v1.PublisherClient()
        name = subscriber.subscription_path(self.emulators.project, f"{self.names.prefix}-tap")
        topic_path = publisher.topic_path(self.emulators.project, self.names.topic(topic))
        publisher.create_topic(name=topic_path)
        subscriber.create_subscription(request={"name": name, "topic": topic_path})
        subscriber.close()
        publisher.stop()
        return name

    def pull(self, subscription: str) -> list[Any]:
        from google.cloud import pubsub_v1

        subscriber = pubsub_v1.SubscriberClient()
        try:
            response = subscriber.pull(
                request={"subscription": subscription, "max_messages": 10}, timeout=10
            )
            return [m.message for m in response.received_messages]
        finally:
            subscriber.close()


@pytest.fixture
async def setup(emulators: Emulators, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    for name, value in emulators.env().items():
        monkeypatch.setenv(name, value)
    made = Setup(emulators)
    await made.blobs.ensure_bucket()
    yield made
    await made.documents.close()
    emulators.reset_firestore([made.database])


async def test_a_large_event_travels_by_reference_and_arrives_whole(setup: Setup) -> None:
    queue = setup.queue(setup.blobs)
    tap = setup.tap("big")
    event = Event(topic="big", data=BIG)

    assert await queue.publish([event]) == [event.id]

    [message] = setup.pull(tap)
    assert message.data == b""  # nothing inline
    ref = message.attributes["payload_ref"]
    assert json.loads(await setup.blobs.get(ref)) == BIG
    stored = await setup.documents.get(f"{setup.scope.root}/queue_events/{event.id}")
    assert stored["event"]["data"] is None and stored["event"]["payload_ref"] == ref

    [delivery] = await queue.lease("Eat", limit=5)
    assert delivery.event.data == BIG
    assert await queue.get_event(event.id) is not None
    assert (await queue.get_event(event.id)).data == BIG

    # what a step emits while handling it goes the same way
    chewed = Event(topic="chew", data={**BIG, "n": 2}, id=derived_event_id(event.id, "Eat", 0))
    assert await queue.commit(step="Eat", event_id=event.id, writes=[], emits=[chewed])
    [next_delivery] = await queue.lease("Chew", limit=5)
    assert next_delivery.event.data == {**BIG, "n": 2}
    await queue.close()


async def test_a_small_event_stays_inline(setup: Setup) -> None:
    queue = setup.queue(setup.blobs)
    tap = setup.tap("big")

    await queue.publish([Event(topic="big", data={"n": 3})])

    [message] = setup.pull(tap)
    assert json.loads(message.data) == {"n": 3}
    assert "payload_ref" not in message.attributes
    assert await setup.blobs.list("payloads/") == []
    await queue.close()


async def test_without_a_blob_store_a_large_event_is_refused_whole(setup: Setup) -> None:
    queue = setup.queue(None)
    event = Event(topic="big", data=BIG)

    with pytest.raises(BadRequest) as raised:
        await queue.publish([event])

    assert "inline limit" in raised.value.message
    assert await queue.get_event(event.id) is None  # nothing half-written
    await queue.close()
