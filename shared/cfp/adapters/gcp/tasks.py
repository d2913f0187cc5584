"""TaskQueue on Cloud Tasks through `google.cloud.tasks_v2.CloudTasksClient`.

A CFP queue is the Cloud Tasks queue `projects/{project}/locations/{region}/queues/{queue}`; a
task is an HTTP target task (POST, the task's headers and body, `schedule_time`), signed with an
OIDC token of `service_account` when one is set, as Cloud Run's invoker check wants. Cloud Tasks
itself deduplicates named tasks (ALREADY_EXISTS, also for about an hour after one ran or was
deleted) and applies the queue's retry and rate settings.

The client is blocking; each call runs in a worker thread. Google's library is imported on first
use only. Against the gcloud-tasks-emulator (`connect(..., emulator_host=...)`), which has no
environment variable, the client talks gRPC over an insecure channel; that emulator neither
deduplicates names, nor applies queue settings, nor implements DeleteTask.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import urllib.parse
from typing import Any

from cfp.errors import BadRequest, Conflict, NotFound, Unavailable
from cfp.ports import QueuedTask, QueueSettings, Task, check_queue_name

# The queue fields ensure_queue sets, as an update mask.
SETTINGS_MASK = (
    "retry_config.max_attempts",
    "retry_config.min_backoff",
    "retry_config.max_backoff",
    "retry_config.max_doublings",
    "rate_limits.max_dispatches_per_second",
    "rate_limits.max_concurrent_dispatches",
)


def emulator_client(host: str) -> Any:
    """A CloudTasksClient for the emulator at `host` ("127.0.0.1:PORT"): gRPC, no TLS, no auth."""
    import grpc
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    channel = grpc.insecure_channel(host)
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


def _seconds(value: dt.timedelta | None) -> float:
    return 0.0 if value is None else round(value.total_seconds(), 6)


def _normalized(settings: QueueSettings) -> QueueSettings:
    """Settings as they survive a round trip through the API (durations in microseconds)."""
    return dataclasses.replace(
        settings,
        min_backoff=round(settings.min_backoff, 6),
        max_backoff=round(settings.max_backoff, 6),
        max_dispatches_per_second=float(settings.max_dispatches_per_second),
    )


def settings_of(queue: Any) -> QueueSettings | None:
    """The QueueSettings a Cloud Tasks queue holds; None if it holds none CFP could set."""
    retry, rates = queue.retry_config, queue.rate_limits
    try:
        return QueueSettings(
            max_attempts=None if retry.max_attempts == -1 else retry.max_attempts,
            min_backoff=_seconds(retry.min_backoff),
            max_backoff=_seconds(retry.max_backoff),
            max_doublings=retry.max_doublings,
            max_dispatches_per_second=rates.max_dispatches_per_second,
            max_concurrent_dispatches=rates.max_concurrent_dispatches,
        )
    except BadRequest:
        return None


class CloudTasksQueue:
    """TaskQueue on Cloud Tasks in one project and region."""

    def __init__(
        self,
        project: str,
        region: str,
        *,
        client: Any = None,
        service_account: str | None = None,
        dispatch_deadline: float | None = None,
    ) -> None:
        self.project = project
        self.region = region
        self.service_account = service_account
        self.dispatch_deadline = dispatch_deadline
        self._client = client
        self._owns_client = False

    @classmethod
    def connect(
        cls,
        project: str,
        region: str,
        *,
        emulator_host: str | None = None,
        service_account: str | None = None,
    ) -> CloudTasksQueue:
        """A queue client for `project`/`region`: the emulator at `emulator_host`, else Google's
        endpoint with Application Default Credentials (created on first use)."""
        queue = cls(project, region, service_account=service_account)
        if emulator_host:
            queue._client = emulator_client(emulator_host)
            queue._owns_client = True
        return queue

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.cloud import tasks_v2

            self._client = tasks_v2.CloudTasksClient()
            self._owns_client = True
        return self._client

    @property
    def location_path(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    def queue_path(self, queue: str) -> str:
        return f"{self.location_path}/queues/{check_queue_name(queue)}"

    # -- the port ---------------------------------------------------------------------------

    async def ensure_queue(self, queue: str, settings: QueueSettings = QueueSettings()) -> None:
        from google.api_core import exceptions as gexc

        wanted = self._queue(queue, settings)

        def ensure() -> None:
            try:
                self.client.create_queue(parent=self.location_path, queue=wanted)
                return
            except gexc.AlreadyExists:
                pass
            except gexc.FailedPrecondition as exc:  # a queue of that name was deleted recently
                raise Conflict(
                    f"task queue {queue!r} cannot be created yet: {exc.message}",
                    details={"queue": queue},
                ) from exc
            current = self.client.get_queue(name=wanted.name)
            if settings_of(current) != _normalized(settings):
                from google.protobuf import field_mask_pb2

                mask = field_mask_pb2.FieldMask(paths=list(SETTINGS_MASK))
                self.client.update_queue(queue=wanted, update_mask=mask)

        await self._call(ensure, queue)

    async def enqueue(self, queue: str, task: Task) -> bool:
        from google.api_core import exceptions as gexc

        parent = self.queue_path(queue)
        request = self._task(parent, task)

        def create() -> bool:
            try:
                self.client.create_task(parent=parent, task=request)
            except gexc.AlreadyExists:  # queued, or ran or was deleted within about an hour
                return False
            except gexc.FailedPrecondition as exc:  # Cloud Tasks' answer for a missing queue
                raise NotFound(
                    f"task queue {queue!r} does not exist", details={"queue": queue}
                ) from exc
            return True

        return await self._call(create, queue)

    async def delete(self, queue: str, name: str) -> bool:
        from google.api_core import exceptions as gexc

        path = f"{self.queue_path(queue)}/tasks/{name}"

        def delete() -> bool:
            try:
                self.client.delete_task(name=path)
            except gexc.NotFound:  # never queued, already ran, or already deleted
                return False
            return True

        return await self._call(delete, queue)

    async def list(self, queue: str) -> list[QueuedTask]:
        parent = self.queue_path(queue)

        def fetch() -> list[QueuedTask]:
            out = []
            for task in self.client.list_tasks(parent=parent):
                # Cloud Tasks sets schedule_time at creation; the emulator leaves it unset.
                at = task.schedule_time or task.create_time
                out.append(
                    QueuedTask(
                        name=task.name.rsplit("/", 1)[-1],
                        url=task.http_request.url,
                        schedule_at=at.timestamp() if at else 0.0,
                        dispatch_count=task.dispatch_count,
                    )
                )
            return sorted(out, key=lambda t: (t.schedule_at, t.name))

        return await self._call(fetch, queue)

    async def close(self) -> None:
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            client.transport.close()  # quick; and at interpreter exit no thread can run it

    # -- requests ---------------------------------------------------------------------------

    def _queue(self, queue: str, settings: QueueSettings) -> Any:
        from google.cloud import tasks_v2

        return tasks_v2.Queue(
            name=self.queue_path(queue),
            retry_config=tasks_v2.RetryConfig(
                max_attempts=-1 if settings.max_attempts is None else settings.max_attempts,
                min_backoff=dt.timedelta(seconds=settings.min_backoff),
                max_backoff=dt.timedelta(seconds=settings.max_backoff),
                max_doublings=settings.max_doublings,
            ),
            rate_limits=tasks_v2.RateLimits(
                max_dispatches_per_second=settings.max_dispatches_per_second,
                max_concurrent_dispatches=settings.max_concurrent_dispatches,
            ),
        )

    def _task(self, parent: str, task: Task) -> Any:
        from google.cloud import tasks_v2

        http = tasks_v2.HttpRequest(
            url=task.url,
            http_method=tasks_v2.HttpMethod.POST,
            headers=dict(task.headers),
            body=task.body,
        )
        if self.service_account:
            # The audience Cloud Run checks is the service's URL, without the path.
            parts = urllib.parse.urlsplit(task.url)
            http.oidc_token = tasks_v2.OidcToken(
                service_account_email=self.service_account,
                audience=f"{parts.scheme}://{parts.netloc}",
            )
        request = tasks_v2.Task(http_request=http)
        if task.name is not None:
            request.name = f"{parent}/tasks/{task.name}"
        if task.schedule_at is not None:
            request.schedule_time = dt.datetime.fromtimestamp(task.schedule_at, dt.UTC)
        if self.dispatch_deadline is not None:
            request.dispatch_deadline = dt.timedelta(seconds=self.dispatch_deadline)
        return request

    async def _call(self, fn: Any, queue: str) -> Any:
        """Run a blocking client call in a thread, Google's errors turned into CFP's."""
        from google.api_core import exceptions as gexc

        try:
            return await asyncio.to_thread(fn)
        except gexc.NotFound as exc:
            raise NotFound(
                f"task queue {queue!r} does not exist", details={"queue": queue}
            ) from exc
        except gexc.InvalidArgument as exc:
            raise BadRequest(exc.message, details={"queue": queue}) from exc
        except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError) as exc:
            raise Unavailable(f"Cloud Tasks: {exc.message}", details={"queue": queue}) from exc
