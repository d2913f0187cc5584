"""The composition root: picks adapters from settings and hands them to services."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cfp.adapters.local.blobs import FileBlobStore
from cfp.adapters.local.documents import SqliteDocumentStore
from cfp.adapters.local.keyring import LocalKeyring
from cfp.adapters.local.mailer import OutboxMailer
from cfp.adapters.local.queue import InProcessProvisioner, SqliteEventQueue
from cfp.adapters.local.scheduler import LocalScheduler
from cfp.adapters.local.sqlite import Database
from cfp.domain.callers import Caller
from cfp.domain.flows import build_flows
from cfp.domain.naming import PubSubNames, SubscriptionSpec, subscription_specs
from cfp.domain.paths import Scope
from cfp.domain.tenancy import TenantPaths, tenant_path
from cfp.errors import SettingsError
from cfp.ports import (
    BlobStore,
    DocumentStore,
    IdentityVerifier,
    KeyService,
    Provisioner,
    TaskQueue,
)
from cfp.services.checkpoints import AnchorSink, TimestampClient
from cfp.services.control import ControlPlane
from cfp.services.identity import OWASP, TEST
from cfp.services.loader import Project, load_project
from cfp.services.observability import PROCESS_IDENTITY, LogBook, Metrics
from cfp.services.runtime import Runtime, RuntimeOptions
from cfp.services.streams import StreamHub
from cfp.services.subscriptions import SubscriptionLifecycle
from cfp.settings import Settings

TENANT_CHECK_SECONDS = 2.0


def tenancy_project_path(scope: Scope) -> str:
    return TenantPaths(scope.tenant).project(scope.project)


@dataclass
class Platform:
    """Everything one process serves: one project in one environment."""

    settings: Settings
    project: Project
    scope: Scope
    documents: DocumentStore
    queue: Any  # SqliteEventQueue | PubSubEventQueue: the EventQueue port and operations
    blobs: BlobStore
    keys: KeyService
    tasks: TaskQueue | None
    control: ControlPlane
    subscriptions: SubscriptionLifecycle
    logbook: LogBook
    metrics: Metrics
    hub: StreamHub
    runtime: Runtime
    db: Database | None = None  # the embedded backend's database
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    openers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _watcher: asyncio.Task[None] | None = None
    _checkpointing: asyncio.Task[None] | None = None
    _purging: asyncio.Task[None] | None = None

    @property
    def credentials_path(self) -> Path:
        """`<data-dir>/dev-credentials`: the local administrator and API key `cfp dev` made."""
        return Path(self.settings.data_dir) / "dev-credentials"

    @property
    def task_queue(self) -> str:
        """This project environment's task queue: CFP_TASKS_QUEUE, else cfp-{t}-{p}-{e}."""
        if self.settings.tasks_queue:
            return self.settings.tasks_queue
        name = f"cfp-{self.scope.tenant}-{self.scope.project}-{self.scope.env}"
        return re.sub(r"[^A-Za-z0-9-]", "-", name)[:100]

    def subscription_specs(self) -> list[SubscriptionSpec]:
        names = PubSubNames(self.scope.tenant, self.scope.project, self.scope.env)
        declared = [(s.topic, s.step, s.fifo, s.max_retries) for s in self.runtime.subscriptions()]
        return subscription_specs(declared, names)

    async def start(self, *, consume: bool = True) -> None:
        """Provision subscriptions (a worker that consumes; a function trusts its deploy and
        creates a missing one on first use) and start the runtime."""
        for open_ in self.openers:
            await open_()
        await self.control.start()
        settings = self.settings
        bootstrapped = bool(settings.bootstrap_admin_email and settings.bootstrap_admin_password)
        if bootstrapped:
            made = await self.control.bootstrap_admin(
                str(settings.bootstrap_admin_email), str(settings.bootstrap_admin_password)
            )
            if made is not None:
                self.logbook.log("info", "created the system administrator from CFP_BOOTSTRAP_*")
        if consume and settings.backend != "gcp":  # a local server, not a Cloud Run function
            wrote = await self.local_setup(create_admin=not bootstrapped)
            if wrote:  # the secrets are in the file only, never in a log line
                self.logbook.log("info", f"wrote local credentials to {self.credentials_path}")
        if consume:
            await self.register_flows()

        if consume:
            records = await self.subscriptions.provision(self.subscription_specs())
            for record in records:
                if record["state"] != "active":
                    self.logbook.log(
                        "error",
                        f"subscription {record['name']} failed: {record['error']} "
                        "(POST /v1/subscriptions/provision retries)",
                        {"subscription": record},
                    )
        elif hasattr(self.queue, "manage_subscriptions"):
            self.queue.manage_subscriptions = False
        await self.runtime.start(consume=consume)
        if consume:
            self.control.tenancy.on_status(self._tenant_status)
            await self._check_tenant()
            self._watcher = asyncio.create_task(self._watch_tenant(), name="cfp-tenant-status")
            self._checkpointing = asyncio.create_task(
                self.control.checkpoints.run(), name="cfp-audit-checkpoints"
            )
            self._purging = asyncio.create_task(self._purge_forever(), name="cfp-retention")

    def _tenant_status(self, tenant: str, status: str) -> None:
        if tenant == self.scope.tenant:
            self.runtime.hold(status != "active")

    async def _check_tenant(self) -> None:
        doc = await self.documents.get(tenant_path(self.scope.tenant))
        if doc is not None:
            self._tenant_status(self.scope.tenant, doc.get("status", "active"))

    async def _watch_tenant(self) -> None:
        """A tenant suspended through another process is noticed within TENANT_CHECK_SECONDS."""
        while True:
            await asyncio.sleep(TENANT_CHECK_SECONDS)
            with contextlib.suppress(Exception):
                await self._check_tenant()

    async def register_flows(self) -> list[str]:
        """Record the loaded project's flows (and new versions) in its tenant's directory."""
        tenancy = self.control.tenancy
        if await self.documents.get(tenancy_project_path(self.scope)) is None:
            return []  # the project is not registered in its tenant (a deploy does that)
        graphs = build_flows(self.project.steps.values())
        changed = await tenancy.register_flows(
            Caller.system(), self.scope.tenant, self.scope.project, self.scope.env, graphs
        )
        if changed:
            self.logbook.log("info", f"new flow versions: {', '.join(changed)}")
        return changed

    async def local_setup(self, *, create_admin: bool = True) -> bool:
        """Tenant, project, environment and dev credentials, as `cfp dev` makes them."""
        settings = self.settings
        return await self.control.ensure_local_setup(
            tenant=self.scope.tenant,
            project=self.scope.project,
            env=self.scope.env,
            region=settings.deployment_region,
            credentials=self.credentials_path,
            url=f"http://{settings.host}:{settings.port}",
            create_admin=create_admin,
        )

    async def diagnostics(self) -> dict[str, Any]:
        """What this process serves and how it is doing (R/diagnostics): no secret, no data."""
        states: dict[str, int] = {}
        page = await self.subscriptions.list(limit=500)
        for record in page.items:
            states[record["state"]] = states.get(record["state"], 0) + 1
        settings = self.settings
        return {
            "project": self.scope.project,
            "env": self.scope.env,
            "tenant": self.scope.tenant,
            "backend": settings.backend,
            "region": settings.deployment_region,
            "process": {
                "pid": os.getpid(),
                "python": sys.version.split()[0],
                "started": self.runtime.started,
            },
            "runtime": {
                "validation_mode": self.runtime.validation_mode,
                "steps": len(self.project.steps),
                "consumers": len(self.runtime.consumers()),
            },
            "queue": await self.queue.stats(),
            "subscriptions": states,
            "audit": {
                "checkpoint_seconds": settings.audit_checkpoint_seconds,
                "checkpoint_records": settings.audit_checkpoint_records,
                "anchors": self.control.checkpoints.anchors.location,
                "timestamps": settings.tsa_url is not None,
            },
        }

    async def _purge_forever(self) -> None:
        """Apply every tenant's retention periods every CFP_RETENTION_PURGE_SECONDS (legal
        holds suspend it; each purge is audited; docs/reporting.md)."""
        while True:
            await asyncio.sleep(self.settings.retention_purge_seconds)
            try:
                run = await self.control.retention.purge_all(time.time())
            except Exception as exc:  # the next round tries again; the loop must not die
                self.logbook.log("error", f"retention purge failed: {exc}")
                continue
            for tenant, message in run.failed.items():
                self.logbook.log("error", f"retention purge of tenant {tenant} failed: {message}")

    async def stop(self) -> None:
        for task in (self._watcher, self._checkpointing, self._purging):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.control.checkpoints.close()
        await self.runtime.stop()
        await self.queue.close()
        for close in reversed(self.closers):
            await close()
        if self.db is not None:
            self.db.close()


@dataclass
class _Backend:
    documents: DocumentStore
    queue: Any
    blobs: BlobStore
    keys: KeyService
    tasks: TaskQueue | None
    provisioner: Provisioner
    anchors: AnchorSink
    db: Database | None = None
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    openers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def _local_backend(settings: Settings) -> _Backend:
    from cfp.adapters.local.tasks import SqliteTaskQueue

    db = Database(Path(settings.data_dir) / "cfp.db", synchronous=settings.sqlite_synchronous)
    tasks = SqliteTaskQueue(db)  # dispatches only once used
    return _Backend(
        documents=SqliteDocumentStore(db),
        queue=SqliteEventQueue(db),
        blobs=FileBlobStore(Path(settings.data_dir) / "blobs"),
        keys=LocalKeyring(Path(settings.data_dir) / "keyring.json"),
        tasks=tasks,
        provisioner=InProcessProvisioner(),
        anchors=AnchorSink(
            FileBlobStore(settings.anchor_dir), location=settings.anchor_dir.resolve().as_uri()
        ),
        db=db,
        closers=[tasks.close],
    )


def _google_backend(settings: Settings, scope: Scope) -> _Backend:
    """Firestore, Pub/Sub and Cloud Storage: Google's services (`gcp`) or their emulators."""
    from cfp.adapters.gcp.firestore import FirestoreDocumentStore
    from cfp.adapters.gcp.pubsub import (
        PubSubAdmin,
        PubSubClients,
        PubSubEventQueue,
        PubSubProvisioner,
    )
    from cfp.adapters.gcp.storage import GcsBlobStore

    if settings.backend == "emulators":
        missing = [
            var
            for var, value in (
                ("FIRESTORE_EMULATOR_HOST", settings.firestore_emulator_host),
                ("PUBSUB_EMULATOR_HOST", settings.pubsub_emulator_host),
                ("STORAGE_EMULATOR_HOST", settings.storage_emulator_host),
            )
            if not value
        ]
        if missing:
            raise SettingsError(
                f"--backend emulators needs {', '.join(missing)}: `cfp dev --backend emulators` "
                "starts the emulators and sets them (see docs/gcp.md)",
                details={"missing": missing},
            )
    if settings.backend == "gcp":
        from cfp.adapters.gcp.errors import require_credentials

        require_credentials()
    project = settings.google_project
    documents = FirestoreDocumentStore.connect(
        project, settings.database, emulator_host=settings.firestore_emulator_host
    )
    blobs = GcsBlobStore(
        settings.bucket_name, project=project, endpoint=settings.storage_emulator_host
    )
    # Checkpoint anchors: another bucket, retention-locked by Terraform (docs/audit.md).
    anchor_blobs = GcsBlobStore(
        settings.anchor_bucket, project=project, endpoint=settings.storage_emulator_host
    )
    clients = PubSubClients(project, emulator_host=settings.pubsub_emulator_host)
    queue = PubSubEventQueue(
        documents=documents,
        clients=clients,
        names=PubSubNames(scope.tenant, scope.project, scope.env),
        root=scope.root,
        blobs=blobs,
        inline_limit=settings.payload_inline_limit,
        attributes={"tenant": scope.tenant, "project": scope.project, "env": scope.env},
    )
    keys: KeyService
    if settings.backend == "gcp":
        from cfp.adapters.gcp.kms import CloudKmsKeyService

        keys = CloudKmsKeyService(
            project=project, region=settings.google_region, keyring=str(settings.kms_keyring)
        )
    else:  # there is no Cloud KMS emulator: the local keyring stands in (docs/gcp.md)
        keys = LocalKeyring(Path(settings.data_dir) / "keyring.json")
    tasks: TaskQueue | None = None
    if settings.backend == "gcp" or settings.tasks_emulator_host:
        from cfp.adapters.gcp.tasks import CloudTasksQueue

        tasks = CloudTasksQueue.connect(
            project,
            settings.google_region,
            emulator_host=settings.tasks_emulator_host,
            service_account=settings.tasks_service_account,
        )
    return _Backend(
        documents=documents,
        queue=queue,
        blobs=blobs,
        keys=keys,
        tasks=tasks,
        provisioner=PubSubProvisioner(PubSubAdmin(clients)),
        anchors=AnchorSink(
            anchor_blobs,
            location=f"gs://{settings.anchor_bucket}",
            # checked before the first anchor is written, by whoever writes anchors
            check=(
                (lambda: require_locked_retention(anchor_blobs, settings))
                if settings.backend == "gcp"
                else None
            ),
        ),
        closers=[documents.close, *([tasks.close] if tasks is not None else [])],
        # the emulators start empty; in Google Cloud, Terraform creates the buckets
        openers=(
            [
                lambda: blobs.ensure_bucket(location=settings.google_region),
                lambda: anchor_blobs.ensure_bucket(location=settings.google_region),
            ]
            if settings.backend == "emulators"
            else []
        ),
    )


async def require_locked_retention(anchors: Any, settings: Settings) -> None:
    """On Google Cloud, checkpoints are anchored only in a bucket whose retention policy is
    locked: anywhere else, whoever can rewrite the store could rewrite the anchors too."""
    period, locked = await anchors.retention()
    if not (period and locked):
        state = "has no retention policy" if not period else "has an unlocked retention policy"
        raise SettingsError(
            f"CFP_AUDIT_ANCHOR_BUCKET: gs://{settings.anchor_bucket} {state}; audit anchors need "
            "a locked one (Terraform sets it; see docs/audit.md)",
            details={"settings": ["CFP_AUDIT_ANCHOR_BUCKET"], "retention_seconds": period},
        )


def _control_plane(settings: Settings, backend: _Backend) -> ControlPlane:
    return ControlPlane(
        backend.documents,
        backend.keys,
        OutboxMailer(Path(settings.data_dir) / "outbox"),
        region=settings.deployment_region,
        public_url=f"http://{settings.host}:{settings.port}",
        password_profile=TEST if settings.password_profile == "test" else OWASP,
        verifier=_identity_verifier(settings, backend),
        anchors=backend.anchors,
        artifacts=backend.blobs,
        tsa=_timestamp_authority(settings, backend),
        checkpoint_seconds=settings.audit_checkpoint_seconds,
        checkpoint_records=settings.audit_checkpoint_records,
    )


def _timestamp_authority(settings: Settings, backend: _Backend) -> TimestampClient | None:
    """RFC 3161 timestamps of the checkpoints, when CFP_TSA_URL names an authority."""
    if settings.tsa_url is None:
        return None
    from cfp.adapters.tsa import TimestampAuthority

    authority = TimestampAuthority(settings.tsa_url)
    backend.closers.append(authority.close)
    return authority


def _identity_verifier(settings: Settings, backend: _Backend) -> IdentityVerifier | None:
    """Identity Platform / Firebase ID tokens: on Google Cloud, or from the Auth emulator."""
    if settings.backend != "gcp" and not settings.firebase_auth_emulator_host:
        return None
    from cfp.adapters.gcp.firebase_auth import FirebaseVerifier

    verifier = FirebaseVerifier(
        settings.google_project, emulator_host=settings.firebase_auth_emulator_host
    )
    backend.closers.append(verifier.close)
    return verifier


@contextlib.asynccontextmanager
async def open_control(settings: Settings) -> AsyncIterator[ControlPlane]:
    """The control plane alone, on the backend the settings name, for offline administration
    (`cfp admin`): no project is loaded and nothing is served."""
    scope = Scope(settings.tenant, settings.project_name or "admin", settings.env)
    backend = (
        _local_backend(settings)
        if settings.backend == "local"
        else _google_backend(settings, scope)
    )
    for open_ in backend.openers:
        await open_()
    control = _control_plane(settings, backend)
    try:
        await control.start()
        yield control
    finally:
        await backend.queue.close()
        for close in reversed(backend.closers):
            await close()
        if backend.db is not None:
            backend.db.close()


def build(settings: Settings, *, log_stream: TextIO | None = None) -> Platform:
    """Load the project (refusing an invalid one) and wire the backend the settings name."""
    if settings.project_dir is None:
        raise SettingsError("no project: pass --project DIR or set CFP_PROJECT")
    root = Path(settings.project_dir).resolve()
    if not root.is_dir():
        raise SettingsError(f"--project / CFP_PROJECT: {root} is not a directory")
    project = load_project(root, slug=settings.project_name)
    scope = Scope(settings.tenant, project.slug, settings.env)
    PROCESS_IDENTITY.update(tenant=scope.tenant, project=scope.project, env=scope.env)
    backend = (
        _local_backend(settings)
        if settings.backend == "local"
        else _google_backend(settings, scope)
    )
    documents, queue = backend.documents, backend.queue
    lifecycle = SubscriptionLifecycle(
        documents, scope, backend.provisioner, backend=settings.backend
    )
    if hasattr(queue, "require"):
        queue.require = lifecycle.require
    logbook = LogBook(
        documents, scope, stream=log_stream or sys.stdout, min_level=settings.log_level
    )
    metrics = Metrics()
    hub = StreamHub()
    control = _control_plane(settings, backend)
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
    return Platform(
        settings=settings,
        project=project,
        scope=scope,
        documents=documents,
        queue=queue,
        blobs=backend.blobs,
        keys=backend.keys,
        tasks=backend.tasks,
        control=control,
        subscriptions=lifecycle,
        logbook=logbook,
        metrics=metrics,
        hub=hub,
        runtime=runtime,
        db=backend.db,
        closers=backend.closers,
        openers=backend.openers,
    )
