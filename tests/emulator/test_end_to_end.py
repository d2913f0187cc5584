"""The production path on Google's emulators: a plain Pub/Sub publisher, push subscriptions
delivering to the `step_event` target served by functions-framework on 127.0.0.1, state in
Firestore, emits on to the next step, large payloads through Cloud Storage, a step that always
fails ending in the dead-letter path, and redelivery that doubles nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfp.adapters.gcp.emulators import Emulators
from cfp.adapters.gcp.firestore import FirestoreDocumentStore
from cfp.adapters.gcp.pubsub import PubSubAdmin, PubSubClients
from cfp.adapters.gcp.storage import GcsBlobStore
from cfp.domain.documents import Filter
from cfp.domain.naming import PubSubNames, subscription_specs
from cfp.domain.paths import Scope

from tests.conftest import free_port, write_project

pytestmark = pytest.mark.emulator

REPO = Path(__file__).resolve().parents[2]
INLINE_LIMIT = 1024  # small, so the emitted padding goes by reference

PROJECT = {
    "steps/count_step.py": """
        config = {"type": "event", "name": "Count", "subscribes": ["orders.placed"],
                  "emits": ["orders.counted"], "flows": ["orders"]}

        async def handler(input, context):
            await context.state.increment("counts", "orders")
            await context.emit({"topic": "orders.counted",
                                "data": {"order": input["order"], "padding": "x" * 4000}})
    """,
    "steps/ledger_step.py": """
        config = {"type": "event", "name": "Ledger", "subscribes": ["orders.counted"],
                  "flows": ["orders"]}

        async def handler(input, context):
            await context.state.set("ledger", str(input["order"]),
                                    {"padding": len(input["padding"]),
                                     "trace_id": context.trace_id})
    """,
    "steps/later_step.py": """
        import time

        config = {"type": "event", "name": "Later", "subscribes": ["orders.placed"],
                  "flows": ["orders"], "infrastructure": {"queue": {"delaySeconds": 5}}}

        async def handler(input, context):
            await context.state.set("later", str(input["order"]), {"ran_at": time.time()})
    """,
    "steps/reject_step.py": """
        config = {"type": "event", "name": "Reject", "subscribes": ["orders.placed"],
                  "flows": ["orders"],
                  "infrastructure": {"queue": {"maxRetries": 1}}}

        async def handler(input, context):
            raise ValueError(f"order {input['order']} is always rejected")
    """,
}

STEPS = ("Count", "Ledger", "Later", "Reject")


@dataclasses.dataclass
class Deployment:
    emulators: Emulators
    names: PubSubNames
    scope: Scope
    database: str
    bucket: str
    documents: FirestoreDocumentStore
    logs: dict[str, Path]

    def publish(self, topic: str, data: Any, **attributes: str) -> str:
        """Publish with a plain google-cloud-pubsub client, as an outside system would."""
        from google.cloud import pubsub_v1

        publisher = pubsub_v1.PublisherClient()
        try:
            path = publisher.topic_path(self.emulators.project, self.names.topic(topic))
            return publisher.publish(path, json.dumps(data).encode(), **attributes).result(30)
        finally:
            publisher.stop()

    async def state(self, group: str, key: str) -> Any:
        doc = await self.documents.get(self.scope.state_item(group, key))
        return None if doc is None else doc["value"]

    async def dead_letters(self) -> list[dict[str, Any]]:
        page = await self.documents.list(
            f"{self.scope.root}/queue_dead", where=[Filter("step", "==", "Reject")]
        )
        return page.items

    def log_text(self) -> str:
        return "\n".join(f"--- {n}\n{p.read_text()[-3000:]}" for n, p in self.logs.items())


def wait_until_serving(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"functions-framework exited:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"functions-framework did not start:\n{log.read_text()}")


@pytest.fixture
def deployment(emulators: Emulators, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The project deployed as Cloud Run functions would be: one functions-framework process
    per event step, and push subscriptions (with dead-letter topics) pointing at them."""
    for name, value in emulators.env().items():
        monkeypatch.setenv(name, value)
    tenant = f"e2e{uuid.uuid4().hex[:8]}"
    database = f"e2e-{tenant}"
    bucket = f"bucket-{tenant}"
    names = PubSubNames(tenant, "shop", "dev")
    scope = Scope(tenant, "shop", "dev")
    root = write_project(tmp_path / "shop", PROJECT)
    asyncio.run(GcsBlobStore(bucket, endpoint=emulators.gcs_url).ensure_bucket())
    env = {
        **os.environ,
        **emulators.env(),
        "CFP_BACKEND": "emulators",
        "CFP_PROJECT": str(root),
        "CFP_NAME": "shop",
        "CFP_TENANT": tenant,
        "CFP_GCP_PROJECT": emulators.project,
        "CFP_FIRESTORE_DATABASE": database,
        "CFP_BUCKET": bucket,
        "CFP_PAYLOAD_INLINE_LIMIT": str(INLINE_LIMIT),
        "CFP_LOG_LEVEL": "info",
        "PYTHONUNBUFFERED": "1",  # the tests read the functions' log lines
    }
    procs: list[subprocess.Popen[bytes]] = []
    logs: dict[str, Path] = {}
    ports: dict[str, int] = {}
    cli = Path(sys.executable).parent / "functions-framework"
    try:
        for step in STEPS:
            ports[step] = free_port()
        for step in STEPS:
            logs[step] = tmp_path / f"{step}.log"
            with logs[step].open("wb") as sink:
                procs.append(
                    subprocess.Popen(
                        [
                            str(cli),
                            *("--source", "functions/main.py", "--target", "step_event"),
                            *("--host", "127.0.0.1", "--port", str(ports[step])),
                        ],
                        cwd=REPO,
                        env={
                            **env,
                            "CFP_STEP": step,
                            # delays and retries come back here as Cloud Tasks (the emulator)
                            "CFP_FUNCTION_URL": f"http://127.0.0.1:{ports[step]}/",
                        },
                        stdout=sink,
                        stderr=subprocess.STDOUT,
                    )
                )
        for step, proc in zip(STEPS, procs, strict=True):
            wait_until_serving(ports[step], proc, logs[step])
        clients = PubSubClients(emulators.project, emulator_host=emulators.pubsub_host)
        admin = PubSubAdmin(clients)
        declared = [
            ("orders.placed", "Count", False, 3),
            ("orders.counted", "Ledger", False, 3),
            ("orders.placed", "Later", False, 3),
            ("orders.placed", "Reject", False, 1),
        ]
        for spec in subscription_specs(declared, names):
            # the topic in the push URL's path becomes the CloudEvent's source
            url = f"http://127.0.0.1:{ports[spec.step]}/projects/{emulators.project}"
            admin.ensure_subscription(
                dataclasses.replace(spec, push_endpoint=f"{url}/topics/{spec.topic_id}")
            )
        clients.close()
        documents = FirestoreDocumentStore.connect(
            emulators.project, database, emulator_host=emulators.firestore_host
        )
        yield Deployment(emulators, names, scope, database, bucket, documents, logs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        emulators.reset_firestore([database])


async def eventually(check, within: float = 30.0, what: str = "", logs: str = "") -> Any:
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not met within {within}s; last {last!r}\n{logs}")


def test_a_published_event_runs_the_flow_through_push_and_dead_letters_the_failing_step(
    deployment: Deployment,
) -> None:
    published_at = time.time()
    message_id = deployment.publish("orders.placed", {"order": 1})

    async def check() -> None:
        d = deployment
        ledger = await eventually(
            lambda: d.state("ledger", "1"), what="the emit reached Ledger", logs=d.log_text()
        )
        assert ledger["padding"] == 4000  # the payload came back from Cloud Storage
        assert await d.state("counts", "orders") == 1
        dead = await eventually(d.dead_letters, what="Reject dead-lettered", logs=d.log_text())
        assert len(dead) == 1
        assert dead[0]["event_id"] == message_id  # a plain message's id is its event id
        assert dead[0]["attempts"] == 2  # maxRetries 1: the first attempt and one retry
        assert dead[0]["error"] == "ValueError: order 1 is always rejected"
        assert dead[0]["event"]["data"] == {"order": 1}  # nothing lost
        # its retry came back through a Cloud Task, not a Pub/Sub redelivery
        assert "retry-1 scheduled" in d.logs["Reject"].read_text()
        # delaySeconds: the push came early, a task brought it back when due
        later = await eventually(lambda: d.state("later", "1"), what="Later ran", logs=d.log_text())
        assert later["ran_at"] - published_at >= 5.0
        assert "delay scheduled" in d.logs["Later"].read_text()
        # the emitted event went by reference: its stored form holds no data, the bucket does
        events = await d.documents.list(
            f"{d.scope.root}/queue_events", where=[Filter("topic", "==", "orders.counted")]
        )
        [emitted] = events.items
        assert emitted["event"]["data"] is None and emitted["event"]["payload_ref"]
        blobs = GcsBlobStore(d.bucket, endpoint=d.emulators.gcs_url)
        stored = json.loads(await blobs.get(emitted["event"]["payload_ref"]))
        assert stored == {"order": 1, "padding": "x" * 4000}
        await d.documents.close()

    asyncio.run(check())
    # the dead letter was also published to the step's dead-letter topic, kept by a subscription
    kept = pull_all(deployment, f"{deployment.names.dead_letter_topic('Reject')}.keep")
    assert [m.message.attributes["step"] for m in kept] == ["Reject"]
    assert json.loads(kept[0].message.data) == {"order": 1}


def test_redelivery_of_the_same_event_doubles_no_effect(deployment: Deployment) -> None:
    for _ in range(3):  # three messages, one event id: as a redelivery or a publisher retry
        deployment.publish("orders.placed", {"order": 7}, event_id="order-7")

    async def check() -> None:
        d = deployment
        await eventually(lambda: d.state("ledger", "7"), what="Ledger ran", logs=d.log_text())
        await asyncio.sleep(2)  # time for the copies to be pushed and handled
        assert await d.state("counts", "orders") == 1
        events = await d.documents.list(
            f"{d.scope.root}/queue_events", where=[Filter("topic", "==", "orders.counted")]
        )
        assert len(events.items) == 1  # one emit, however often the step was delivered
        await d.documents.close()

    asyncio.run(check())


def pull_all(deployment: Deployment, subscription: str) -> list[Any]:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    try:
        path = subscriber.subscription_path(deployment.emulators.project, subscription)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            response = subscriber.pull(
                request={"subscription": path, "max_messages": 10}, timeout=5
            )
            if response.received_messages:
                return list(response.received_messages)
        return []
    finally:
        subscriber.close()


@pytest.fixture(autouse=True)
def _no_leftover_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CFP_BACKEND", raising=False)
    yield
