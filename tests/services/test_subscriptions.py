"""Subscription lifecycle: idempotent provisioning, backoff on transient failures, and a state
per subscription that a user can read and retry."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfp.adapters.local.documents import SqliteDocumentStore
from cfp.adapters.local.sqlite import Database
from cfp.domain.naming import PubSubNames, SubscriptionSpec, subscription_specs
from cfp.domain.paths import Scope
from cfp.errors import Unavailable
from cfp.services.subscriptions import SubscriptionLifecycle

SCOPE = Scope("acme", "shop", "dev")
NAMES = PubSubNames("acme", "shop", "dev")


class FlakyProvisioner:
    """Fails each subscription `transient` times with Unavailable, and `broken` ones for good."""

    def __init__(self, transient: int = 0, broken: frozenset[str] = frozenset()) -> None:
        self.transient = transient
        self.broken = broken
        self.calls: list[str] = []

    async def ensure(self, spec: SubscriptionSpec) -> None:
        self.calls.append(spec.name)
        if spec.step in self.broken:
            raise PermissionError(f"no permission to create {spec.name}")
        if self.calls.count(spec.name) <= self.transient:
            raise Unavailable("Pub/Sub is unavailable")


@pytest.fixture
def documents(tmp_path: Path):
    db = Database(tmp_path / "cfp.db")
    yield SqliteDocumentStore(db)
    db.close()


def specs() -> list[SubscriptionSpec]:
    return subscription_specs(
        [("order.created", "Ship", False, 3), ("order.created", "Bill", True, 7)], NAMES
    )


def lifecycle(documents, provisioner, sleeps: list[float]) -> SubscriptionLifecycle:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return SubscriptionLifecycle(
        documents, SCOPE, provisioner, backend="emulators", attempts=4, sleep=sleep
    )


async def test_specs_are_named_as_the_manifest_names_them() -> None:
    bill, ship = specs()
    assert (bill.step, ship.step) == ("Bill", "Ship")  # stable order, by step then topic
    assert ship.name == "cfp.acme.shop.dev~Ship~order.created"
    assert ship.topic_id == "cfp.acme.shop.dev~order.created"
    assert ship.dead_letter_topic_id == "cfp.acme.shop.dev~dlq~Ship"
    assert (bill.fifo, bill.max_delivery_attempts, ship.max_delivery_attempts) == (True, 9, 5)


async def test_transient_failures_back_off_then_the_subscription_is_active(documents) -> None:
    sleeps: list[float] = []
    service = lifecycle(documents, FlakyProvisioner(transient=2), sleeps)

    records = await service.provision(specs())

    assert [(r["step"], r["state"], r["attempts"], r["error"]) for r in records] == [
        ("Bill", "active", 3, None),
        ("Ship", "active", 3, None),
    ]
    assert sleeps == [0.5, 1.0, 0.5, 1.0]  # doubling backoff per subscription
    listed = (await service.list()).items
    assert {r["name"]: r["state"] for r in listed} == {s.name: "active" for s in specs()}


async def test_running_provisioning_twice_changes_nothing(documents) -> None:
    provisioner = FlakyProvisioner()
    service = lifecycle(documents, provisioner, [])
    first = await service.provision(specs())

    second = await service.provision(specs())

    strip = [{k: v for k, v in r.items() if k != "updated_at"} for r in first]
    assert [{k: v for k, v in r.items() if k != "updated_at"} for r in second] == strip
    assert len((await service.list()).items) == 2


async def test_a_lasting_failure_is_recorded_with_its_error_and_can_be_retried(documents) -> None:
    sleeps: list[float] = []
    provisioner = FlakyProvisioner(broken=frozenset({"Bill"}))
    service = lifecycle(documents, provisioner, sleeps)

    bill, ship = await service.provision(specs())

    assert (bill["state"], bill["attempts"]) == ("failed", 1)  # not retried: it would not help
    assert bill["error"] == "PermissionError: no permission to create " + bill["name"]
    assert ship["state"] == "active"
    assert sleeps == []

    provisioner.broken = frozenset()  # the operator fixed the permission
    bill, ship = await service.provision(specs())
    assert (bill["state"], bill["error"]) == ("active", None)


async def test_transient_failures_that_outlast_the_attempts_fail_with_the_error(documents) -> None:
    service = lifecycle(documents, FlakyProvisioner(transient=10), [])

    records = await service.provision(specs()[:1])

    assert [(r["state"], r["attempts"], r["error"]) for r in records] == [
        ("failed", 4, "Pub/Sub is unavailable")
    ]


async def test_require_refuses_while_a_subscription_cannot_be_created(documents) -> None:
    provisioner = FlakyProvisioner(broken=frozenset({"Ship"}))
    service = lifecycle(documents, provisioner, [])

    with pytest.raises(Unavailable) as raised:
        await service.require(specs())

    assert "cfp.acme.shop.dev~Ship~order.created" in raised.value.message
    provisioner.broken = frozenset()
    calls = len(provisioner.calls)
    await service.require(specs())
    await service.require(specs())  # known active: no more calls
    assert len(provisioner.calls) == calls + 1
