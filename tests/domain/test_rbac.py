"""The permission table as published, and the rules of scopes, bindings and checks.

The expected matrix below is written out by hand, not read from `cfp.domain.rbac`: changing a
permission in the code fails these tests until the change is made here as well, on purpose.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cfp.cli import app
from cfp.domain import rbac
from cfp.domain.rbac import (
    ACTIONS,
    ROLES,
    AccessScope,
    Binding,
    InvalidBinding,
    InvalidScope,
    ScopeKind,
    allowed,
    can_grant,
    check_binding,
    effective_actions,
    require,
    why,
)
from cfp.errors import Forbidden
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

DOCS = Path(__file__).resolve().parents[2] / "docs" / "rbac.md"

# x: the role grants the action; .: it does not.
# SA system_admin, TA tenant_admin, TV tenant_viewer, MA team_admin, MV team_viewer,
# PA project_admin, PE project_editor, PV project_viewer, AU auditor, SU support,
# EP event_publisher.
EXPECTED_MATRIX = """
                     SA TA TV MA MV PA PE PV AU SU EP
tenant.read          x  x  x  .  .  .  .  .  x  x  .
tenant.manage        x  .  .  .  .  .  .  .  .  .  .
team.read            x  x  x  x  x  .  .  .  x  x  .
team.manage          x  x  .  x  .  .  .  .  .  .  .
user.read            x  x  x  .  .  .  .  .  x  .  .
user.manage          x  x  .  .  .  .  .  .  .  .  .
role_binding.read    x  x  x  x  x  x  x  x  x  .  .
role_binding.manage  x  x  .  x  .  x  .  .  .  .  .
project.read         x  x  x  x  x  x  x  x  x  x  .
project.manage       x  x  .  x  .  x  .  .  .  .  .
project.deploy       x  x  .  x  .  x  x  .  .  .  .
flow.read            x  x  x  x  x  x  x  x  .  x  .
flow.edit            x  x  .  x  .  x  x  .  .  .  .
step.invoke          x  x  .  x  .  x  x  .  .  .  .
event.publish        x  x  .  x  .  x  x  .  .  .  x
execution.read       x  x  x  x  x  x  x  x  .  x  .
execution.replay     x  x  .  x  .  x  x  .  .  .  .
state.read           x  x  x  x  x  x  x  x  .  .  .
state.write          x  x  .  x  .  x  x  .  .  .  .
secret.read          x  x  .  x  .  x  .  .  .  .  .
secret.manage        x  x  .  x  .  x  x  .  .  .  .
audit.read           x  x  .  .  .  .  .  .  x  .  .
audit.export         x  x  .  .  .  .  .  .  x  .  .
report.read          x  x  x  x  x  x  x  x  .  .  .
report.manage        x  x  .  x  .  x  x  .  .  .  .
retention.manage     x  x  .  .  .  .  .  .  .  .  .
diagnostics.use      x  x  .  x  .  x  .  .  .  x  .
workstation.access   x  x  .  x  .  x  x  .  .  .  .
"""
ROLE_COLUMNS = {
    "SA": "system_admin",
    "TA": "tenant_admin",
    "TV": "tenant_viewer",
    "MA": "team_admin",
    "MV": "team_viewer",
    "PA": "project_admin",
    "PE": "project_editor",
    "PV": "project_viewer",
    "AU": "auditor",
    "SU": "support",
    "EP": "event_publisher",
}
# Where each role may be bound, and where each action is checked.
EXPECTED_BINDABLE = {
    "system_admin": {"system"},
    "tenant_admin": {"tenant"},
    "tenant_viewer": {"tenant"},
    "team_admin": {"team"},
    "team_viewer": {"team"},
    "project_admin": {"tenant", "team", "project"},
    "project_editor": {"tenant", "team", "project"},
    "project_viewer": {"tenant", "team", "project"},
    "auditor": {"system", "tenant"},
    "support": {"system", "tenant", "team", "project"},
    "event_publisher": {"tenant", "team", "project"},
}


def parse_matrix() -> tuple[list[str], dict[tuple[str, str], bool]]:
    header, *rows = EXPECTED_MATRIX.strip().splitlines()
    roles = [ROLE_COLUMNS[column] for column in header.split()]
    actions: list[str] = []
    expected: dict[tuple[str, str], bool] = {}
    for row in rows:
        action, *cells = row.split()
        assert len(cells) == len(roles), row
        actions.append(action)
        for role, cell in zip(roles, cells, strict=True):
            assert cell in "x.", row
            expected[role, action] = cell == "x"
    return actions, expected


EXPECTED_ACTIONS, EXPECTED = parse_matrix()

# One tenant `acme` with team `core` owning project `shop`; and look-alikes elsewhere.
SYSTEM = AccessScope.system()
ACME = AccessScope.for_tenant("acme")
CORE = AccessScope.for_team("acme", "core")
SHOP = AccessScope.for_project("acme", "shop")
TARGET_OF = {"system": SYSTEM, "tenant": ACME, "team": CORE, "project": SHOP}
DEPTH = {"system": 0, "tenant": 1, "team": 2, "project": 3}


def test_the_table_has_exactly_the_published_actions_and_roles():
    assert list(ACTIONS) == EXPECTED_ACTIONS
    assert list(ROLES) == list(ROLE_COLUMNS.values())
    for action in ACTIONS.values():
        assert action.description.endswith("."), action.id
        assert action.levels, action.id
    for role in ROLES.values():
        assert role.name and role.description.endswith("."), role.id
        assert role.actions <= set(ACTIONS), role.id


@pytest.mark.parametrize(("role", "action"), sorted(EXPECTED))
def test_permission_table(role, action):
    """Every role x every action: granted as published, and enforced that way from the role's
    broadest scope on every target under it where the action is checked."""
    expect = EXPECTED[role, action]
    assert (action in ROLES[role].actions) is expect

    broadest = min(EXPECTED_BINDABLE[role], key=DEPTH.get)
    binding = Binding("alice", role, TARGET_OF[broadest])
    levels = [str(level) for level in ACTIONS[action].levels]
    reachable = [level for level in levels if DEPTH[level] >= DEPTH[broadest]]
    if not reachable:  # nothing of this kind under the role's scopes: never granted there
        assert not expect
        reachable = levels
    for level in reachable:
        assert allowed([binding], action, TARGET_OF[level], team="core") is expect, level


def test_roles_are_bindable_where_published():
    for role_id, kinds in EXPECTED_BINDABLE.items():
        assert {str(kind) for kind in ROLES[role_id].scopes} == kinds
        for kind, scope in TARGET_OF.items():
            if kind in kinds:
                assert check_binding(role_id, scope) is ROLES[role_id]
                assert check_binding(role_id, str(scope)) is ROLES[role_id]
            else:
                with pytest.raises(InvalidBinding) as caught:
                    check_binding(role_id, scope)
                assert caught.value.status == 422
                assert caught.value.code == "invalid_binding"
                assert role_id in caught.value.message and str(scope) in caught.value.message


def test_binding_errors_say_what_is_wrong():
    with pytest.raises(InvalidBinding, match="no role 'owner'") as caught:
        check_binding("owner", "tenant/acme")
    assert caught.value.details["roles"] == list(ROLE_COLUMNS.values())

    with pytest.raises(InvalidBinding, match="system_admin may be bound only on a system scope"):
        check_binding("system_admin", "tenant/acme")
    with pytest.raises(InvalidBinding, match="tenant or team or project scope, not on system"):
        check_binding("project_viewer", "system")
    with pytest.raises(InvalidScope):
        check_binding("project_viewer", "tenant/acme/projects/shop")


def test_every_granted_action_is_reachable_from_where_the_role_may_be_bound():
    """No dead cell: a role never lists an action it could not exercise from its scopes."""
    for role in ROLES.values():
        for action in role.actions:
            assert any(
                DEPTH[str(level)] >= DEPTH[str(kind)]
                for kind in role.scopes
                for level in ACTIONS[action].levels
            ), (role.id, action)


def test_support_never_reads_secrets_exports_audit_or_changes_anything():
    for kind in EXPECTED_BINDABLE["support"]:
        held = [Binding("sam", "support", TARGET_OF[kind])]
        for level, target in TARGET_OF.items():
            if DEPTH[level] < DEPTH[kind]:
                continue
            granted = set(effective_actions(held, target, team="core"))
            assert not granted & {"secret.read", "secret.manage", "audit.read", "audit.export"}
            assert not granted & {"state.read", "state.write", "execution.replay"}
    held = [Binding("sam", "support", SHOP)]
    assert allowed(held, "execution.read", SHOP)
    assert allowed(held, "diagnostics.use", SHOP)
    assert not allowed(held, "secret.read", SHOP)
    assert not allowed([Binding("sam", "support", SYSTEM)], "audit.export", ACME)


def test_event_publisher_may_only_publish_events():
    assert ROLES["event_publisher"].actions == {"event.publish"}
    for kind in EXPECTED_BINDABLE["event_publisher"]:
        held = [Binding("svc-pubsub", "event_publisher", TARGET_OF[kind])]
        assert effective_actions(held, SHOP, team="core") == ("event.publish",)
        for target in (ACME, CORE):
            assert effective_actions(held, target) == ()


# Scopes and inheritance


@pytest.mark.parametrize(
    "text",
    ["system", "tenant/acme", "tenant/acme/team/core", "tenant/acme/project/shop", "tenant/A_1-b"],
)
def test_scope_round_trips(text):
    scope = AccessScope.parse(text)
    assert str(scope) == text
    assert AccessScope.parse(scope) is scope


def test_scope_kinds_and_constructors():
    assert [SYSTEM.kind, ACME.kind, CORE.kind, SHOP.kind] == list(ScopeKind)
    assert AccessScope.parse("tenant/acme/team/core") == CORE == AccessScope("acme", team="core")
    assert AccessScope.parse("tenant/acme/project/shop") == SHOP


@pytest.mark.parametrize(
    "text",
    [
        "",
        "System",
        "system/",
        "/system",
        "tenant",
        "tenant/",
        "tenant/acme/",
        "tenant/acme/team",
        "tenant/acme/team/",
        "tenant/acme/teams/core",
        "tenant/acme/team/core/project/shop",
        "tenant/acme/project/shop/env/dev",
        "tenants/acme",
        "tenant/ac me",
        "tenant/..",
        "tenant/-acme",
        "tenant/acme/project/" + "p" * 129,
    ],
)
def test_malformed_scopes_are_rejected(text):
    with pytest.raises(InvalidScope) as caught:
        AccessScope.parse(text)
    assert caught.value.status == 422
    assert caught.value.code == "invalid_scope"


def test_impossible_scopes_cannot_be_built():
    with pytest.raises(InvalidScope, match="needs its tenant"):
        AccessScope(project="shop")
    with pytest.raises(InvalidScope, match="not both"):
        AccessScope("acme", team="core", project="shop")
    with pytest.raises(InvalidScope):
        AccessScope.parse(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidScope):
        Binding("alice", "tenant_admin", "tenant/")


ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True)


@given(tenant=ids, other=ids, project=ids)
def test_scope_strings_round_trip_and_never_cross_tenants(tenant, other, project):
    scope = AccessScope.for_project(tenant, project)
    assert AccessScope.parse(str(scope)) == scope
    held = [Binding("alice", "tenant_admin", AccessScope.for_tenant(tenant))]
    elsewhere = AccessScope.for_project(other, project)
    assert allowed(held, "state.write", elsewhere) is (other == tenant)


def test_system_covers_everything():
    held = [Binding("root", "system_admin", SYSTEM)]
    for target in (SYSTEM, ACME, CORE, SHOP, AccessScope.for_project("globex", "x")):
        assert SYSTEM.covers(target)
    assert allowed(held, "tenant.manage", SYSTEM)
    assert allowed(held, "tenant.manage", "tenant/globex")
    assert allowed(held, "secret.read", "tenant/globex/project/x")  # no team needed


def test_tenant_covers_its_teams_and_projects_only():
    held = [Binding("alice", "tenant_admin", ACME)]
    assert allowed(held, "team.manage", CORE)
    assert allowed(held, "state.write", SHOP)  # whether or not the team is known
    assert allowed(held, "state.write", SHOP, team="core")
    assert not allowed(held, "tenant.manage", ACME)
    assert not allowed(held, "user.manage", SYSTEM)
    for other in ("tenant/globex", "tenant/globex/team/core", "tenant/globex/project/shop"):
        assert not ACME.covers(AccessScope.parse(other))
    assert not allowed(held, "team.read", "tenant/globex/team/core")
    assert not allowed(held, "project.read", "tenant/globex/project/shop", team="core")


def test_team_covers_itself_and_its_projects_when_their_team_is_known():
    held = [Binding("bob", "team_admin", CORE)]
    assert allowed(held, "team.manage", CORE)
    assert allowed(held, "project.deploy", SHOP, team="core")
    assert not allowed(held, "project.deploy", SHOP)  # team unknown: deny
    assert not allowed(held, "project.deploy", SHOP, team="edge")  # another team's project
    assert not allowed(held, "team.manage", "tenant/acme/team/edge")
    assert not allowed(held, "team.manage", ACME)  # creating teams is the tenant's
    assert not allowed(held, "project.deploy", "tenant/globex/project/shop", team="core")

    viewer = [Binding("vic", "project_viewer", CORE)]  # a project role on a team
    assert allowed(viewer, "state.read", SHOP, team="core")
    assert not allowed(viewer, "state.read", "tenant/acme/project/other", team="edge")
    assert not allowed(viewer, "team.read", CORE)


def test_project_covers_only_itself():
    held = [Binding("pat", "project_admin", SHOP)]
    assert allowed(held, "secret.read", SHOP)
    assert allowed(held, "secret.read", SHOP, team="core")
    assert not allowed(held, "secret.read", "tenant/acme/project/shop2")
    assert not allowed(held, "secret.read", "tenant/globex/project/shop")
    assert not allowed(held, "project.manage", CORE)  # creating projects is the team's
    assert not allowed(held, "project.manage", ACME)
    assert not allowed(held, "role_binding.manage", ACME)


def test_deny_by_default():
    for action in ACTIONS.values():
        for level in action.levels:
            assert not allowed([], action.id, TARGET_OF[str(level)], team="core")
    assert effective_actions([], SHOP, team="core") == ()


def test_bindings_the_table_does_not_admit_grant_nothing():
    stored = [
        Binding("eve", "system_admin", ACME),  # may only be bound on system
        Binding("eve", "owner", SYSTEM),  # no such role
        Binding("eve", "tenant_admin", SHOP),  # may only be bound on a tenant
    ]
    for action in ACTIONS.values():
        for level in action.levels:
            assert not allowed(stored, action.id, TARGET_OF[str(level)], team="core")


def test_bindings_add_up():
    held = [Binding("ann", "project_viewer", SHOP), Binding("ann", "auditor", ACME)]
    assert allowed(held, "state.read", SHOP)
    assert allowed(held, "audit.export", ACME)
    assert not allowed(held, "state.write", SHOP)
    assert not allowed(held, "state.read", "tenant/acme/project/other")


def test_checking_an_action_where_it_is_not_checked_is_a_bug():
    with pytest.raises(ValueError, match=r"unknown action 'tenant\.reed'"):
        allowed([], "tenant.reed", ACME)
    with pytest.raises(ValueError, match=r"step\.invoke is checked on a project scope"):
        allowed([Binding("root", "system_admin", SYSTEM)], "step.invoke", ACME)


# Reasons, errors and grants


def test_why_names_the_granting_binding_or_the_roles_that_would_grant():
    editor = Binding("ed", "project_editor", SHOP)
    yes = why([editor], "project.deploy", SHOP)
    assert yes.allowed and yes.granted_by == editor
    assert yes.reason == (
        "project.deploy on tenant/acme/project/shop is granted by role project_editor on "
        "tenant/acme/project/shop"
    )
    assert yes.details()["granted_by"] == {
        "principal": "ed",
        "role": "project_editor",
        "scope": "tenant/acme/project/shop",
    }

    no = why([editor], "project.manage", SHOP)
    assert not no.allowed and no.granted_by is None
    assert no.roles == ("system_admin", "tenant_admin", "team_admin", "project_admin")
    assert no.details() == {
        "action": "project.manage",
        "scope": "tenant/acme/project/shop",
        "roles": ["system_admin", "tenant_admin", "team_admin", "project_admin"],
    }
    assert "needs one of the roles System admin, Tenant admin, Team admin, Project admin" in (
        no.reason
    )
    # only roles that can be bound on or above the target are offered
    assert why([], "team.read", CORE).roles == (
        "system_admin",
        "tenant_admin",
        "tenant_viewer",
        "team_admin",
        "team_viewer",
        "auditor",
        "support",
    )


def test_require_returns_the_binding_or_raises_forbidden_with_the_reason():
    viewer = Binding("vic", "project_viewer", SHOP)
    assert require([viewer], "flow.read", "tenant/acme/project/shop") == viewer
    with pytest.raises(Forbidden) as caught:
        require([viewer], "flow.edit", SHOP)
    assert caught.value.status == 403
    assert caught.value.details["action"] == "flow.edit"
    assert caught.value.details["roles"] == [
        "system_admin",
        "tenant_admin",
        "team_admin",
        "project_admin",
        "project_editor",
    ]


def test_effective_actions_are_in_table_order():
    held = [Binding("vic", "project_viewer", SHOP)]
    assert effective_actions(held, SHOP) == (
        "role_binding.read",
        "project.read",
        "flow.read",
        "execution.read",
        "state.read",
        "report.read",
    )


def test_granting_never_escalates():
    tenant_admin = [Binding("alice", "tenant_admin", ACME)]
    for role in ("tenant_admin", "tenant_viewer", "auditor", "support", "project_admin"):
        assert can_grant(tenant_admin, role, ACME).allowed, role
    assert can_grant(tenant_admin, "team_admin", CORE).allowed
    assert not can_grant(tenant_admin, "system_admin", SYSTEM).allowed
    assert not can_grant(tenant_admin, "tenant_admin", "tenant/globex").allowed

    project_admin = [Binding("pat", "project_admin", SHOP)]
    for role in ("project_admin", "project_editor", "project_viewer", "event_publisher"):
        assert can_grant(project_admin, role, SHOP).allowed, role
    assert can_grant(project_admin, "support", SHOP).allowed  # tenant.read is not used there
    assert not can_grant(project_admin, "project_viewer", "tenant/acme/project/other").allowed
    assert not can_grant(project_admin, "project_viewer", CORE).allowed

    team_admin = [Binding("bob", "team_admin", CORE)]
    assert can_grant(team_admin, "project_editor", SHOP, team="core").allowed
    assert not can_grant(team_admin, "project_editor", SHOP).allowed  # team unknown
    assert can_grant(team_admin, "team_viewer", CORE).allowed

    editor = [Binding("ed", "project_editor", SHOP)]
    refused = can_grant(editor, "project_viewer", SHOP)
    assert not refused.allowed and refused.action == "role_binding.manage"

    # holding role_binding.manage is not enough: every action the role brings is needed
    broad = [Binding("pam", "project_admin", ACME)]
    refused = can_grant(broad, "tenant_viewer", ACME)
    assert not refused.allowed and refused.action == "tenant.read"
    assert not can_grant(broad, "auditor", ACME).allowed

    with pytest.raises(InvalidBinding):
        can_grant(tenant_admin, "tenant_admin", CORE)


def test_roles_as_listed_by_the_api():
    listed = ROLES["event_publisher"].as_json()
    assert listed == {
        "id": "event_publisher",
        "name": "Event publisher",
        "description": ROLES["event_publisher"].description,
        "scopes": ["tenant", "team", "project"],
        "actions": ["event.publish"],
    }
    assert ROLES["system_admin"].as_json()["actions"] == EXPECTED_ACTIONS


# The generated document


def test_committed_docs_match_the_table():
    assert DOCS.read_text() == rbac.render_markdown(), "run: cfp generate rbac --out docs/rbac.md"


def test_docs_show_every_role_and_action():
    text = rbac.render_markdown()
    for role in ROLES.values():
        assert f"| {role.name} | `{role.id}` |" in text
    for action in ACTIONS.values():
        assert f"| `{action.id}` |" in text and action.description in text


def test_cli_generates_the_document(tmp_path):
    target = tmp_path / "rbac.md"
    result = CliRunner().invoke(app, ["generate", "rbac", "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text() == rbac.render_markdown()

    printed = CliRunner().invoke(app, ["generate", "rbac"])
    assert printed.exit_code == 0
    assert printed.output == rbac.render_markdown()
