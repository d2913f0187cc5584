"""The control plane: identity, the tenant directory and the audit log, wired together, and the
one way a request's credential becomes a `Caller` with its role bindings."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cfp.domain.audit import Actor, AuditEntry, Target
from cfp.domain.callers import Caller
from cfp.domain.documents import Write
from cfp.domain.identity import AuthEvent, InviteAccepted
from cfp.domain.rbac import AccessScope, Binding
from cfp.domain.tenancy import EnvIn, ProjectIn, TenantIn, TenantPaths, directory_path
from cfp.errors import Forbidden, NotFound, Unauthorized
from cfp.ports import BlobStore, DocumentStore, IdentityVerifier, KeyService, Mailer
from cfp.services.audit import AuditLog
from cfp.services.audit_proofs import AuditProofs
from cfp.services.checkpoints import (
    DEFAULT_EVERY,
    DEFAULT_INTERVAL,
    AnchorSink,
    Checkpointer,
    MemoryAnchors,
    TimestampClient,
)
from cfp.services.idempotency import Idempotency
from cfp.services.identity import OWASP, IdentityService, PasswordProfile
from cfp.services.identity.external import ExternalIdentities
from cfp.services.members import Members, ServiceAccountIn
from cfp.services.reporting import Reporting
from cfp.services.retention import Retention
from cfp.services.tenancy import Tenancy


def auth_entry(event: AuthEvent) -> AuditEntry:
    """The audit entry of an identity event: on its tenant's chain, else the system chain."""
    kind = event.actor_kind or ("anonymous" if event.actor_id is None else "user")
    details: dict[str, Any] = {}
    if event.reason:
        details["reason"] = event.reason
    target = event.target or event.actor_id or "unknown"
    return AuditEntry(
        actor=Actor(id=event.actor_id or "anonymous", kind=kind),  # type: ignore[arg-type]
        action=event.action,
        target=Target(type=event.target_type, id=target),
        scope=f"tenant/{event.tenant}" if event.tenant else "system",
        outcome=event.outcome,
        client_address=event.client.address if event.client else None,
        user_agent=event.client.user_agent if event.client else None,
        details=details,
    )


class ControlPlane:
    """Identity, tenancy and audit over one document store and key service."""

    def __init__(
        self,
        documents: DocumentStore,
        keys: KeyService,
        mailer: Mailer,
        *,
        region: str,
        public_url: str,
        password_profile: PasswordProfile = OWASP,
        verifier: IdentityVerifier | None = None,
        clock: Callable[[], float] = time.time,
        anchors: AnchorSink | None = None,
        artifacts: BlobStore | None = None,
        tsa: TimestampClient | None = None,
        checkpoint_seconds: float = DEFAULT_INTERVAL,
        checkpoint_records: int = DEFAULT_EVERY,
    ) -> None:
        self.documents = documents
        self.audit = AuditLog(documents, clock=clock)
        # Signed checkpoints anchored outside the store (in memory when no sink is given:
        # tests and tools that make no checkpoint), proofs and exports.
        self.checkpoints = Checkpointer(
            documents,
            self.audit,
            keys,
            anchors or AnchorSink(MemoryAnchors(), location="memory:"),
            region=region,
            tsa=tsa,
            interval=checkpoint_seconds,
            every=checkpoint_records,
            clock=clock,
        )
        self.proofs = AuditProofs(documents, self.audit, self.checkpoints, artifacts, clock=clock)
        self.tenancy = Tenancy(documents, self.audit, keys, region=region, clock=clock)
        self.identity = IdentityService(
            documents,
            keys,
            mailer,
            password_profile=password_profile,
            public_url=public_url,
            audit=self._audit_writes,
            on_invite_accepted=self._invite_accepted,
            clock=clock,
        )
        self.members = Members(documents, self.audit, self.identity, self.tenancy, clock=clock)
        # contracts (their documents in the artifacts' blob store), reports, session logs
        self.reporting = Reporting(documents, self.audit, artifacts, clock=clock)
        self.retention = Retention(documents, self.audit, self.tenancy, clock=clock)
        # Identity Platform / Firebase ID tokens, mapped to the same principals
        self.external = (
            None
            if verifier is None
            else ExternalIdentities(
                documents,
                verifier,
                platform_issuer=self.identity.tokens.issuer,
                audit=self._audit_writes,
                clock=clock,
            )
        )
        self.idempotency = Idempotency(documents, clock=clock)

    async def _audit_writes(self, event: AuthEvent) -> Sequence[Write]:
        return await self.audit.plan([auth_entry(event)])

    async def _invite_accepted(self, accepted: InviteAccepted) -> Sequence[Write]:
        return await self.members.on_invite_accepted(accepted)

    async def start(self) -> None:
        await self.identity.start()

    async def authenticate(
        self,
        token: str,
        *,
        correlation_id: str | None = None,
        trace_id: str | None = None,
        client_address: str | None = None,
        user_agent: str | None = None,
    ) -> Caller:
        """The caller a bearer credential names, with its bindings as they are now; 401 for
        a credential that is not valid (expired, revoked, disabled principal). With a verifier,
        a JWT the platform did not issue is an outside provider's ID token."""
        if self.external is not None and self.external.handles(token):
            found = await self.external.authenticate(token)
        else:
            found = await self.identity.authenticate(token)
        bindings: tuple[Binding, ...] = await self.tenancy.bindings_of(found.principal_id)
        if found.tenant is not None:  # an API key acts in its own tenant only
            bindings = tuple(b for b in bindings if b.scope.tenant == found.tenant)
        if found.kind not in ("user", "service_account"):
            raise Unauthorized("this credential names no principal")
        return Caller(
            principal_id=found.principal_id,
            kind=found.kind,
            bindings=bindings,
            email=found.email,
            correlation_id=correlation_id,
            trace_id=trace_id,
            client_address=client_address,
            user_agent=user_agent,
            claims={"method": found.method, "session_id": found.session_id},
        )

    async def bootstrap_admin(self, email: str, password: str) -> str | None:
        """On an empty store: create the system admin. Its id, or None when one exists."""
        existing = await self.identity.find_principal(email)
        if existing is not None:
            return None
        view = await self.identity.create_user(
            email, password=password, display_name="Administrator"
        )
        await self.tenancy.bind_system(view.id, "system_admin", "system")
        return view.id

    async def ensure_local_setup(
        self,
        *,
        tenant: str,
        project: str,
        env: str,
        region: str,
        credentials: Path,
        url: str,
        create_admin: bool,
    ) -> bool:
        """What `cfp dev` needs to stay a two-command experience: the tenant, the served project
        and environment (created once), and — unless an administrator was bootstrapped from the
        environment — a local administrator with a generated password and a service account
        with an API key, written once to `credentials` (mode 0600). True when it wrote them."""
        system = Caller.system()
        if await self.documents.get(directory_path(tenant)) is None:
            await self.tenancy.create_tenant(
                system, TenantIn(name=tenant, region=region, id=tenant)
            )
        paths = TenantPaths(tenant)
        if await self.documents.get(paths.project(project)) is None:
            await self.tenancy.create_project(system, tenant, ProjectIn(name=project, slug=project))
        if await self.documents.get(paths.env(project, env)) is None:
            await self.tenancy.create_env(system, tenant, project, EnvIn(name=env))
        if not create_admin or await asyncio.to_thread(credentials.exists):
            return False
        password = secrets.token_urlsafe(18)
        admin = await self.identity.find_principal(DEV_ADMIN_EMAIL)
        if admin is None:
            admin = await self.identity.create_user(
                DEV_ADMIN_EMAIL, password=password, display_name="Local administrator"
            )
            await self.tenancy.bind_system(admin.id, "system_admin", "system")
        else:  # the file was deleted: a new password, so the new file tells the truth
            password = ""
        account = await self.members.create_service_account(
            system, tenant, ServiceAccountIn(name="cfp dev")
        )
        await self.tenancy.bind_system(account.id, "tenant_admin", f"tenant/{tenant}")
        key = await self.identity.create_api_key(account.id, tenant=tenant)
        document = {
            "url": url,
            "tenant": tenant,
            "project": project,
            "env": env,
            "email": DEV_ADMIN_EMAIL,
            "password": password or None,
            "api_key": key.key,
            "service_account": account.id,
        }
        await asyncio.to_thread(write_private, credentials, json.dumps(document, indent=2) + "\n")
        return True

    async def authorize_project(
        self, caller: Caller, tenant: str, project: str, action: str
    ) -> Caller:
        """`caller` may do `action` in `project` of `tenant`: a member (or system admin) of an
        active tenant of this region, with a binding granting the action there."""
        if not (caller.is_system_admin or tenant in caller.tenants()):
            raise Forbidden(f"no access to tenant {tenant!r}", details={"tenant": tenant})
        try:
            record = await self.tenancy.resolve_tenant(tenant)
        except NotFound:
            raise Forbidden(f"no access to tenant {tenant!r}", details={"tenant": tenant}) from None
        if record["status"] == "suspended" and not caller.is_system_admin:
            raise Forbidden(f"tenant {tenant!r} is suspended", details={"tenant": tenant})
        team = await self.tenancy.project_team(tenant, project)
        caller.check(action, AccessScope.for_project(tenant, project), team=team)
        return caller


DEV_ADMIN_EMAIL = "admin@cfp.localhost"


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (mode 0600 from the start, replaced atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
