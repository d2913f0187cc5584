"""CloudTasksQueue at the client seam: what the Cloud Tasks emulator cannot show (named-task
dedupe, queue settings, DeleteTask) checked against a recording fake CloudTasksClient that
answers as Cloud Tasks documents it, asserting the exact requests the adapter sends.

No emulator runs here; the file sits with the Google adapters' tier (hence the mark)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from cfp.adapters.gcp.tasks import SETTINGS_MASK, CloudTasksQueue
from cfp.errors import BadRequest, NotFound, Unavailable
from cfp.ports import QueuedTask, QueueSettings, Task
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2

pytestmark = pytest.mark.emulator

PROJECT, REGION = "proj-1", "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
QUEUE = f"{PARENT}/queues/retries"


class FakeCloudTasks:
    """CloudTasksClient's surface the adapter uses, recording every call. Task names stay taken
    after delete or execution (`run`), as Cloud Tasks keeps them for about an hour."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.queues: dict[str, tasks_v2.Queue] = {}
        self.tasks: dict[str, tasks_v2.Task] = {}
        self.tombstones: set[str] = set()
        self.fail_next: Exception | None = None
        self.transport = self
        self.closed = False

    def _record(self, method: str, **kwargs: Any) -> None:
        self.calls.append((method, kwargs))
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error

    def requests(self, method: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.calls if name == method]

    def create_queue(self, *, parent: str, queue: tasks_v2.Queue) -> tasks_v2.Queue:
        self._record("create_queue", parent=parent, queue=queue)
        if queue.name in self.queues:
            raise gexc.AlreadyExists("Queue already exists")
        self.queues[queue.name] = tasks_v2.Queue(queue)
        return self.queues[queue.name]

    def get_queue(self, *, name: str) -> tasks_v2.Queue:
        self._record("get_queue", name=name)
        if name not in self.queues:
            raise gexc.NotFound("Requested entity was not found.")
        return self.queues[name]

    def update_queue(self, *, queue: tasks_v2.Queue, update_mask: Any) -> tasks_v2.Queue:
        self._record("update_queue", queue=queue, update_mask=update_mask)
        self.queues[queue.name] = tasks_v2.Queue(queue)
        return self.queues[queue.name]

    def create_task(self, *, parent: str, task: tasks_v2.Task) -> tasks_v2.Task:
        self._record("create_task", parent=parent, task=task)
        if parent not in self.queues:
            raise gexc.FailedPrecondition("Queue does not exist.")
        stored = tasks_v2.Task(task)
        if not stored.name:
            stored.name = f"{parent}/tasks/{len(self.calls)}"
        elif stored.name in self.tasks or stored.name in self.tombstones:
            raise gexc.AlreadyExists(
                "The task cannot be created because a task with this name existed too recently."
            )
        if not stored.schedule_time:
            stored.schedule_time = dt.datetime.now(dt.UTC)
        self.tasks[stored.name] = stored
        return stored

    def delete_task(self, *, name: str) -> None:
        self._record("delete_task", name=name)
        if name not in self.tasks:
            raise gexc.NotFound("The task no longer exists.")
        del self.tasks[name]
        self.tombstones.add(name)

    def list_tasks(self, *, parent: str) -> Iterator[tasks_v2.Task]:
        self._record("list_tasks", parent=parent)
        return iter([t for name, t in self.tasks.items() if name.startswith(f"{parent}/")])

    def run(self, name: str) -> None:
        """The task ran and succeeded: gone, its name kept."""
        del self.tasks[name]
        self.tombstones.add(name)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake() -> FakeCloudTasks:
    return FakeCloudTasks()


@pytest.fixture
def cloud(fake: FakeCloudTasks) -> CloudTasksQueue:
    return CloudTasksQueue(PROJECT, REGION, client=fake)


# -- queues ----------------------------------------------------------------------------------


async def test_ensure_queue_creates_it_with_retry_config_and_rate_limits(
    cloud: CloudTasksQueue, fake: FakeCloudTasks
) -> None:
    settings = QueueSettings(
        max_attempts=7,
        min_backoff=0.5,
        max_backoff=120.0,
        max_doublings=4,
        max_dispatches_per_second=25.0,
        max_concurrent_dispatches=40,
    )
    await cloud.ensure_queue("retries", settings)
    [request] = fake.requests("create_queue")
    assert request["parent"] == PARENT
    queue = request["queue"]
    assert queue.name == QUEUE
    assert queue.retry_config.max_attempts == 7
    assert queue.retry_config.min_backoff == dt.timedelta(seconds=0.5)
    assert queue.retry_config.max_backoff == dt.timedelta(seconds=120)
    assert queue.retry_config.max_doublings == 4
    assert queue.rate_limits.max_dispatches_per_second == 25.0
    assert queue.rate_limits.max_concurrent_dispatches == 40


async def test_unlimited_attempts_are_minus_one(
    cloud: CloudTasksQueue, fake: FakeCloudTasks
) -> None:
    await cloud.ensure_queue("retries", QueueSettings(max_attempts=None))
    assert fake.requests("create_queue")[0]["queue"].retry_config.max_attempts == -1


async def test_ensure_queue_again_with_the_same_settings_updates_nothing(
    cloud: CloudTasksQueue, fake: FakeCloudTasks
) -> None:
    settings = QueueSettings(max_attempts=None, min_backoff=0.1, max_backoff=3600)
    await cloud.ensure_queue("retries", settings)
    await cloud.ensure_queue("retries", settings)
    assert [name for name, _ in fake.calls] == ["create_queue", "create_queue", "get_queue"]


async def test_ensure_queue_with_changed_settings_updates_them(
    cloud: CloudTasksQueue, fake: FakeCloudTasks
) -> None:
    await cloud.ensure_queue("retries", QueueSettings(max_attempts=3))
    await cloud.ensure_queue("retries", QueueSettings(max_attempts=9, max_concurrent_dispatches=5))
    [request] = fake.requests("update_queue")
    assert request["queue"].name == QUEUE
    assert request["queue"].retry_config.max_attempts == 9
    assert request["queue"].rate_limits.max_concurrent_dispatches == 5
    assert list(request["update_mask"].paths) == list(SETTINGS_MASK)
    assert fake.queues[QUEUE].retry_config.max_attempts == 9


# -- tasks -----------------------------------------------------------------------------------


async def test_enqueue_sends_an_http_task_with_name_time_and_payload(
    cloud: CloudTasksQueue, fake: FakeCloudTasks
) -> None:
    await cloud.ensure_queue("retries")
    at = 1_900_000_000.25
    task = Task(
        name="greet-e1-2",
        url="https://step.example.run.app/events?x=1",
        body=b'{"id": "e1"}',
        headers={"Content-Type": "application/json", "traceparent": "00-abc-def-01"},
        schedule_at=at,
    )
    assert await cloud.enqueue("retries", task) is True
    [request] = fake.requests("create_task")
    assert request["parent"] == QUEUE
    sent = request["task"]
    assert sent.name == f"{QUEUE}/tasks/greet-e1-2"
    assert sent.schedule_time == dt.datetime.fromtimestamp(at, dt.UTC)
    assert sent.http_request.url == "https://step.example.run.app/events?x=1"
    assert sent.http_request.http_method == tasks_v2.HttpMethod.POST
    assert dict(sent.http_request.headers) == task.headers
    assert sent.http_request.body == b'{"id": "e1"}'
    assert not sent.http_request.oidc_token.service_account_email


async def test_an_unnamed_immediate_task_leaves_name_and_time_to_cloud_tasks(
    cloud: CloudTasksQueue, fake: FakeCloudTasks
) -> None:
    await cloud.ensure_queue("retries")
    assert await cloud.enqueue("retries", Task(url="https://a.example/x"))
    sent = fake.requests("create_task")[0]["task"]
    assert sent.name == ""
    assert "schedule_time" not in sent


async def test_a_service_account_signs_tasks_for_the_target_service(fake: FakeCloudTasks) -> None:
    cloud = CloudTasksQueue(
        PROJECT,
        REGION,
        client=fake,
        service_account="tasks@proj-1.iam.gserviceaccount.com",
        dispatch_deadline=900,
    )
    await cloud.ensure_queue("retries")
    await cloud.enqueue("retries", Task(url="https://step-abc.a.run.app/path?q=1"))
    sent = fake.requests("create_task")[0]["task"]
    token = sent.http_request.oidc_token
    assert token.service_account_email == "tasks@proj-1.iam.gserviceaccount.com"
    assert token.audience == "https://step-abc.a.run.app"
    assert sent.dispatch_deadline == dt.timedelta(seconds=900)


async def test_a_duplicate_name_is_refused_while_queued_and_after_it_ran(
    cloud: CloudTasksQueue, fake: FakeCloudTasks
) -> None:
    await cloud.ensure_queue("retries")
    task = Task(name="dup", url="https://a.example/x", schedule_at=2e9)
    assert await cloud.enqueue("retries", task) is True
    assert await cloud.enqueue("retries", task) is False
    fake.run(f"{QUEUE}/tasks/dup")
    assert await cloud.enqueue("retries", task) is False
    assert len(fake.requests("create_task")) == 3


async def test_delete_removes_a_queued_task_and_keeps_its_name(
    cloud: CloudTasksQueue, fake: FakeCloudTasks
) -> None:
    await cloud.ensure_queue("retries")
    await cloud.enqueue("retries", Task(name="later", url="https://a.example/x", schedule_at=2e9))
    assert await cloud.delete("retries", "later") is True
    assert fake.requests("delete_task") == [{"name": f"{QUEUE}/tasks/later"}]
    assert await cloud.delete("retries", "later") is False
    assert await cloud.list("retries") == []
    task = Task(name="later", url="https://a.example/x")
    assert await cloud.enqueue("retries", task) is False


async def test_list_maps_tasks_by_schedule_time(
    cloud: CloudTasksQueue, fake: FakeCloudTasks
) -> None:
    await cloud.ensure_queue("retries")
    await cloud.enqueue("retries", Task(name="b", url="https://a.example/b", schedule_at=2e9 + 5))
    await cloud.enqueue("retries", Task(name="a", url="https://a.example/a", schedule_at=2e9))
    assert await cloud.list("retries") == [
        QueuedTask("a", "https://a.example/a", 2e9, 0),
        QueuedTask("b", "https://a.example/b", 2e9 + 5, 0),
    ]
    assert fake.requests("list_tasks") == [{"parent": QUEUE}]


# -- errors ----------------------------------------------------------------------------------


async def test_a_missing_queue_is_not_found(cloud: CloudTasksQueue) -> None:
    with pytest.raises(NotFound):
        await cloud.enqueue("nowhere", Task(url="https://a.example/x"))


async def test_transient_failures_are_retryable_errors(
    cloud: CloudTasksQueue, fake: FakeCloudTasks
) -> None:
    await cloud.ensure_queue("retries")
    fake.fail_next = gexc.ServiceUnavailable("try again")
    with pytest.raises(Unavailable) as caught:
        await cloud.enqueue("retries", Task(url="https://a.example/x"))
    assert caught.value.retryable
    fake.fail_next = gexc.InvalidArgument("bad")
    with pytest.raises(BadRequest):
        await cloud.enqueue("retries", Task(url="https://a.example/x"))


async def test_an_invalid_queue_name_never_reaches_the_client(
    cloud: CloudTasksQueue, fake: FakeCloudTasks
) -> None:
    with pytest.raises(BadRequest):
        await cloud.enqueue("no_underscores", Task(url="https://a.example/x"))
    assert fake.calls == []


# -- clients ---------------------------------------------------------------------------------


async def test_an_injected_client_is_left_open(
    cloud: CloudTasksQueue, fake: FakeCloudTasks
) -> None:
    await cloud.close()
    assert not fake.closed


async def test_the_emulator_client_is_grpc_on_an_insecure_channel() -> None:
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    cloud = CloudTasksQueue.connect(PROJECT, REGION, emulator_host="127.0.0.1:9")
    client = cloud.client
    assert isinstance(client, tasks_v2.CloudTasksClient)
    assert isinstance(client.transport, CloudTasksGrpcTransport)
    await cloud.close()
