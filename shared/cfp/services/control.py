"""The control plane: identity, the tenant directory and the audit log, wired together, and the
one way a request's credential becomes a `Caller` with its role bindings."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from cfp.domain.audit import Actor, AuditEntry, Target
from cfp.domain.callers import Caller
from cfp.domain.documents import Write
from cfp.domain.identity import AuthEvent
from cfp.domain.rbac import Binding
from cfp.errors import Unauthorized
from cfp.ports import DocumentStore, KeyService, Mailer
from cfp.services.audit import AuditLog
from cfp.services.identity import OWASP, IdentityService, PasswordProfile
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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.documents = documents
        self.audit = AuditLog(documents, clock=clock)
        self.tenancy = Tenancy(documents, self.audit, keys, region=region, clock=clock)
        self.identity = IdentityService(
            documents,
            keys,
            mailer,
            password_profile=password_profile,
            public_url=public_url,
            audit=self._audit_writes,
            clock=clock,
        )

    async def _audit_writes(self, event: AuthEvent) -> Sequence[Write]:
        return await self.audit.plan([auth_entry(event)])

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
        a credential that is not valid (expired, revoked, disabled principal)."""
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
