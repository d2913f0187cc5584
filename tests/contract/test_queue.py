"""EventQueue contract: at-least-once delivery, once-per-(step, event id) commits, retries,
dead letters, FIFO groups, leases and recovery — the same for SQLite and Pub/Sub."""

from __future__ import annotations

import pytest
from cfp.domain.documents import CreateDoc, Increment, SetDoc
from cfp.domain.events import Delivery, Event, derived_event_id
from cfp.errors import Conflict
from cfp.ports import EventQueue, Subscription

from .conftest import QueueEnv

IDLE = {"pending": 0, "in_flight": 0, "dead": 0}


def event(topic: str = "orders", data: object = None, **fields: object) -> Event:
    return Event(topic=topic, data={"n": 0} if data is None else data, **fields)  # type: ignore[arg-type]


def event_ids(deliveries: list[Delivery]) -> list[str]:
    return [d.event.id for d in deliveries]


async def lease_one(queue: EventQueue, step: str) -> Delivery:
    deliveries = await queue.lease(step, limit=1)
    assert len(deliveries) == 1, f"{step} has no due delivery"
    return deliveries[0]


async def dead_letter_one(queue: EventQueue, step: str, error: str = "boom") -> Delivery:
    delivery = await lease_one(queue, step)
    await queue.dead_letter(delivery, error=error, traceback=f"Traceback: {error}")
    return delivery


# -- publishing ------------------------------------------------------------------------------


async def test_publish_accepts_each_event_id_once(queue: EventQueue) -> None:
    queue.set_subscriptions([Subscription("orders", "ship")])
    first = event(data={"n": 1})
    again = event(data={"n": 2}, id=first.id)
    other = event(data={"n": 3})
    assert await queue.publish([first]) == [first.id]
    assert await queue.publish([again, other, other]) == [other.id]
    deliveries = await queue.lease("ship", limit=10)
    assert sorted(event_ids(deliveries)) == sorted([first.id, other.id])
    assert {d.event.id: d.event.data for d in deliveries}[first.id] == {"n": 1}


async def test_publish_fans_out_to_every_subscribing_step(queue: EventQueue) -> None:
    queue.set_subscriptions(
        [
            Subscription("orders", "ship"),
            Subscription("orders", "bill"),
            Subscription("refunds", "refund"),
        ]
    )
    sent = event(
        data={"order": 7},
        trace_id="t1",
        correlation_id="c1",
        traceparent="00-ab-cd-01",
        source_step="api",
        message_group_id="g",
    )
    await queue.publish([sent])
    for step in ("ship", "bill"):
        delivery = await lease_one(queue, step)
        assert delivery.step == step
        assert delivery.attempt == 1
        got = delivery.event
        assert (got.id, got.topic, got.data) == (sent.id, "orders", {"order": 7})
        assert (got.trace_id, got.correlation_id, got.traceparent) == ("t1", "c1", "00-ab-cd-01")
        assert (got.source_step, got.message_group_id) == ("api", "g")
    assert await queue.lease("refund", limit=10) == []


async def test_an_event_nobody_subscribes_to_is_accepted_and_delivered_nowhere(
    queue: EventQueue,
) -> None:
    queue.set_subscriptions([Subscription("orders", "ship")])
    sent = event("nobody.listens")
    assert await queue.publish([sent]) == [sent.id]
    assert await queue.lease("ship", limit=10) == []


async def test_delay_seconds_holds_new_deliveries_back(queue_env: QueueEnv) -> None:
    queue = queue_env.queue
    queue.set_subscriptions([Subscription("orders", "ship", delay_seconds=5)])
    await queue.publish([event()])
    assert await queue.lease("ship", limit=10) == []
    await queue_env.clock.advance(5)
    assert len(await queue.lease("ship", limit=10)) == 1


# -- commit: the transactional outbox ----------------------------------------------------------


async def test_commit_applies_writes_emits_and_removes_the_delivery(queue_env: QueueEnv) -> None:
    queue = queue_env.queue
    queue.set_subscriptions([Subscription("orders", "ship"), Subscription("shipped", "notify")])
    await queue.publish([event(data={"order": 1})])
    delivery = await lease_one(queue, "ship")
    emitted = event("shipped", {"order": 1}, id=derived_event_id(delivery.event.id, "ship", 0))
    done = await queue.commit(
        step="ship",
        event_id=delivery.event.id,
        delivery=delivery,
        writes=[SetDoc("orders/1", {"shipped": True})],
        emits=[emitted],
    )
    assert done is True
    assert await queue_env.documents.get("orders/1") == {"shipped": True}
    assert event_ids(await queue.lease("notify", limit=10)) == [emitted.id]
    await queue_env.clock.advance(10_000)  # well past any lease: a committed delivery never returns
    assert await queue.lease("ship", limit=10) == []
    assert (await queue.stats())["ship"] == IDLE


async def test_a_second_commit_for_the_same_step_and_event_applies_nothing(
    queue_env: QueueEnv,
) -> None:
    queue = queue_env.queue
    queue.set_subscriptions([Subscription("orders", "ship"), Subscription("shipped", "notify")])
    await queue.publish([event()])
    delivery = await lease_one(queue, "ship")
    first = await queue.commit(
        step="ship",
        event_id=delivery.event.id,
        delivery=delivery,
        writes=[Increment("counters/shipped", 1)],
        emits=[event("shipped", {"try": 1})],
    )
    second = await queue.commit(
        step="ship",
        event_id=delivery.event.id,
        delivery=delivery,
        writes=[Increment("counters/shipped", 5), SetDoc("orders/x", {})],
        emits=[event("shipped", {"try": 2})],
    )
    assert (first, second) == (True, False)
    assert await queue_env.documents.get("counters/shipped") == {"value": 1}
    assert await queue_env.documents.get("orders/x") is None
    notified = await queue.lease("notify", limit=10)
    assert [d.event.data for d in notified] == [{"try": 1}]


async def test_commits_are_once_per_step_not_per_event(queue_env: QueueEnv) -> None:
    queue = queue_env.queue
    queue.set_subscriptions([Subscription("orders", "ship"), Subscription("orders", "bill")])
    sent = event()
    await queue.publish([sent])
    for step in ("ship", "bill"):
        assert await queue.commit(
            step=step, event_id=sent.id, writes=[Increment("counters/steps", 1)], emits=[]
        )
    assert await queue_env.documents.get("counters/steps") == {"value": 2}


async def test_a_conflict_in_the_writes_leaves_nothing_applied(queue_env: QueueEnv) -> None:
    queue = queue_env.queue
    queue.set_subscriptions([Subscription("orders", "ship"), Subscription("shipped", "notify")])
    await queue_env.documents.apply([SetDoc("orders/1", {"taken": True})])
    await queue.publish([event()])
    delivery = await lease_one(queue, "ship")
    with pytest.raises(Conflict):
        await queue.commit(
            step="ship",
            event_id=delivery.event.id,
            delivery=delivery,
            writes=[Increment("counters/shipped", 1), CreateDoc("orders/1", {"taken": False})],
            emits=[event("shipped")],
        )
    assert await queue_env.documents.get("counters/shipped") is None
    assert await queue_env.documents.get("orders/1") == {"taken": True}
    assert await queue.lease("notify", limit=10) == []
    assert (await queue.stats())["ship"] == {**IDLE, "in_flight": 1}
    # The failed commit did not mark the event done: a corrected retry commits.
    assert await queue.commit(
        step="ship",
        event_id=delivery.event.id,
        delivery=delivery,
        writes=[Increment("counters/shipped", 1)],
        emits=[],
    )
    assert await queue_env.documents.get("counters/shipped") == {"value": 1}


# -- leases, retries and dead letters ----------------------------------------------------------


async def test_lease_hands_out_at_most_limit_deliveries_once_each(queue: EventQueue) -> None:
    queue.set_subscriptions([Subscription("orders", "ship")])
    sent = [event(data={"n": n}) for n in range(5)]
    await queue.publish(sent)
    first = await queue.lease("ship", limit=3)
    second = await queue.lease("ship", limit=3)
    assert (len(first), len(second)) == (3, 2)
    assert sorted(event_ids(first + second)) == sorted(e.id for e in sent)
    assert await queue.lease("ship", limit=3) == []


async def test_retry_makes_the_delivery_due_after_its_delay(queue_env: QueueEnv) -> None:
    queue = queue_env.queue
    queue.set_subscriptions([Subscription("orders", "ship")])
    sent = event()
    await queue.publish([sent])
    first = await lease_one(queue, "ship")
    assert first.attempt == 1
    await queue.retry(first, error="ValueError: flaky", delay=10)
    assert await queue.lease("ship", limit=10) == []
    assert (await queue.stats())["ship"] == {**IDLE, "pending": 1}
    await queue_env.clock.advance(9.5)
    assert await queue.lease("ship", limit=10) == []
    await queue_env.clock.advance(1)
    second = await lease_one(queue, "ship")
    assert (second.event.id, second.attempt) == (sent.id, 2)
    await queue.retry(second, error="ValueError: flaky", delay=0)
    assert (await lease_one(queue, "ship")).attempt == 3


async def test_visibility_timeout_expiry_makes_a_lease_leasable_again(
    queue_env: QueueEnv,
) -> None:
    queue = queue_env.queue
    queue.set_subscriptions([Subscription("orders", "ship", visibility_timeout=30)])
    sent = event()
    await queue.publish([sent])
    assert (await lease_one(queue, "ship")).attempt == 1
    await queue_env.clock.advance(29)
    assert await queue.lease("ship", limit=10) == []
    await queue_env.clock.advance(2)
    again = await lease_one(queue, "ship")
    assert (again.event.id, again.attempt) == (sent.id, 2)


async def test_dead_letters_keep_input_error_and_attempts(queue_env: QueueEnv) -> None:
    queue = queue_env.queue
    queue.set_subscriptions([Subscription("orders", "ship")])
    sent = event(data={"order": 9}, trace_id="trace-9")
    await queue.publish([sent])
    await queue.retry(await lease_one(queue, "ship"), error="first", delay=0)
    delivery = await lease_one(queue, "ship")
    await queue.dead_letter(delivery, error="ValueError: bad order", traceback="Traceback ...")
    assert await queue.lease("ship", limit=10) == []
    page = await queue.list_dead_letters()
    assert len(page.items) == 1 and page.next_cursor is None
    letter = page.items[0]
    assert letter["step"] == "ship"
    assert letter["topic"] == "orders"
    assert letter["event_id"] == sent.id
    assert letter["input"] == {"order": 9}
    assert letter["trace_id"] == "trace-9"
    assert letter["error"] == "ValueError: bad order"
    assert letter["traceback"] == "Traceback ..."
    assert letter["attempts"] == 2
    assert (await queue.stats())["ship"] == {**IDLE, "dead": 1}


async def test_dead_letters_filter_by_step_and_topic_and_page(queue: EventQueue) -> None:
    queue.set_subscriptions(
        [
            Subscription("orders", "ship"),
            Subscription("orders", "bill"),
            Subscription("refunds", "refund"),
        ]
    )
    await queue.publish([event("orders"), event("orders"), event("refunds")])
    for step, count in (("ship", 2), ("bill", 2), ("refund", 1)):
        for _ in range(count):
            await dead_letter_one(queue, step)

    async def letters(**query: object) -> list[tuple[str, str]]:
        items, cursor = [], None
        while True:
            page = await queue.list_dead_letters(limit=2, cursor=cursor, **query)  # type: ignore[arg-type]
            items += [(i["step"], i["topic"]) for i in page.items]
            if page.next_cursor is None:
                return sorted(items)
            cursor = page.next_cursor

    assert await letters(step="ship") == [("ship", "orders")] * 2
    assert await letters(topic="refunds") == [("refund", "refunds")]
    assert await letters(step="bill", topic="orders") == [("bill", "orders")] * 2
    assert len(await letters()) == 5


async def test_replay_by_id_puts_a_dead_letter_back_with_attempts_reset(
    queue: EventQueue,
) -> None:
    queue.set_subscriptions([Subscription("orders", "ship")])
    first, second = event(data={"n": 1}), event(data={"n": 2})
    await queue.publish([first, second])
    for _ in range(2):
        await dead_letter_one(queue, "ship")
    letters = (await queue.list_dead_letters()).items
    chosen = next(item for item in letters if item["event_id"] == first.id)
    assert await queue.replay(ids=[chosen["id"]]) == 1
    replayed = await lease_one(queue, "ship")
    assert (replayed.event.id, replayed.attempt) == (first.id, 1)
    assert [i["event_id"] for i in (await queue.list_dead_letters()).items] == [second.id]
    assert await queue.replay(ids=[chosen["id"]]) == 0  # no longer dead


async def test_replay_by_step_or_topic_puts_back_only_matching_dead_letters(
    queue: EventQueue,
) -> None:
    queue.set_subscriptions(
        [
            Subscription("orders", "ship"),
            Subscription("orders", "bill"),
            Subscription("refunds", "refund"),
        ]
    )
    await queue.publish([event("orders"), event("refunds")])
    for step in ("ship", "bill", "refund"):
        await dead_letter_one(queue, step)
    assert await queue.replay(step="bill") == 1
    assert len(await queue.lease("bill", limit=10)) == 1
    assert await queue.replay(topic="refunds") == 1
    assert len(await queue.lease("refund", limit=10)) == 1
    assert await queue.lease("ship", limit=10) == []
    assert [i["step"] for i in (await queue.list_dead_letters()).items] == ["ship"]


# -- FIFO --------------------------------------------------------------------------------------


async def test_fifo_leases_only_the_head_of_each_group_and_keeps_order_across_retries(
    queue_env: QueueEnv,
) -> None:
    queue = queue_env.queue
    queue.set_subscriptions([Subscription("orders", "ledger", fifo=True)])
    a1, a2, a3 = (event(data=f"a{n}", message_group_id="acct-a") for n in (1, 2, 3))
    b1, b2 = (event(data=f"b{n}", message_group_id="acct-b") for n in (1, 2))
    await queue.publish([a1, b1, a2, b2, a3])

    async def due() -> list[str]:
        return sorted(d.event.data for d in await queue.lease("ledger", limit=10))

    async def done(d: Delivery) -> None:
        assert await queue.commit(
            step="ledger", event_id=d.event.id, writes=[], emits=[], delivery=d
        )

    heads = {d.event.data: d for d in await queue.lease("ledger", limit=10)}
    assert sorted(heads) == ["a1", "b1"]
    assert await due() == []  # both heads are in flight: their groups wait

    await queue.retry(heads["a1"], error="flaky", delay=5)
    await done(heads["b1"])
    b2_lease = await queue.lease("ledger", limit=10)
    assert [d.event.data for d in b2_lease] == ["b2"]  # a1 waits out its delay; a2 stays behind
    await queue_env.clock.advance(5)
    retried = await queue.lease("ledger", limit=10)
    assert [(d.event.data, d.attempt) for d in retried] == [("a1", 2)]

    await done(retried[0])
    a2_lease = await lease_one(queue, "ledger")
    assert a2_lease.event.data == "a2"
    # A dead-lettered head no longer blocks its group.
    await queue.dead_letter(a2_lease, error="bad", traceback="")
    assert await due() == ["a3"]


async def test_fifo_events_without_a_group_form_one_group(queue: EventQueue) -> None:
    queue.set_subscriptions([Subscription("orders", "ledger", fifo=True)])
    await queue.publish([event(data=n) for n in range(3)])
    order = []
    for _ in range(3):
        deliveries = await queue.lease("ledger", limit=10)
        assert len(deliveries) == 1
        order.append(deliveries[0].event.data)
        await queue.commit(
            step="ledger",
            event_id=deliveries[0].event.id,
            writes=[],
            emits=[],
            delivery=deliveries[0],
        )
    assert order == [0, 1, 2]


# -- operations --------------------------------------------------------------------------------


async def test_recover_frees_only_the_leases_of_a_dead_owner(queue_env: QueueEnv) -> None:
    subs = [Subscription("orders", "ship")]
    queue = queue_env.queue
    queue.set_subscriptions(subs)
    crashed, alive = queue_env.peer(), queue_env.peer()
    crashed.set_subscriptions(subs)
    alive.set_subscriptions(subs)
    await queue.publish([event(data="lost"), event(data="held")])
    lost = await lease_one(crashed, "ship")
    held = await lease_one(alive, "ship")
    assert (lost.event.data, held.event.data) == ("lost", "held")
    await queue_env.crash(crashed)

    assert await queue.recover() == 1
    recovered = await queue.lease("ship", limit=10)
    assert [(d.event.data, d.attempt) for d in recovered] == [("lost", 2)]
    assert await queue.recover() == 0
    assert (await queue.stats())["ship"] == {**IDLE, "in_flight": 2}


async def test_stats_count_pending_in_flight_and_dead_per_step(queue: EventQueue) -> None:
    queue.set_subscriptions(
        [
            Subscription("orders", "ship"),
            Subscription("orders", "bill"),
            Subscription("refunds", "refund"),
        ]
    )
    await queue.publish([event() for _ in range(4)])
    await dead_letter_one(queue, "ship")
    await queue.lease("ship", limit=1)
    stats = await queue.stats()
    assert stats["ship"] == {"pending": 2, "in_flight": 1, "dead": 1}
    assert stats["bill"] == {"pending": 4, "in_flight": 0, "dead": 0}
    assert stats["refund"] == IDLE
