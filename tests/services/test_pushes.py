"""What an event step's function does with a pushed message: run it, defer it until
`delaySeconds` is up, schedule retries as named tasks, dead-letter after `maxRetries`, and
ask Pub/Sub to redeliver whenever it cannot settle the message itself."""

from __future__ import annotations

import json

import pytest
from cfp.domain.events import Event
from cfp.errors import Unavailable
from cfp.ports import QueueSettings, Task
from cfp.services.pushes import DELAYED_ATTRIBUTE, PushHandler, Redeliver, TaskTarget, task_name

URL = "http://127.0.0.1:9/step"

PROJECT = {
    "steps/later_step.py": """
        config = {"type": "event", "name": "Later", "subscribes": ["job"], "flows": ["f"],
                  "infrastructure": {"queue": {"delaySeconds": 30}}}

        async def handler(input, context):
            await context.state.set("later", input["id"], input)
    """,
    "steps/flaky_step.py": """
        config = {"type": "event", "name": "Flaky", "subscribes": ["work"], "flows": ["f"],
                  "infrastructure": {"queue": {"maxRetries": 2}}}

        async def handler(input, context):
            raise ConnectionError("downstream is down")
    """,
}


class RecordingTasks:
    """A TaskQueue that records what it is asked; `fail` makes enqueue raise."""

    def __init__(self) -> None:
        self.queues: list[str] = []
        self.tasks: list[Task] = []
        self.fail = False

    async def ensure_queue(self, queue: str, settings: QueueSettings = QueueSettings()) -> None:
        self.queues.append(queue)

    async def enqueue(self, queue: str, task: Task) -> bool:
        if self.fail:
            raise Unavailable("Cloud Tasks is unavailable")
        if any(t.name == task.name for t in self.tasks):
            return False
        self.tasks.append(task)
        return True


def message(event: Event, **attributes: str) -> dict:
    return {"data": "eyJpZCI6ICIxIn0=", "attributes": attributes, "messageId": "m-1"}


@pytest.fixture
async def setup(make_platform):
    platform = await make_platform(PROJECT, start=False, retry_base_seconds=2.0)
    await platform.start(consume=False)
    tasks = RecordingTasks()
    now = [1_000_000.0]
    handler = PushHandler(
        platform.runtime,
        platform.queue,
        target=TaskTarget(tasks, "cfp-q", URL),  # type: ignore[arg-type]
        clock=lambda: now[0],
    )
    return platform, handler, tasks, now


async def test_an_early_event_becomes_a_task_due_when_its_delay_is_up(setup) -> None:
    platform, handler, tasks, now = setup
    step = platform.project.steps["Later"]
    event = Event(topic="job", data={"id": "1"}, id="evt-1", created_at=now[0] - 10)

    assert await handler.handle(step, event, message(event)) == "deferred"

    [task] = tasks.tasks
    assert tasks.queues == ["cfp-q"]
    assert task.name == task_name("Later", "evt-1", "delay")
    assert (task.url, task.schedule_at) == (URL, event.created_at + 30)
    body = json.loads(task.body)
    assert body["subscription"] and body["message"]["data"] == "eyJpZCI6ICIxIn0="
    attributes = body["message"]["attributes"]
    assert attributes["event_id"] == "evt-1" and attributes["event_topic"] == "job"
    assert attributes[DELAYED_ATTRIBUTE] == "1"
    assert await platform.documents.get(platform.scope.state_item("later", "1")) is None

    # the task brings it back marked as due: now it runs
    back = {"data": body["message"]["data"], "attributes": attributes}
    assert await handler.handle(step, event, back) == "done"
    assert (await platform.documents.get(platform.scope.state_item("later", "1")))["value"] == {
        "id": "1"
    }
    assert await handler.handle(step, event, back) == "duplicate"  # redelivered: no double


async def test_a_due_event_runs_at_once(setup) -> None:
    platform, handler, tasks, now = setup
    step = platform.project.steps["Later"]
    event = Event(topic="job", data={"id": "2"}, id="evt-2", created_at=now[0] - 31)

    assert await handler.handle(step, event, message(event)) == "done"
    assert tasks.tasks == []


async def test_retries_are_tasks_with_backoff_then_a_dead_letter(setup) -> None:
    platform, handler, tasks, now = setup
    step = platform.project.steps["Flaky"]
    event = Event(topic="work", data={"id": "3"}, id="evt-3", created_at=now[0])

    outcomes = [await handler.handle(step, event, message(event)) for _ in range(3)]

    assert outcomes == ["retry_scheduled", "retry_scheduled", "dead_lettered"]
    assert [t.name for t in tasks.tasks] == [
        task_name("Flaky", "evt-3", "retry-1"),
        task_name("Flaky", "evt-3", "retry-2"),
    ]
    assert [t.schedule_at - now[0] for t in tasks.tasks] == [2.0, 4.0]  # base 2 s, doubling
    page = await platform.queue.list_dead_letters(step="Flaky")
    [dead] = page.items
    assert (dead["event_id"], dead["attempts"]) == ("evt-3", 3)
    assert dead["error"] == "ConnectionError: downstream is down"


async def test_a_redelivered_early_push_schedules_its_delay_once(setup) -> None:
    platform, handler, tasks, now = setup
    step = platform.project.steps["Later"]
    event = Event(topic="job", data={"id": "4"}, id="evt-4", created_at=now[0])

    assert await handler.handle(step, event, message(event)) == "deferred"
    assert await handler.handle(step, event, message(event)) == "deferred"

    assert [t.name for t in tasks.tasks] == [task_name("Later", "evt-4", "delay")]


async def test_every_push_counts_as_an_attempt(setup) -> None:
    platform, handler, tasks, now = setup
    step = platform.project.steps["Flaky"]
    event = Event(topic="work", data={"id": "7"}, id="evt-7", created_at=now[0])

    # Pub/Sub says attempt 1 each time (no dead-letter policy), the queue counts 1, 2, 3
    for _ in range(3):
        await handler.handle(step, event, message(event), pubsub_attempt=1)

    assert [t.name.rsplit("-", 1)[1] for t in tasks.tasks] == ["1", "2"]
    assert (await platform.queue.list_dead_letters(step="Flaky")).items[0]["attempts"] == 3


async def test_when_scheduling_fails_pubsub_redelivers(setup) -> None:
    platform, handler, tasks, now = setup
    tasks.fail = True
    event = Event(topic="work", data={"id": "5"}, id="evt-5", created_at=now[0])

    with pytest.raises(Redeliver) as raised:
        await handler.handle(platform.project.steps["Flaky"], event, message(event))

    assert "Cloud Tasks is unavailable" in raised.value.reason
    assert (await platform.queue.list_dead_letters()).items == []


async def test_without_a_task_queue_a_retryable_failure_is_redelivered(setup) -> None:
    platform, _, _, now = setup
    handler = PushHandler(platform.runtime, platform.queue, target=None)
    event = Event(topic="work", data={"id": "6"}, id="evt-6", created_at=now[0])

    step = platform.project.steps["Flaky"]
    for _ in range(2):
        with pytest.raises(Redeliver):
            await handler.handle(step, event, message(event))
    # the third push is past maxRetries (2): dead-lettered, and acknowledged
    assert await handler.handle(step, event, message(event)) == "dead_lettered"
    assert (await platform.queue.list_dead_letters(step="Flaky")).items[0]["attempts"] == 3


def test_task_names_are_valid_and_distinct_for_any_step_and_event() -> None:
    a = task_name("Send.Mail", "evt/1", "retry-1")
    b = task_name("Send.Mail", "evt/2", "retry-1")
    assert a != b
    Task(name=a, url=URL)  # a valid Cloud Tasks name, or Task would refuse it
