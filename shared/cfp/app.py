"""The composition root: picks adapters from settings and hands them to services."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cfp.adapters.local.documents import SqliteDocumentStore
from cfp.adapters.local.queue import SqliteEventQueue
from cfp.adapters.local.scheduler import LocalScheduler
from cfp.adapters.local.sqlite import Database
from cfp.domain.paths import Scope
from cfp.errors import SettingsError
from cfp.services.loader import Project, load_project
from cfp.services.observability import PROCESS_IDENTITY, LogBook, Metrics
from cfp.services.runtime import Runtime, RuntimeOptions
from cfp.services.streams import StreamHub
from cfp.settings import Settings


@dataclass
class Platform:
    """Everything one process serves: one project in one environment."""

    settings: Settings
    project: Project
    scope: Scope
    db: Database
    documents: SqliteDocumentStore
    queue: SqliteEventQueue
    logbook: LogBook
    metrics: Metrics
    hub: StreamHub
    runtime: Runtime

    async def start(self, *, consume: bool = True) -> None:
        await self.runtime.start(consume=consume)

    async def stop(self) -> None:
        await self.runtime.stop()
        await self.queue.close()
        self.db.close()


def build(settings: Settings, *, log_stream: TextIO | None = None) -> Platform:
    """Load the project (refusing an invalid one) and wire the embedded backend."""
    if settings.project_dir is None:
        raise SettingsError("no project: pass --project DIR or set CFP_PROJECT")
    root = Path(settings.project_dir).resolve()
    if not root.is_dir():
        raise SettingsError(f"--project / CFP_PROJECT: {root} is not a directory")
    project = load_project(root, slug=settings.project_name)
    scope = Scope(settings.tenant, project.slug, settings.env)
    PROCESS_IDENTITY.update(tenant=scope.tenant, project=scope.project, env=scope.env)
    db = Database(Path(settings.data_dir) / "cfp.db", synchronous=settings.sqlite_synchronous)
    documents = SqliteDocumentStore(db)
    queue = SqliteEventQueue(db)
    logbook = LogBook(
        documents, scope, stream=log_stream or sys.stdout, min_level=settings.log_level
    )
    metrics = Metrics()
    hub = StreamHub()
    runtime = Runtime(
        project=project,
        scope=scope,
        documents=documents,
        queue=queue,
        logbook=logbook,
        metrics=metrics,
        hub=hub,
        scheduler=LocalScheduler(),
        options=RuntimeOptions(
            validation_mode=settings.validation_mode,
            retry_base_seconds=settings.retry_base_seconds,
            poll_seconds=settings.poll_seconds,
        ),
    )
    for warning in project.warnings:
        logbook.log("warn", f"{warning['file']}: {warning['message']}", {"problem": warning})
    return Platform(settings, project, scope, db, documents, queue, logbook, metrics, hub, runtime)
