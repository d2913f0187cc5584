"""Who may do what, where: the one permission table of the platform, and the checks over it.

Every authorization decision in CFP goes through `why` (or `allowed` / `require`) over the
caller's role bindings; `docs/rbac.md` and `GET /v1/roles` are generated from the same table, so
the published permissions and the enforced ones cannot differ.

How a check works. A binding `{principal, role, scope}` grants its role's actions on its scope and
everything under it: `system` covers every tenant; `tenant/{t}` covers that tenant, its teams and
its projects; `tenant/{t}/team/{m}` covers that team and the projects whose team is `m` (the
caller passes the project's team, since a project scope does not name it); `tenant/{t}/project/{p}`
covers that project alone. Nothing else grants anything: deny by default. Each action is checked
at the scope kinds its resources live at (its `levels`); checking it anywhere else is a bug in
the caller and raises, rather than silently allowing or denying.

Why the roles are cut this way (what a Google Cloud IAM user expects):

- Basic roles nest like Owner / Editor / Viewer. Admins hold every action of their scope,
  including granting roles there, reading secret values and diagnostics. Editors change
  everything inside a project, deploy included (as `roles/editor` deploys Cloud Run services),
  and may set secret values without reading them (as Editor adds Secret Manager versions but
  cannot access them); they do not change the project itself (settings, environments,
  deletion), nor who has access, nor read secrets. Gating production deploys is a job for the
  deploy policy hooks, not for a role. Viewers read everything in their scope that is not a
  secret or the audit trail, including runtime data (executions, logs, state), as Viewer reads
  most services' data.
- A role may be bound at its own scope kind or, where that is useful, above it, as any IAM role
  may be bound on a folder or organization: a project role bound on a team covers the team's
  projects and on a tenant all of its projects. System admin is bound only at `system`; tenant
  and team roles only at their own kind, because above it they would be a different role (a
  tenant admin over every tenant is a system admin without tenant lifecycle: nobody's job).
- Tenant admin is everything but the tenant lifecycle (create, suspend, delete, region, key):
  a tenant cannot suspend or move itself; that is the platform operator's decision.
- Auditor reads and exports the audit trail and the directory needed to interpret it (who,
  which team, which project, which binding) but no runtime data: least privilege, like
  `roles/iam.securityReviewer` with the audit log reader.
- Support reads the runtime (executions, logs, traces, dead letters) and uses diagnostics to
  help a tenant, never state, secrets or the audit trail, and changes nothing.
- Event publisher only publishes events, for the service accounts of Pub/Sub push and HTTPS
  publishers, like `roles/pubsub.publisher`.
- Listing the built-in roles (`GET /v1/roles`) needs no action: the catalogue is the same for
  everyone and published in `docs/rbac.md`.

Granting is not an escalation path: `can_grant` requires `role_binding.manage` on the scope and
every action the granted role would exercise there; revoking a binding needs the same as
granting it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from cfp.errors import Forbidden, ValidationFailed


class InvalidScope(ValidationFailed):
    """A scope is not `system`, `tenant/{t}`, `tenant/{t}/team/{m}` or `tenant/{t}/project/{p}`."""

    code = "invalid_scope"


class InvalidBinding(ValidationFailed):
    """A role does not exist, or may not be bound at that kind of scope."""

    code = "invalid_binding"


class ScopeKind(StrEnum):
    SYSTEM = "system"
    TENANT = "tenant"
    TEAM = "team"
    PROJECT = "project"


# How deep a kind sits: a binding of kind K can reach only targets of kinds at K's depth or below.
_DEPTH = {ScopeKind.SYSTEM: 0, ScopeKind.TENANT: 1, ScopeKind.TEAM: 2, ScopeKind.PROJECT: 3}
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def _check_id(value: str, what: str) -> None:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidScope(
            f"{what} id must be 1-128 letters, digits, '-' or '_' starting with a letter or "
            f"digit, got {value!r}",
            details={"field": what},
        )


@dataclass(frozen=True, slots=True)
class AccessScope:
    """Where a binding applies or an action is checked: `system`, `tenant/{t}`,
    `tenant/{t}/team/{m}` or `tenant/{t}/project/{p}` (a project scope does not name its team)."""

    tenant: str | None = None
    team: str | None = None
    project: str | None = None

    def __post_init__(self) -> None:
        if self.tenant is None:
            if self.team is not None or self.project is not None:
                raise InvalidScope("a team or project scope needs its tenant")
            return
        _check_id(self.tenant, "tenant")
        if self.team is not None and self.project is not None:
            raise InvalidScope("a scope is a team or a project, not both")
        if self.team is not None:
            _check_id(self.team, "team")
        if self.project is not None:
            _check_id(self.project, "project")

    @classmethod
    def system(cls) -> AccessScope:
        return cls()

    @classmethod
    def for_tenant(cls, tenant: str) -> AccessScope:
        return cls(tenant=tenant)

    @classmethod
    def for_team(cls, tenant: str, team: str) -> AccessScope:
        return cls(tenant=tenant, team=team)

    @classmethod
    def for_project(cls, tenant: str, project: str) -> AccessScope:
        return cls(tenant=tenant, project=project)

    @classmethod
    def parse(cls, text: str | AccessScope) -> AccessScope:
        """The scope a string names; `InvalidScope` (422) says what is wrong with it."""
        if isinstance(text, AccessScope):
            return text
        if not isinstance(text, str):
            raise InvalidScope(f"a scope is a string, got {type(text).__name__}")
        parts = text.split("/")
        if parts == ["system"]:
            return cls()
        if len(parts) == 2 and parts[0] == "tenant":
            return cls(tenant=parts[1])
        if len(parts) == 4 and parts[0] == "tenant" and parts[2] == "team":
            return cls(tenant=parts[1], team=parts[3])
        if len(parts) == 4 and parts[0] == "tenant" and parts[2] == "project":
            return cls(tenant=parts[1], project=parts[3])
        raise InvalidScope(
            f"scope must be system, tenant/{{t}}, tenant/{{t}}/team/{{m}} or "
            f"tenant/{{t}}/project/{{p}}, got {text!r}",
            details={"scope": text},
        )

    @property
    def kind(self) -> ScopeKind:
        if self.tenant is None:
            return ScopeKind.SYSTEM
        if self.team is not None:
            return ScopeKind.TEAM
        if self.project is not None:
            return ScopeKind.PROJECT
        return ScopeKind.TENANT

    def covers(self, target: AccessScope, *, team: str | None = None) -> bool:
        """Whether a binding on this scope applies to `target`; `team` is the target project's
        team when known (without it, team bindings do not reach the project)."""
        kind = self.kind
        if kind is ScopeKind.SYSTEM:
            return True
        if target.tenant != self.tenant:
            return False
        if kind is ScopeKind.TENANT:
            return True
        if kind is ScopeKind.TEAM:
            if target.kind is ScopeKind.TEAM:
                return target.team == self.team
            return target.kind is ScopeKind.PROJECT and team is not None and team == self.team
        return target == self

    def __str__(self) -> str:
        if self.tenant is None:
            return "system"
        if self.team is not None:
            return f"tenant/{self.tenant}/team/{self.team}"
        if self.project is not None:
            return f"tenant/{self.tenant}/project/{self.project}"
        return f"tenant/{self.tenant}"


@dataclass(frozen=True, slots=True)
class Action:
    id: str
    description: str
    levels: tuple[ScopeKind, ...]  # the scope kinds this action is checked at


@dataclass(frozen=True, slots=True)
class Role:
    id: str
    name: str
    description: str
    scopes: tuple[ScopeKind, ...]  # the scope kinds it may be bound at
    actions: frozenset[str]

    def as_json(self) -> dict[str, Any]:
        """The role as `GET /v1/roles` lists it, actions in table order."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "scopes": [str(kind) for kind in self.scopes],
            "actions": [a for a in ACTIONS if a in self.actions],
        }


_S, _T, _M, _P = ScopeKind.SYSTEM, ScopeKind.TENANT, ScopeKind.TEAM, ScopeKind.PROJECT
_ANY = (_S, _T, _M, _P)

_ACTIONS = [
    Action("tenant.read", "Read a tenant's record: name, region, status.", (_T,)),
    Action(
        "tenant.manage",
        "Create, update, suspend and delete tenants: their lifecycle, region and KMS key.",
        (_S, _T),
    ),
    Action("team.read", "List teams and read a team.", (_T, _M)),
    Action("team.manage", "Create, rename and delete teams and set their lead.", (_T, _M)),
    Action(
        "user.read",
        "List a tenant's members, people and service accounts, with their status.",
        (_T,),
    ),
    Action(
        "user.manage",
        "Invite, disable and remove people and reset their MFA; create service accounts and "
        "create, rotate and revoke their API keys.",
        (_S, _T),
    ),
    Action(
        "role_binding.read",
        "List the role bindings on a scope: who holds which role where.",
        _ANY,
    ),
    Action(
        "role_binding.manage",
        "Grant and revoke role bindings on a scope, never beyond the granter's own actions.",
        _ANY,
    ),
    Action(
        "project.read",
        "List and read projects, their environments, environment settings and subscriptions.",
        (_T, _M, _P),
    ),
    Action(
        "project.manage",
        "Create, update and delete projects and environments; change an environment's settings "
        "(validation mode, limits).",
        (_T, _M, _P),
    ),
    Action(
        "project.deploy",
        "Deploy flow versions into an environment and provision its subscriptions.",
        (_P,),
    ),
    Action("flow.read", "Read flows, steps, flow versions and their graphs.", (_P,)),
    Action(
        "flow.edit",
        "Change flows and step files in the workbench; shipping them needs project.deploy.",
        (_P,),
    ),
    Action(
        "step.invoke",
        "Call a project's api steps and run steps by hand; no step runs anonymously.",
        (_P,),
    ),
    Action(
        "event.publish",
        "Emit events into an environment (API, Pub/Sub or HTTPS ingest).",
        (_P,),
    ),
    Action(
        "execution.read",
        "Read executions, traces, logs and dead letters, live as well as stored.",
        (_P,),
    ),
    Action("execution.replay", "Replay dead letters and failed executions.", (_P,)),
    Action("state.read", "Read step state and stream items, live as well as stored.", (_P,)),
    Action("state.write", "Set, update and delete state and stream items by hand.", (_P,)),
    Action(
        "secret.read",
        "Read an environment's secret values in clear; their names are under project.read.",
        (_P,),
    ),
    Action(
        "secret.manage",
        "Set, rotate and delete an environment's secret values without reading them.",
        (_P,),
    ),
    Action(
        "audit.read",
        "Read audit records, checkpoints and proofs and verify the chain.",
        (_S, _T),
    ),
    Action(
        "audit.export",
        "Export an offline-verifiable audit bundle; the export itself is audited.",
        (_S, _T),
    ),
    Action(
        "report.read",
        "Read contracts, project status reports, session logs (as their visibility allows) "
        "and the executive report.",
        (_T, _P),
    ),
    Action(
        "report.manage",
        "Create and update contracts, project status reports and session logs.",
        (_T, _P),
    ),
    Action(
        "retention.manage",
        "Set the tenant's retention periods and legal holds and run purges.",
        (_T,),
    ),
    Action(
        "diagnostics.use",
        "Use the dev and diagnostic endpoints where a setting enables them; each use is audited.",
        (_S, _P),
    ),
    Action("workstation.access", "Open a project's Cloud Workstation.", (_P,)),
]
ACTIONS: Mapping[str, Action] = MappingProxyType({a.id: a for a in _ACTIONS})

_PROJECT_VIEW = {
    "role_binding.read",
    "project.read",
    "flow.read",
    "execution.read",
    "state.read",
    "report.read",
}
_PROJECT_EDIT = _PROJECT_VIEW | {
    "project.deploy",
    "flow.edit",
    "step.invoke",
    "event.publish",
    "execution.replay",
    "state.write",
    "secret.manage",
    "report.manage",
    "workstation.access",
}
_PROJECT_ADMIN = _PROJECT_EDIT | {
    "role_binding.manage",
    "project.manage",
    "secret.read",
    "diagnostics.use",
}
_DIRECTORY = {"tenant.read", "team.read", "user.read", "role_binding.read", "project.read"}

_ROLES = [
    Role(
        "system_admin",
        "System admin",
        "Operates the platform: every action everywhere, including tenant lifecycle.",
        (_S,),
        frozenset(ACTIONS),
    ),
    Role(
        "tenant_admin",
        "Tenant admin",
        "Administers one tenant: every action in it but the tenant's own lifecycle.",
        (_T,),
        frozenset(ACTIONS) - {"tenant.manage"},
    ),
    Role(
        "tenant_viewer",
        "Tenant viewer",
        "Reads everything in a tenant except secrets and the audit trail.",
        (_T,),
        frozenset(_PROJECT_VIEW | {"tenant.read", "team.read", "user.read"}),
    ),
    Role(
        "team_admin",
        "Team admin",
        "Administers a team and every project of the team.",
        (_M,),
        frozenset(_PROJECT_ADMIN | {"team.read", "team.manage"}),
    ),
    Role(
        "team_viewer",
        "Team viewer",
        "Reads a team and its projects except secrets.",
        (_M,),
        frozenset(_PROJECT_VIEW | {"team.read"}),
    ),
    Role(
        "project_admin",
        "Project admin",
        "Administers a project: its settings, environments, access and secrets, and all an "
        "editor does.",
        (_T, _M, _P),
        frozenset(_PROJECT_ADMIN),
    ),
    Role(
        "project_editor",
        "Project editor",
        "Builds and runs a project: edits flows, deploys, invokes steps, replays, writes state "
        "and sets secrets without reading them; does not manage the project or its access.",
        (_T, _M, _P),
        frozenset(_PROJECT_EDIT),
    ),
    Role(
        "project_viewer",
        "Project viewer",
        "Reads a project's flows, runtime and state, but not its secrets.",
        (_T, _M, _P),
        frozenset(_PROJECT_VIEW),
    ),
    Role(
        "auditor",
        "Auditor",
        "Reads, verifies and exports the audit trail, with the directory needed to interpret "
        "it; no runtime data.",
        (_S, _T),
        frozenset(_DIRECTORY | {"audit.read", "audit.export"}),
    ),
    Role(
        "support",
        "Support",
        "Helps run a tenant: reads the runtime (executions, logs, traces) and uses diagnostics; "
        "never state, secrets or the audit trail, and changes nothing.",
        (_S, _T, _M, _P),
        frozenset(
            {"tenant.read", "team.read", "project.read", "flow.read", "execution.read"}
            | {"diagnostics.use"}
        ),
    ),
    Role(
        "event_publisher",
        "Event publisher",
        "May only publish events: for the service accounts of Pub/Sub and HTTPS publishers.",
        (_T, _M, _P),
        frozenset({"event.publish"}),
    ),
]
ROLES: Mapping[str, Role] = MappingProxyType({r.id: r for r in _ROLES})


@dataclass(frozen=True, slots=True)
class Binding:
    """A principal holds a role on a scope (and everything under it)."""

    principal: str
    role: str
    scope: AccessScope

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope", AccessScope.parse(self.scope))

    def as_json(self) -> dict[str, str]:
        return {"principal": self.principal, "role": self.role, "scope": str(self.scope)}


@dataclass(frozen=True, slots=True)
class Decision:
    """An answer with its reason: which binding allowed it, or which roles would."""

    allowed: bool
    action: str
    target: AccessScope
    granted_by: Binding | None
    roles: tuple[str, ...]  # the roles that grant `action` on `target` when bound on or above it

    @property
    def reason(self) -> str:
        if self.granted_by is not None:
            return (
                f"{self.action} on {self.target} is granted by role {self.granted_by.role} "
                f"on {self.granted_by.scope}"
            )
        names = ", ".join(ROLES[r].name for r in self.roles)
        return (
            f"{self.action} on {self.target} needs one of the roles {names}, "
            f"bound on {self.target} or a scope above it"
        )

    def details(self) -> dict[str, Any]:
        """For the error envelope and the workbench's "disabled because" hints."""
        details: dict[str, Any] = {
            "action": self.action,
            "scope": str(self.target),
            "roles": list(self.roles),
        }
        if self.granted_by is not None:
            details["granted_by"] = self.granted_by.as_json()
        return details


def check_binding(role: str, scope: AccessScope | str) -> Role:
    """The role, if it exists and may be bound at that kind of scope; else `InvalidBinding`."""
    target = AccessScope.parse(scope)
    found = ROLES.get(role)
    if found is None:
        raise InvalidBinding(f"no role {role!r}", details={"role": role, "roles": list(ROLES)})
    if target.kind not in found.scopes:
        kinds = " or ".join(str(kind) for kind in found.scopes)
        raise InvalidBinding(
            f"role {role} may be bound only on a {kinds} scope, not on {target}",
            details={"role": role, "scope": str(target), "scopes": list(map(str, found.scopes))},
        )
    return found


def _valid(binding: Binding) -> Role | None:
    # A stored binding the table no longer admits (a removed role, a role at a scope it may not
    # be bound at) grants nothing: deny by default, not an error on every request.
    role = ROLES.get(binding.role)
    if role is None or binding.scope.kind not in role.scopes:
        return None
    return role


def _granting(
    bindings: Iterable[Binding], action: str, target: AccessScope, team: str | None
) -> Binding | None:
    for binding in bindings:
        role = _valid(binding)
        if role is not None and action in role.actions and binding.scope.covers(target, team=team):
            return binding
    return None


def _roles_granting(action: str, kind: ScopeKind) -> tuple[str, ...]:
    """The roles with `action` that may be bound on a `kind` scope or above it."""
    return tuple(
        role.id
        for role in _ROLES
        if action in role.actions and any(_DEPTH[b] <= _DEPTH[kind] for b in role.scopes)
    )


def _action(action: str, target: AccessScope) -> Action:
    found = ACTIONS.get(action)
    if found is None:
        raise ValueError(f"unknown action {action!r}")
    if target.kind not in found.levels:
        levels = " or ".join(str(level) for level in found.levels)
        raise ValueError(f"{action} is checked on a {levels} scope, not on {target}")
    return found


def why(
    bindings: Iterable[Binding],
    action: str,
    target: AccessScope | str,
    *,
    team: str | None = None,
) -> Decision:
    """Whether the bindings allow `action` on `target`, and why (`team`: the target project's
    team, when known)."""
    scope = AccessScope.parse(target)
    _action(action, scope)
    granted_by = _granting(bindings, action, scope, team)
    roles = _roles_granting(action, scope.kind)
    return Decision(granted_by is not None, action, scope, granted_by, roles)


def allowed(
    bindings: Iterable[Binding],
    action: str,
    target: AccessScope | str,
    *,
    team: str | None = None,
) -> bool:
    """Whether the bindings allow `action` on `target`; deny by default."""
    return why(bindings, action, target, team=team).allowed


def require(
    bindings: Iterable[Binding],
    action: str,
    target: AccessScope | str,
    *,
    team: str | None = None,
) -> Binding:
    """The binding that allows `action` on `target`, or `Forbidden` (403) saying which roles
    would."""
    decision = why(bindings, action, target, team=team)
    if decision.granted_by is None:
        raise Forbidden(decision.reason, details=decision.details())
    return decision.granted_by


def effective_actions(
    bindings: Iterable[Binding], target: AccessScope | str, *, team: str | None = None
) -> tuple[str, ...]:
    """Every action checked on `target`'s kind that the bindings allow there, in table order."""
    scope = AccessScope.parse(target)
    held = list(bindings)
    return tuple(
        action.id
        for action in _ACTIONS
        if scope.kind in action.levels and _granting(held, action.id, scope, team) is not None
    )


def can_grant(
    bindings: Iterable[Binding],
    role: str,
    scope: AccessScope | str,
    *,
    team: str | None = None,
) -> Decision:
    """Whether the bindings may grant (or revoke) `role` on `scope`: `role_binding.manage` there
    and every action the role would exercise there. The denial names the first missing action.
    `InvalidBinding` if the role may not be bound there at all."""
    target = AccessScope.parse(scope)
    granted = check_binding(role, target)
    held = list(bindings)
    decision = why(held, "role_binding.manage", target, team=team)
    if not decision.allowed:
        return decision
    depth = _DEPTH[target.kind]
    for action in _ACTIONS:
        reachable = any(_DEPTH[level] >= depth for level in action.levels)
        if action.id in granted.actions and reachable:
            if _granting(held, action.id, target, team) is None:
                roles = _roles_granting(action.id, target.kind)
                return Decision(False, action.id, target, None, roles)
    return decision


def render_markdown() -> str:
    """`docs/rbac.md`: the table as people read it (`cfp generate rbac` writes it)."""
    lines = [
        "# Roles and permissions",
        "",
        "Generated from `shared/cfp/domain/rbac.py` by `cfp generate rbac --out docs/rbac.md`. "
        "Change the table there, not this file: a test fails when the two differ.",
        "",
        "## Scopes",
        "",
        "A role binding `{principal, role, scope}` grants the role's actions on its scope and "
        "everything under it. Nothing else grants anything: deny by default.",
        "",
        "| Scope | Covers |",
        "|---|---|",
        "| `system` | every tenant, team and project |",
        "| `tenant/{t}` | the tenant, its teams and its projects |",
        "| `tenant/{t}/team/{m}` | the team and the projects whose team is `m` |",
        "| `tenant/{t}/project/{p}` | the project |",
        "",
        "## Roles",
        "",
        "| Role | Id | May be bound on | Description |",
        "|---|---|---|---|",
    ]
    for role in _ROLES:
        kinds = ", ".join(f"`{kind}`" for kind in role.scopes)
        lines.append(f"| {role.name} | `{role.id}` | {kinds} | {role.description} |")
    lines += [
        "",
        "## Actions by role",
        "",
        "| Action | " + " | ".join(f"`{role.id}`" for role in _ROLES) + " |",
        "|---|" + "|".join(":-:" for _ in _ROLES) + "|",
    ]
    for action in _ACTIONS:
        cells = " | ".join("✓" if action.id in role.actions else "·" for role in _ROLES)
        lines.append(f"| `{action.id}` | {cells} |")
    lines += [
        "",
        "## Actions",
        "",
        "| Action | Checked on | Description |",
        "|---|---|---|",
    ]
    for action in _ACTIONS:
        levels = ", ".join(f"`{level}`" for level in action.levels)
        lines.append(f"| `{action.id}` | {levels} | {action.description} |")
    lines += ["", "## Why", "", *_why_paragraphs(), ""]
    return "\n".join(lines)


def _why_paragraphs() -> list[str]:
    # The module docstring holds the reasoning once; the document quotes it.
    text = (__doc__ or "").split("\n\n", 1)[1]
    return text.strip().splitlines()
