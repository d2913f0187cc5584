"""Who is calling: the authenticated principal with its role bindings and the request's ids, as
services see it — for authorization and for the audit record of what it does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from cfp.domain.audit import Actor, AuditEntry, Target
from cfp.domain.rbac import AccessScope, Binding, Decision, require, why

PrincipalKind = Literal["user", "service_account", "system", "anonymous"]


@dataclass(frozen=True)
class Caller:
    principal_id: str
    kind: PrincipalKind
    bindings: tuple[Binding, ...] = ()
    email: str | None = None
    correlation_id: str | None = None
    trace_id: str | None = None
    client_address: str | None = None
    user_agent: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def system(cls, **ids: Any) -> Caller:
        """The platform itself (bootstrap, `cfp admin`): allowed everything."""
        return cls(
            "system",
            "system",
            (Binding("system", "system_admin", AccessScope.system()),),
            **ids,
        )

    def check(self, action: str, scope: AccessScope | str, *, team: str | None = None) -> Binding:
        """The binding allowing `action` on `scope`, or Forbidden (403) naming the roles that
        would."""
        return require(self.bindings, action, scope, team=team)

    def may(self, action: str, scope: AccessScope | str, *, team: str | None = None) -> bool:
        return why(self.bindings, action, scope, team=team).allowed

    def decision(
        self, action: str, scope: AccessScope | str, *, team: str | None = None
    ) -> Decision:
        return why(self.bindings, action, scope, team=team)

    def tenants(self) -> set[str]:
        """The tenants this principal holds any binding in."""
        return {b.scope.tenant for b in self.bindings if b.scope.tenant is not None}

    @property
    def is_system_admin(self) -> bool:
        return any(b.role == "system_admin" and b.scope.tenant is None for b in self.bindings)

    def entry(
        self,
        action: str,
        target_type: str,
        target_id: str,
        scope: str,
        *,
        outcome: Literal["success", "failure"] = "success",
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """The audit entry of an action this caller takes."""
        return AuditEntry(
            actor=Actor(id=self.principal_id, kind=self.kind),
            action=action,
            target=Target(type=target_type, id=target_id),
            scope=scope,
            outcome=outcome,
            correlation_id=self.correlation_id,
            trace_id=self.trace_id,
            client_address=self.client_address,
            user_agent=self.user_agent,
            details=details or {},
        )
