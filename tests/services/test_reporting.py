"""Reporting and retention over the embedded backend: contracts and their lifecycle, documents in
the blob store, status reports with their history and latest, session logs seen exactly as
their visibility says by every kind of principal, the executive report over real execution
records, retention settings, legal holds and purges — each change one audit record holding no
content, and audit chains never purged."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cfp.adapters.local.blobs import FileBlobStore
from cfp.adapters.local.documents import SqliteDocumentStore
from cfp.adapters.local.keyring import LocalKeyring
from cfp.adapters.local.mailer import OutboxMailer
from cfp.adapters.local.sqlite import Database
from cfp.domain.callers import Caller
from cfp.domain.documents import SetDoc, doc_id
from cfp.domain.paths import Scope
from cfp.domain.rbac import Binding
from cfp.domain.reporting import (
    ContractIn,
    ContractPatch,
    LegalHoldIn,
    ReportIn,
    RetentionIn,
    SessionLogIn,
)
from cfp.domain.tenancy import EnvIn, ProjectIn, TeamIn, TenantIn
from cfp.errors import BadRequest, CfpError, Conflict, Forbidden, NotFound, ValidationFailed
from cfp.services import retention as retention_module
from cfp.services.control import ControlPlane
from cfp.services.identity import TEST

DAY = 86400.0
T0 = 1_750_000_000.0  # 2025-06-15T15:06:40Z


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    control: ControlPlane
    store: SqliteDocumentStore
    blobs_root: Path
    clock: Clock
    teams: dict[str, str]
    admin: Caller
    base: dict[str, int]  # the chains' last seq once the fixture was set up

    async def records(self, chain: str = "tenant/acme") -> list[dict[str, Any]]:
        """The records a test appended to `chain`, oldest first."""
        page = await self.control.audit.list(chain, oldest_first=True, limit=500)
        return [r for r in page.items if r["seq"] > self.base.get(chain, -1)]

    async def actions(self, chain: str = "tenant/acme") -> list[str]:
        return [r["action"] for r in await self.records(chain)]


def person(name: str, *bindings: tuple[str, str]) -> Caller:
    return Caller(name, "user", tuple(Binding(name, role, scope) for role, scope in bindings))


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    db = Database(tmp_path / "cfp.db")
    store = SqliteDocumentStore(db)
    clock = Clock()
    control = ControlPlane(
        store,
        LocalKeyring(tmp_path / "keyring.json"),
        OutboxMailer(tmp_path / "outbox"),
        region="local",
        public_url="http://127.0.0.1:8080",
        password_profile=TEST,
        artifacts=FileBlobStore(tmp_path / "blobs"),
        clock=clock,
    )
    await control.start()
    system = Caller.system()
    tenancy = control.tenancy
    for name in ("acme", "globex"):
        await tenancy.create_tenant(system, TenantIn(name=name, region="local", id=name))
    teams = {
        key: (await tenancy.create_team(system, "acme", TeamIn(name=key))).id
        for key in ("core", "edge")
    }
    for slug, team in (("shop", "core"), ("blog", "core"), ("labs", "edge")):
        await tenancy.create_project(
            system, "acme", ProjectIn(name=slug, slug=slug, team_id=teams[team])
        )
        await tenancy.create_env(system, "acme", slug, EnvIn(name="dev"))
    await tenancy.create_project(system, "globex", ProjectIn(name="shop", slug="shop"))
    admin = person("ada", ("tenant_admin", "tenant/acme"))
    base = {}
    for chain in ("tenant/acme", "tenant/globex"):
        head = await control.audit.head(chain)
        base[chain] = -1 if head is None else head.seq
    yield Env(control, store, tmp_path / "blobs", clock, teams, admin, base)
    db.close()


async def refused(kind: type[CfpError], awaitable: Any, code: str | None = None) -> CfpError:
    with pytest.raises(kind) as caught:
        await awaitable
    if code is not None:
        assert caught.value.code == code, caught.value
    return caught.value


CONTRACT = ContractIn(
    title="Hosting for the Shop",
    counterparty="Initech",
    value="12500.50",
    currency="EUR",
    start_date="2025-01-01",
    end_date="2025-12-31",
)


# -- contracts ----------------------------------------------------------------------------------


async def test_a_contract_moves_draft_active_then_expired_or_terminated_only(env: Env) -> None:
    reporting = env.control.reporting
    contract = await reporting.create_contract(env.admin, "acme", CONTRACT)
    assert (contract.status, contract.version, contract.documents) == ("draft", 1, [])

    for wrong in ("expired", "terminated", "draft"):  # a skip, a skip, a no-op
        error = await refused(
            Conflict,
            reporting.update_contract(
                env.admin, "acme", contract.id, ContractPatch(status=wrong), None
            ),
            "invalid_transition",
        )
        assert "draft" in error.message and wrong in error.message
        assert not error.retryable

    active = await reporting.update_contract(
        env.admin, "acme", contract.id, ContractPatch(status="active"), 1
    )
    assert (active.status, active.version) == ("active", 2)
    for wrong in ("draft", "active"):  # going back, a no-op
        error = await refused(
            Conflict,
            reporting.update_contract(
                env.admin, "acme", contract.id, ContractPatch(status=wrong), None
            ),
            "invalid_transition",
        )
        assert "from active to " + wrong in error.message
    ended = await reporting.update_contract(
        env.admin, "acme", contract.id, ContractPatch(status="terminated"), None
    )
    assert ended.status == "terminated"
    error = await refused(
        Conflict,
        reporting.update_contract(
            env.admin, "acme", contract.id, ContractPatch(status="expired"), None
        ),
        "invalid_transition",
    )
    assert "terminated" in error.message and "expired" in error.message

    assert await env.actions() == [
        "contract.create",
        "contract.status.change",
        "contract.status.change",
    ]
    records = await env.records()
    assert records[1]["details"] == {"fields": ["status"], "from": "draft", "to": "active"}
    for record in records:  # what a contract says is hashed, never written into the record
        assert record["payload_hash"] and len(record["payload_hash"]) == 64
        text = json.dumps(record)
        assert "Initech" not in text and "Hosting" not in text and "12500" not in text


async def test_a_contract_update_checks_its_version_and_the_merged_dates(env: Env) -> None:
    reporting = env.control.reporting
    contract = await reporting.create_contract(env.admin, "acme", CONTRACT)
    await refused(
        CfpError,
        reporting.update_contract(env.admin, "acme", contract.id, ContractPatch(title="x"), 7),
        "precondition_failed",
    )
    error = await refused(
        ValidationFailed,
        reporting.update_contract(
            env.admin, "acme", contract.id, ContractPatch(start_date="2026-01-01"), None
        ),
    )
    assert error.status == 422 and error.details[0]["pointer"] == "/end_date"
    open_ended = await reporting.update_contract(
        env.admin,
        "acme",
        contract.id,
        ContractPatch.model_validate({"end_date": None, "value": "0"}),
        1,
    )
    assert (open_ended.end_date, open_ended.value, open_ended.version) == (None, "0", 2)
    moved = await reporting.update_contract(
        env.admin, "acme", contract.id, ContractPatch(start_date="2030-01-01"), 2
    )
    assert str(moved.start_date) == "2030-01-01"
    assert await env.actions() == ["contract.create", "contract.update", "contract.update"]


async def test_contracts_are_tenant_level(env: Env) -> None:
    reporting = env.control.reporting
    contract = await reporting.create_contract(env.admin, "acme", CONTRACT)
    viewer = person("vic", ("tenant_viewer", "tenant/acme"))
    lead = person("lee", ("team_admin", f"tenant/acme/team/{env.teams['core']}"))
    owner = person("oli", ("project_admin", "tenant/acme/project/shop"))

    assert (await reporting.get_contract(viewer, "acme", contract.id)).id == contract.id
    page = await reporting.list_contracts(viewer, "acme", limit=50, cursor=None)
    assert [c["id"] for c in page.items] == [contract.id]
    await refused(Forbidden, reporting.create_contract(viewer, "acme", CONTRACT))
    for who in (lead, owner):
        await refused(Forbidden, reporting.get_contract(who, "acme", contract.id))
        await refused(Forbidden, reporting.create_contract(who, "acme", CONTRACT))
    # another tenant's admin, even naming the id, finds nothing in its own tenant
    globex = person("gus", ("tenant_admin", "tenant/globex"))
    await refused(NotFound, reporting.get_contract(globex, "globex", contract.id))
    await refused(Forbidden, reporting.get_contract(globex, "acme", contract.id))
    drafts = await reporting.list_contracts(env.admin, "acme", status="draft", limit=5, cursor=None)
    assert len(drafts.items) == 1
    await refused(
        BadRequest, reporting.list_contracts(env.admin, "acme", status="x", limit=5, cursor=None)
    )


async def test_documents_are_stored_in_the_blob_store_under_the_tenant(env: Env) -> None:
    reporting = env.control.reporting
    contract = await reporting.create_contract(env.admin, "acme", CONTRACT)
    data = b"%PDF-1.7 signed contract\n" * 10
    document = await reporting.add_document(
        env.admin, "acme", contract.id, name="signed.pdf", content_type="application/pdf", data=data
    )
    assert (document.name, document.content_type, document.size) == (
        "signed.pdf",
        "application/pdf",
        len(data),
    )
    assert document.sha256 == hashlib.sha256(data).hexdigest()
    [blob] = [p for p in env.blobs_root.rglob("*") if p.is_file()]
    assert blob.read_bytes() == data
    assert blob.relative_to(env.blobs_root).parts[:4] == (
        "tenants",
        "acme",
        "contracts",
        contract.id,
    )

    listed = await reporting.get_contract(env.admin, "acme", contract.id)
    assert [d.model_dump() for d in listed.documents] == [document.model_dump()]
    assert listed.version == 2
    viewer = person("vic", ("tenant_viewer", "tenant/acme"))
    record, read = await reporting.read_document(viewer, "acme", contract.id, document.id)
    assert (record, read) == (document, data)
    await refused(
        Forbidden,
        reporting.add_document(
            viewer, "acme", contract.id, name=None, content_type=None, data=b"x"
        ),
    )
    await refused(NotFound, reporting.read_document(viewer, "acme", contract.id, "doc-nope"))
    globex = person("gus", ("tenant_admin", "tenant/globex"))
    await refused(NotFound, reporting.read_document(globex, "globex", contract.id, document.id))
    plain = await reporting.add_document(
        env.admin, "acme", contract.id, name=None, content_type=None, data=b"notes"
    )
    assert (plain.name, plain.content_type) == ("document", "application/octet-stream")
    for bad in (
        reporting.add_document(env.admin, "acme", contract.id, name="a", content_type="", data=b""),
        reporting.add_document(
            env.admin, "acme", contract.id, name="../x", content_type=None, data=b"x"
        ),
        reporting.add_document(
            env.admin, "acme", contract.id, name="a", content_type="pdf", data=b"x"
        ),
    ):
        await refused(BadRequest, bad)

    [_, upload, _] = await env.records()
    assert upload["action"] == "contract.document.create"
    assert upload["payload_hash"] == document.sha256
    assert "signed.pdf" not in json.dumps(upload)


# -- status reports -----------------------------------------------------------------------------


def report(project: str, status: str, period: str) -> ReportIn:
    return ReportIn(
        project_id=project,
        status=status,
        period=period,
        summary=f"{project} in {period}",
        highlights=["shipped"],
        risks=["none"],
    )


async def test_every_report_is_kept_and_the_latest_is_per_project(env: Env) -> None:
    reporting = env.control.reporting
    editor = person("eve", ("project_editor", "tenant/acme/project/shop"))
    first = await reporting.create_report(editor, "acme", report("shop", "green", "W1"))
    env.clock.now += 60
    second = await reporting.create_report(editor, "acme", report("shop", "red", "W2"))
    labs = await reporting.create_report(env.admin, "acme", report("labs", "amber", "W2"))
    assert second.author == "eve"

    page = await reporting.list_reports(env.admin, "acme", project="shop", limit=50, cursor=None)
    assert [r["id"] for r in page.items] == [second.id, first.id]
    latest = await reporting.latest_reports(env.admin, "acme", project=None)
    assert [(r.project_id, r.id) for r in latest] == [("labs", labs.id), ("shop", second.id)]
    assert await reporting.latest_reports(env.admin, "acme", project="blog") == []

    viewer = person("pia", ("project_viewer", "tenant/acme/project/shop"))
    assert [r.id for r in await reporting.latest_reports(viewer, "acme", project=None)] == [
        second.id
    ]
    everything = await reporting.list_reports(viewer, "acme", project=None, limit=50, cursor=None)
    assert {r["project_id"] for r in everything.items} == {"shop"}
    assert (await reporting.get_report(viewer, "acme", first.id)).id == first.id
    await refused(NotFound, reporting.get_report(viewer, "acme", labs.id))
    await refused(
        Forbidden, reporting.list_reports(viewer, "acme", project="labs", limit=5, cursor=None)
    )
    await refused(Forbidden, reporting.create_report(viewer, "acme", report("shop", "red", "W3")))
    await refused(Forbidden, reporting.create_report(editor, "acme", report("labs", "red", "W3")))
    await refused(NotFound, reporting.create_report(env.admin, "acme", report("nope", "red", "W")))
    # a team role reads every project of its team
    teammate = person("tom", ("team_viewer", f"tenant/acme/team/{env.teams['core']}"))
    assert (await reporting.latest_reports(teammate, "acme", project="shop"))[0].id == second.id
    auditor = person("aud", ("auditor", "tenant/acme"))
    await refused(
        Forbidden, reporting.list_reports(auditor, "acme", project=None, limit=5, cursor=None)
    )

    records = await env.records()
    assert [r["action"] for r in records] == ["report.create"] * 3
    assert records[0]["scope"] == "tenant/acme/project/shop"
    assert "shop in W1" not in json.dumps(records)


async def test_a_filtered_listing_pages_through_what_the_caller_may_see(env: Env) -> None:
    reporting = env.control.reporting
    made = []
    for n in range(7):
        env.clock.now += 1
        project = "shop" if n % 2 == 0 else "labs"
        made.append(
            (await reporting.create_report(env.admin, "acme", report(project, "green", f"{n}"))).id
        )
    viewer = person("pia", ("project_viewer", "tenant/acme/project/shop"))
    seen, cursor = [], None
    while True:
        page = await reporting.list_reports(viewer, "acme", project=None, limit=2, cursor=cursor)
        assert len(page.items) <= 2
        seen += [r["id"] for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [made[n] for n in (6, 4, 2, 0)]
    # a cursor only ever follows an item the caller sees: none for a caller who sees nothing
    stranger = person("sam", ("project_viewer", "tenant/acme/project/nowhere"))
    page = await reporting.list_reports(stranger, "acme", project=None, limit=1, cursor=None)
    assert page.items == [] and page.next_cursor is None
    logs = await reporting.list_session_logs(env.admin, "acme", project=None, limit=1, cursor=None)
    assert logs.next_cursor is None


# -- session logs -------------------------------------------------------------------------------

VISIBILITIES = ("private", "team", "project", "tenant")


@pytest.fixture
def people(env: Env) -> dict[str, Caller]:
    core, edge = env.teams["core"], env.teams["edge"]
    return {
        "author": person("ann", ("project_editor", "tenant/acme/project/shop")),
        "teammate": person("tom", ("team_viewer", f"tenant/acme/team/{core}")),
        "team_admin": person("tia", ("team_admin", f"tenant/acme/team/{core}")),
        "other_team": person("olga", ("team_viewer", f"tenant/acme/team/{edge}")),
        "project_viewer": person("pia", ("project_viewer", "tenant/acme/project/shop")),
        "sibling_viewer": person("sib", ("project_viewer", "tenant/acme/project/blog")),
        "tenant_admin": person("ada", ("tenant_admin", "tenant/acme")),
        "tenant_viewer": person("val", ("tenant_viewer", "tenant/acme")),
        "auditor": person("aud", ("auditor", "tenant/acme")),
        "team_support": person("sue", ("support", f"tenant/acme/team/{core}")),
        "globex_admin": person("gus", ("tenant_admin", "tenant/globex")),
    }


# Who sees a log of project `shop` (team core) written by `author`, by visibility.
SEES = {
    "private": {"author"},
    "team": {"author", "teammate", "team_admin", "tenant_admin", "tenant_viewer"},
    "project": {
        "author",
        "teammate",
        "team_admin",
        "tenant_admin",
        "tenant_viewer",
        "project_viewer",
    },
    "tenant": {
        "author",
        "teammate",
        "team_admin",
        "tenant_admin",
        "tenant_viewer",
        "project_viewer",
        "other_team",
        "sibling_viewer",
    },
}


async def test_each_visibility_shows_a_session_log_to_exactly_its_readers(
    env: Env, people: dict[str, Caller]
) -> None:
    reporting = env.control.reporting
    author = people["author"]
    logs = {}
    for visibility in VISIBILITIES:
        body = SessionLogIn(project_id="shop", visibility=visibility, content=f"# {visibility}")
        logs[visibility] = await reporting.create_session_log(author, "acme", body)
        assert logs[visibility].author == "ann"

    for who, caller in people.items():
        expected = {v for v in VISIBILITIES if who in SEES[v]}
        for visibility, log in logs.items():
            get = reporting.get_session_log(caller, "acme", log.id)
            if visibility in expected:
                assert (await get).content == f"# {visibility}", (who, visibility)
            elif who in ("auditor", "team_support", "globex_admin"):  # no report.read in acme
                await refused(Forbidden, get)
            else:
                await refused(NotFound, get)
        if who in ("auditor", "team_support", "globex_admin"):
            continue
        for project in (None, "shop"):
            page = await reporting.list_session_logs(
                caller, "acme", project=project, limit=50, cursor=None
            )
            assert {item["visibility"] for item in page.items} == expected, (who, project)
        other = await reporting.list_session_logs(
            caller, "acme", project="labs", limit=50, cursor=None
        )
        assert other.items == []

    records = await env.records()
    assert [r["action"] for r in records] == ["session_log.create"] * 4
    for record, log in zip(records, logs.values(), strict=True):
        assert record["details"] == {"project": "shop", "visibility": log.visibility}
        assert record["payload_hash"] == hashlib.sha256(log.content.encode()).hexdigest()


async def test_writing_a_session_log_needs_report_manage_on_its_project(
    env: Env, people: dict[str, Caller]
) -> None:
    reporting = env.control.reporting
    body = SessionLogIn(project_id="labs", visibility="tenant", content="hello")
    for who in ("author", "teammate", "project_viewer", "tenant_viewer", "auditor"):
        await refused(Forbidden, reporting.create_session_log(people[who], "acme", body))
    assert await reporting.create_session_log(people["tenant_admin"], "acme", body)
    missing = SessionLogIn(project_id="gone", visibility="tenant", content="hello")
    await refused(NotFound, reporting.create_session_log(people["tenant_admin"], "acme", missing))
    await refused(Forbidden, reporting.create_session_log(people["author"], "acme", missing))


# -- the executive report -----------------------------------------------------------------------


def execution(step: str, status: str, started: float, latency: float, n: int) -> dict[str, Any]:
    return {
        "id": f"{step}:{n}",
        "step": step,
        "type": "event",
        "event_id": f"e{n}",
        "status": status,
        "attempt": 1,
        "started_at": started,
        "ended_at": started + latency / 1000,
        "latency_ms": latency,
        "error": None,
    }


async def write_executions(env: Env, scope: Scope, executions: list[dict[str, Any]]) -> None:
    await env.store.apply(
        [SetDoc(f"{scope.executions()}/{doc_id(e['id'])}", e) for e in executions]
    )


async def test_the_executive_report_sums_contracts_projects_and_flows(env: Env) -> None:
    reporting = env.control.reporting
    for value, currency, status in (
        ("100.10", "EUR", "active"),
        ("0.90", "EUR", "active"),
        ("5", "USD", "active"),
        ("99999999999999999.999999", "EUR", "draft"),
        ("0.000001", "EUR", "draft"),
    ):
        body = CONTRACT.model_copy(update={"value": value, "currency": currency, "status": status})
        await reporting.create_contract(env.admin, "acme", body)
    await reporting.create_report(env.admin, "acme", report("shop", "green", "W1"))
    env.clock.now += 1
    await reporting.create_report(env.admin, "acme", report("shop", "amber", "W2"))
    await reporting.create_report(env.admin, "acme", report("labs", "red", "W2"))

    graphs = {
        "checkout": {"name": "checkout", "nodes": [{"id": "Pay"}, {"id": "Ship"}], "edges": []},
        "ops": {"name": "ops", "nodes": [{"id": "Ship"}], "edges": []},
    }
    await env.control.tenancy.register_flows(Caller.system(), "acme", "shop", "dev", graphs)
    shop = Scope("acme", "shop", "dev")
    inside = T0 - 2 * DAY
    runs = [execution("Pay", "ok", inside + n, float(n + 1), n) for n in range(20)]
    runs += [execution("Pay", "error", inside + 30, 500.0, 20)]
    runs += [execution("Ship", "ok", inside + 40, 7.0, 21)]
    runs += [execution("Loose", "invalid", inside + 50, 1.0, 22)]
    runs += [execution("Pay", "error", T0 - 40 * DAY, 9999.0, 23)]  # before the window
    await write_executions(env, shop, runs)

    result = await reporting.executive_report(env.admin, "acme", since=None, until=None)

    assert result.window.from_ == "2025-05-17T00:00:00.000Z"
    assert result.window.to == "2025-06-16T00:00:00.000Z"
    by_status = {s.status: s for s in result.contracts}
    assert by_status["active"].count == 3
    assert [(t.currency, t.count, t.total) for t in by_status["active"].totals] == [
        ("EUR", 2, "101.00"),
        ("USD", 1, "5"),
    ]
    assert [(t.currency, t.total) for t in by_status["draft"].totals] == [
        ("EUR", "100000000000000000.000000")
    ]
    assert (by_status["expired"].count, by_status["expired"].totals) == (0, [])
    assert result.projects.counts == {"green": 0, "amber": 1, "red": 1, "none": 1}
    assert [(p.project_id, p.status) for p in result.projects.items] == [
        ("blog", None),
        ("labs", "red"),
        ("shop", "amber"),
    ]
    flows = {(f.project, f.env, f.flow): f for f in result.flows}
    assert set(flows) == {
        ("shop", "dev", "checkout"),
        ("shop", "dev", "ops"),
        ("shop", "dev", None),
    }
    checkout = flows["shop", "dev", "checkout"]
    assert (checkout.executions, checkout.errors) == (22, 1)
    assert checkout.error_rate == pytest.approx(1 / 22, abs=1e-6)
    assert checkout.p95_latency_ms == 20.0  # nearest rank: the 21st of 22 sorted latencies
    assert (flows["shop", "dev", "ops"].executions, flows["shop", "dev", "ops"].errors) == (1, 0)
    loose = flows["shop", "dev", None]
    assert (loose.executions, loose.errors, loose.error_rate) == (1, 1, 1.0)

    narrow = await reporting.executive_report(
        env.admin, "acme", since="2025-06-13T15:06:40Z", until="2025-06-13T15:06:45+00:00"
    )
    [only] = narrow.flows
    assert (only.flow, only.executions) == ("checkout", 5)
    for who in (
        person("pia", ("project_viewer", "tenant/acme/project/shop")),
        person("aud", ("auditor", "tenant/acme")),
    ):
        await refused(Forbidden, reporting.executive_report(who, "acme", since=None, until=None))
    error = await refused(
        BadRequest, reporting.executive_report(env.admin, "acme", since="yesterday", until=None)
    )
    assert error.details == {"parameter": "from"}


# -- retention, legal holds and purges ----------------------------------------------------------


async def test_retention_settings_default_then_set_with_their_version(env: Env) -> None:
    retention = env.control.retention
    viewer = person("vic", ("tenant_viewer", "tenant/acme"))
    defaults = await retention.get(viewer, "acme")
    assert (defaults.executions_days, defaults.logs_days, defaults.session_logs_days) == (
        90,
        30,
        None,
    )
    assert defaults.version == 0
    body = RetentionIn(executions_days=7, logs_days=None, session_logs_days=365)
    await refused(Forbidden, retention.put(viewer, "acme", body, None))
    await refused(CfpError, retention.put(env.admin, "acme", body, 3), "precondition_failed")
    saved = await retention.put(env.admin, "acme", body, 0)
    assert (saved.executions_days, saved.logs_days, saved.version, saved.updated_by) == (
        7,
        None,
        1,
        "ada",
    )
    assert await retention.get(viewer, "acme") == saved
    await refused(CfpError, retention.put(env.admin, "acme", body, 0), "precondition_failed")
    for who in (
        person("pia", ("project_viewer", "tenant/acme/project/shop")),
        person("aud", ("auditor", "tenant/acme")),
    ):
        await refused(Forbidden, retention.get(who, "acme"))
    [record] = await env.records()
    assert record["action"] == "retention.update"
    assert record["details"] == {"executions_days": 7, "logs_days": None, "session_logs_days": 365}


async def seed_runtime_data(env: Env) -> dict[str, list[str]]:
    """Old and new executions, traces and logs in two environments, and old and new session logs:
    the paths of what a purge with 10-day periods deletes."""
    old, new = T0 - 20 * DAY, T0 - 1 * DAY
    writes, doomed = [], []
    for project in ("shop", "labs"):
        scope = Scope("acme", project, "dev")
        for label, when in (("old", old), ("new", new)):
            items = [
                (scope.executions(), f"{label}-x", {"started_at": when, "status": "ok"}),
                (scope.traces(), f"{label}-t", {"started_at": when, "trace_id": label}),
                (scope.logs(), f"{label}-l", {"ts": when, "msg": "line"}),
            ]
            for collection, ident, data in items:
                path = f"{collection}/{ident}"
                writes.append(SetDoc(path, data))
                if label == "old":
                    doomed.append(path)
    await env.store.apply(writes)
    author = person("ann", ("project_editor", "tenant/acme/project/shop"))
    logs = {}
    for label, when in (("old", old), ("new", new)):
        env.clock.now = when
        body = SessionLogIn(project_id="shop", visibility="private", content=label)
        logs[label] = await env.control.reporting.create_session_log(author, "acme", body)
    env.clock.now = T0
    doomed.append(f"tenants/acme/session_logs/{logs['old'].id}")
    return {"doomed": doomed, "kept": [f"tenants/acme/session_logs/{logs['new'].id}"]}


async def blocks(env: Env, tenant: str = "acme") -> list[dict[str, Any]]:
    page = await env.store.list(f"tenants/{tenant}/audit_blocks", limit=10_000)
    return page.items


async def test_a_purge_deletes_what_is_older_than_its_period_and_never_the_audit_chain(
    env: Env,
) -> None:
    retention = env.control.retention
    seeded = await seed_runtime_data(env)
    periods = RetentionIn(executions_days=10, logs_days=10, session_logs_days=10)
    await retention.put(env.admin, "acme", periods, None)
    before = await blocks(env)
    head = await env.control.audit.head("tenant/acme")

    result = await retention.purge("acme", T0)

    assert not result.held and result.holds == []
    assert result.deleted.model_dump() == {
        "executions": 2,
        "traces": 2,
        "logs": 2,
        "session_logs": 1,
    }
    assert result.cutoffs.executions == "2025-06-05T15:06:40.000Z"
    for path in seeded["doomed"]:
        assert await env.store.get(path) is None, path
    for path in seeded["kept"]:
        assert await env.store.get(path) is not None
    for project in ("shop", "labs"):
        scope = Scope("acme", project, "dev")
        for collection in (scope.executions(), scope.traces(), scope.logs()):
            assert len((await env.store.list(collection)).items) == 1
    # the chain only grew: every block still there, one more (the purge's), and it verifies
    after = await blocks(env)
    assert after[: len(before)] == before and len(after) == len(before) + 1
    assert head is not None and (await env.control.audit.head("tenant/acme")).seq == head.seq + 1
    assert (await env.control.audit.verify("tenant/acme")).ok
    record = (await env.records())[-1]
    assert (record["action"], record["actor"]["id"]) == ("retention.purge", "system")
    assert record["details"]["deleted"] == result.deleted.model_dump()
    assert record["details"]["final"] is True and record["details"]["held"] is False
    assert record["details"]["cutoffs"]["session_logs"] == "2025-06-05T15:06:40.000Z"
    # globex was not touched
    assert await blocks(env, "globex")

    again = await retention.purge("acme", T0)
    assert again.deleted.model_dump() == dict.fromkeys(
        ("executions", "traces", "logs", "session_logs"), 0
    )


async def test_kept_forever_means_never_purged(env: Env) -> None:
    await seed_runtime_data(env)
    result = await env.control.retention.purge("acme", T0 + 10_000 * DAY)  # the defaults
    assert result.deleted.session_logs == 0 and result.cutoffs.session_logs is None
    assert result.deleted.executions == 4 and result.deleted.logs == 4


async def test_a_legal_hold_stops_every_deletion_until_it_is_released(env: Env) -> None:
    retention = env.control.retention
    seeded = await seed_runtime_data(env)
    await retention.put(
        env.admin, "acme", RetentionIn(executions_days=1, logs_days=1, session_logs_days=1), None
    )
    viewer = person("vic", ("tenant_viewer", "tenant/acme"))
    await refused(Forbidden, retention.place_hold(viewer, "acme", LegalHoldIn(reason="x")))
    hold = await retention.place_hold(env.admin, "acme", LegalHoldIn(reason="Smith v. Acme"))
    assert [h["id"] for h in (await retention.list_holds(viewer, "acme")).items] == [hold.id]

    held = await retention.purge_as(env.admin, "acme")

    assert held.held and held.holds == [hold.id]
    assert held.deleted.model_dump() == dict.fromkeys(
        ("executions", "traces", "logs", "session_logs"), 0
    )
    for path in seeded["doomed"]:
        assert await env.store.get(path) is not None
    records = await env.records()
    assert [r["action"] for r in records[-2:]] == ["legal_hold.create", "retention.purge"]
    assert records[-2]["payload_hash"] == hashlib.sha256(b"Smith v. Acme").hexdigest()
    assert "Smith" not in json.dumps(records)
    assert records[-1]["details"]["held"] is True and records[-1]["details"]["holds"] == [hold.id]
    assert records[-1]["actor"]["id"] == "ada"

    await refused(Forbidden, retention.release_hold(viewer, "acme", hold.id))
    await retention.release_hold(env.admin, "acme", hold.id)
    await refused(NotFound, retention.release_hold(env.admin, "acme", hold.id))
    assert (await retention.list_holds(viewer, "acme")).items == []
    released = await retention.purge_as(env.admin, "acme")
    assert not released.held and released.deleted.executions == 2
    assert [r["action"] for r in (await env.records())[-2:]] == [
        "legal_hold.delete",
        "retention.purge",
    ]


async def test_a_hold_placed_while_a_purge_runs_stops_it(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    retention = env.control.retention
    seeded = await seed_runtime_data(env)
    await retention.put(
        env.admin, "acme", RetentionIn(executions_days=1, logs_days=1, session_logs_days=1), None
    )
    found = retention._expired

    async def racing(tenant: str, limits: dict[str, Any]) -> Any:
        first = True
        async for item in found(tenant, limits):
            if first:  # the hold lands after the purge saw none
                await retention.place_hold(env.admin, "acme", LegalHoldIn(reason="late"))
                first = False
            yield item

    monkeypatch.setattr(retention, "_expired", racing)
    error = await refused(Conflict, retention.purge("acme", T0), "legal_hold_changed")
    assert error.status == 409
    for path in seeded["doomed"]:
        assert await env.store.get(path) is not None
    assert (await env.records())[-1]["action"] == "legal_hold.create"


async def test_a_large_purge_commits_in_batches_each_with_its_record(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention_module, "BATCH", 3)
    await seed_runtime_data(env)
    await env.control.retention.put(
        env.admin, "acme", RetentionIn(executions_days=1, logs_days=1, session_logs_days=1), None
    )
    result = await env.control.retention.purge("acme", T0)
    assert sum(result.deleted.model_dump().values()) == 7
    purges = [r for r in await env.records() if r["action"] == "retention.purge"]
    assert [r["details"]["batch"] for r in purges] == [1, 2, 3]
    assert [r["details"]["final"] for r in purges] == [False, False, True]
    assert sum(sum(r["details"]["deleted"].values()) for r in purges) == 7
    assert purges[-1]["details"]["total"] == result.deleted.model_dump()


async def test_purge_all_purges_every_tenant_of_the_region(env: Env) -> None:
    await seed_runtime_data(env)
    globex = Scope("globex", "shop", "dev")
    await env.control.tenancy.create_env(Caller.system(), "globex", "shop", EnvIn(name="dev"))
    await env.store.apply([SetDoc(f"{globex.logs()}/old", {"ts": T0 - 400 * DAY, "msg": "x"})])
    # a tenant of another region is that region's to purge
    await env.control.tenancy.create_tenant(
        Caller.system(), TenantIn(name="far", region="elsewhere", id="far")
    )

    run = await env.control.retention.purge_all(T0 + 100 * DAY)  # the defaults: logs 30 days

    assert run.failed == {}
    assert {r.tenant: r.deleted.logs for r in run.results} == {"acme": 4, "globex": 1}
    assert (await env.records("tenant/globex"))[-1]["action"] == "retention.purge"
