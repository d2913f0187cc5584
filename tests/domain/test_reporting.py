"""The rules of reporting without I/O: contract fields and lifecycle, document names and types,
session log visibility, the report window, exact totals, p95, and the CSV layout."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import UTC, datetime

import pytest
from cfp.domain.rbac import Binding
from cfp.domain.reporting import (
    CONTRACT_STATUSES,
    CSV_COLUMNS,
    DEFAULT_RETENTION,
    TRANSITIONS,
    ContractIn,
    ContractPatch,
    ExecutiveReport,
    FlowTally,
    InvalidTransition,
    ReportingPaths,
    RetentionIn,
    SessionLogIn,
    can_see_session_log,
    check_transition,
    content_hash,
    contract_summary,
    cutoffs,
    document_name,
    executive_csv,
    flows_of_execution,
    iso,
    media_type,
    merged_dates_problem,
    new_id,
    p95,
    project_summary,
    reads_reports_in,
    report_window,
)
from cfp.errors import BadRequest
from pydantic import ValidationError

VALID = {
    "title": "Hosting",
    "counterparty": "Initech",
    "value": "12500.00",
    "currency": "EUR",
    "start_date": "2025-01-01",
    "end_date": "2025-12-31",
}


# -- contracts ----------------------------------------------------------------------------------

ALLOWED = {("draft", "active"), ("active", "expired"), ("active", "terminated")}


@pytest.mark.parametrize("current", CONTRACT_STATUSES)
@pytest.mark.parametrize("new", CONTRACT_STATUSES)
def test_only_the_three_forward_steps_are_allowed(current: str, new: str) -> None:
    if (current, new) in ALLOWED:
        check_transition(current, new)
        return
    with pytest.raises(InvalidTransition) as caught:
        check_transition(current, new)
    error = caught.value
    assert (error.status, error.code, error.retryable) == (409, "invalid_transition", False)
    assert f"from {current} to {new}" in error.message
    assert error.details == {"from": current, "to": new, "allowed": sorted(TRANSITIONS[current])}


def test_a_contract_body_is_checked_field_by_field() -> None:
    contract = ContractIn.model_validate(VALID)
    assert contract.status == "draft" and str(contract.end_date) == "2025-12-31"
    assert ContractIn.model_validate({**VALID, "end_date": None}).end_date is None
    assert ContractIn.model_validate({**VALID, "end_date": VALID["start_date"]})
    for value in ("0", "0.5", "999999999999999999.123456", "12"):
        assert ContractIn.model_validate({**VALID, "value": value}).value == value
    # a JSON number is the decimal it is written as
    for number, text in ((12, "12"), (12500.5, "12500.5"), (0.1, "0.1"), (1e-5, "0.00001")):
        assert ContractIn.model_validate({**VALID, "value": number}).value == text
    bad = [
        {"value": "-1"},
        {"value": "1e3"},
        {"value": "01"},
        {"value": "1."},
        {"value": "1.1234567"},
        {"value": "1000000000000000000"},
        {"value": -12},
        {"value": 1e300},
        {"value": True},
        {"value": float("nan")},
        {"currency": "eur"},
        {"currency": "EURO"},
        {"start_date": "2025-1-1"},
        {"start_date": 0},
        {"start_date": "2025-02-30"},
        {"start_date": "2025-01-01T00:00:00Z"},
        {"end_date": "2024-12-31"},
        {"status": "expired"},
        {"extra": 1},
    ]
    for change in bad:
        with pytest.raises(ValidationError):
            ContractIn.model_validate({**VALID, **change})
    with pytest.raises(ValidationError, match="before start_date"):
        ContractIn.model_validate({**VALID, "end_date": "2024-06-01"})


def test_a_patch_sets_only_what_it_names_and_nulls_only_the_end_date() -> None:
    assert ContractPatch.model_validate({"title": "New"}).changes() == {"title": "New"}
    assert ContractPatch.model_validate({"end_date": None}).changes() == {"end_date": None}
    assert ContractPatch.model_validate({"start_date": "2025-03-01"}).changes() == {
        "start_date": "2025-03-01"
    }
    for body in ({"title": None}, {"status": None}, {"value": None}, {"bogus": 1}):
        with pytest.raises(ValidationError):
            ContractPatch.model_validate(body)
    with pytest.raises(ValidationError):
        ContractPatch.model_validate({"start_date": "2025-02-01", "end_date": "2025-01-01"})
    stored = {"start_date": "2025-01-01", "end_date": "2025-06-30"}
    assert merged_dates_problem(stored, {"start_date": "2025-06-30"}) is None
    assert "before" in (merged_dates_problem(stored, {"end_date": "2024-12-31"}) or "")
    assert merged_dates_problem(stored, {"end_date": None, "start_date": "2030-01-01"}) is None


def test_document_names_and_types() -> None:
    assert document_name(None) == document_name("") == "document"
    assert document_name("Vertrag 2025 (signiert).pdf") == "Vertrag 2025 (signiert).pdf"
    for bad in ("a/b", "a\\b", "..", "x" * 256, "tab\there"):
        with pytest.raises(BadRequest) as caught:
            document_name(bad)
        assert caught.value.details == {"parameter": "name"}
    assert media_type(None) == media_type("  ") == "application/octet-stream"
    assert media_type("text/plain; charset=utf-8") == "text/plain; charset=utf-8"
    assert media_type("application/vnd.ms-excel") == "application/vnd.ms-excel"
    for bad in ("pdf", "text/", "/plain", "text/plain/x", "a b/c", "x" * 300 + "/y"):
        with pytest.raises(BadRequest):
            media_type(bad)


def test_ids_sort_by_time_and_times_by_text() -> None:
    assert new_id("ctr", 1.0) < new_id("ctr", 2.0) < new_id("ctr", 1_000_000_000.0)
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1_750_000_000.5) == "2025-06-15T15:06:40.500Z"
    times = [0.0, 1.5, 59.999, 3600.0, 1e9, 1.75e9]
    assert sorted(iso(t) for t in times) == [iso(t) for t in sorted(times)]


def test_content_hash_is_the_sha256_of_the_stored_bytes() -> None:
    assert content_hash("é") == hashlib.sha256("é".encode()).hexdigest()
    assert content_hash({"b": 1, "a": [1, 2]}) == hashlib.sha256(b'{"a":[1,2],"b":1}').hexdigest()


def test_every_path_is_under_the_tenant() -> None:
    paths = ReportingPaths("acme")
    made = [
        paths.contract("c/1"),
        paths.document_key("c1", "d1"),
        paths.report("r1"),
        paths.latest_report("shop"),
        paths.session_log("l1"),
        paths.retention(),
        paths.legal_hold("h1"),
        paths.hold_serial(),
    ]
    for path in made:
        assert path.startswith("tenants/acme/")
    assert paths.contract("c/1") == "tenants/acme/contracts/c%2F1"
    assert not any("audit" in path for path in made)


# -- session logs -------------------------------------------------------------------------------


def held(*pairs: tuple[str, str]) -> tuple[Binding, ...]:
    return tuple(Binding("p", role, scope) for role, scope in pairs)


def test_visibility_nests_private_team_project_tenant() -> None:
    readers = {
        "teammate": held(("team_viewer", "tenant/acme/team/core")),
        "project_viewer": held(("project_viewer", "tenant/acme/project/shop")),
        "other_team": held(("team_viewer", "tenant/acme/team/edge")),
        "tenant_viewer": held(("tenant_viewer", "tenant/acme")),
        "system_admin": held(("system_admin", "system")),
        "auditor": held(("auditor", "tenant/acme")),
        "team_support": held(("support", "tenant/acme/team/core")),
        "stale_binding": held(("tenant_viewer", "tenant/acme/project/shop")),  # not bindable
        "elsewhere": held(("tenant_admin", "tenant/globex")),
        # a project reader with an unrelated role on the team (or the tenant) is not on the team
        "viewer_and_publisher": held(
            ("project_viewer", "tenant/acme/project/shop"),
            ("event_publisher", "tenant/acme/team/core"),
        ),
        "viewer_and_auditor": held(
            ("project_viewer", "tenant/acme/project/shop"), ("auditor", "tenant/acme")
        ),
    }
    expected = {
        "private": set(),
        "team": {"teammate", "tenant_viewer", "system_admin"},
        "project": {
            "teammate",
            "tenant_viewer",
            "system_admin",
            "project_viewer",
            "viewer_and_publisher",
            "viewer_and_auditor",
        },
        "tenant": {
            "teammate",
            "tenant_viewer",
            "system_admin",
            "project_viewer",
            "other_team",
            "viewer_and_publisher",
            "viewer_and_auditor",
        },
    }
    for visibility, sees in expected.items():
        log = {"author": "ann", "visibility": visibility, "project_id": "shop"}
        assert can_see_session_log("ann", (), tenant="acme", team="core", log=log)
        seen = {
            who
            for who, bindings in readers.items()
            if can_see_session_log("p", bindings, tenant="acme", team="core", log=log)
        }
        assert seen == sees, visibility


def test_a_project_without_a_team_shows_team_logs_to_tenant_wide_readers_only() -> None:
    log = {"author": "ann", "visibility": "team", "project_id": "solo"}
    tenant_viewer = held(("tenant_viewer", "tenant/acme"))
    project_viewer = held(("project_viewer", "tenant/acme/project/solo"))
    assert can_see_session_log("p", tenant_viewer, tenant="acme", team=None, log=log)
    assert not can_see_session_log("p", project_viewer, tenant="acme", team=None, log=log)


def test_reads_reports_anywhere_in_the_tenant() -> None:
    assert reads_reports_in(held(("project_viewer", "tenant/acme/project/x")), "acme")
    assert reads_reports_in(held(("system_admin", "system")), "acme")
    assert not reads_reports_in(held(("auditor", "tenant/acme")), "acme")
    assert not reads_reports_in(held(("project_viewer", "tenant/globex/project/x")), "acme")


def test_session_log_bodies() -> None:
    body = {"project_id": "shop", "visibility": "team", "content": "# notes"}
    assert SessionLogIn.model_validate(body).visibility == "team"
    for change in (
        {"visibility": "public"},
        {"content": ""},
        {"project_id": "Shop!"},
        {"author": "me"},  # set by the server only
    ):
        with pytest.raises(ValidationError):
            SessionLogIn.model_validate({**body, **change})


# -- retention ----------------------------------------------------------------------------------


def test_retention_periods_are_whole_positive_days_or_forever() -> None:
    body = {"executions_days": 30, "logs_days": None, "session_logs_days": 1}
    assert RetentionIn.model_validate(body).logs_days is None
    for change in (
        {"executions_days": 0},
        {"executions_days": -1},
        {"executions_days": 1.5},
        {"executions_days": "30"},
        {"executions_days": True},
        {"executions_days": 36501},
    ):
        with pytest.raises(ValidationError):
            RetentionIn.model_validate({**body, **change})
    with pytest.raises(ValidationError):  # all three are said, null included
        RetentionIn.model_validate({"executions_days": 30})
    limits = cutoffs(DEFAULT_RETENTION, 100 * 86400.0)
    assert limits == {
        "executions": 10 * 86400.0,
        "traces": 10 * 86400.0,
        "logs": 70 * 86400.0,
        "session_logs": None,
    }


# -- the executive report -----------------------------------------------------------------------

NOW = datetime(2025, 6, 15, 15, 6, 40, tzinfo=UTC).timestamp()


def stamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_the_window_defaults_to_the_thirty_days_to_the_end_of_today() -> None:
    assert report_window(None, None, NOW) == (
        stamp("2025-05-17T00:00:00+00:00"),
        stamp("2025-06-16T00:00:00+00:00"),
    )
    assert report_window("2025-01-01", "2025-01-31", NOW) == (
        stamp("2025-01-01T00:00:00+00:00"),
        stamp("2025-02-01T00:00:00+00:00"),
    )
    assert report_window("2025-01-01T10:00:00+02:00", "2025-01-02T00:00:00Z", NOW) == (
        stamp("2025-01-01T08:00:00+00:00"),
        stamp("2025-01-02T00:00:00+00:00"),
    )
    assert report_window(None, "2025-03-01", NOW)[0] == stamp("2025-01-31T00:00:00+00:00")


@pytest.mark.parametrize(
    ("since", "until", "parameter"),
    [
        ("yesterday", None, "from"),
        ("2025-01-01T00:00:00", None, "from"),  # no offset
        ("2025-02-30", None, "from"),
        (None, "1700000000", "to"),
        (None, "2025-13-01", "to"),
        ("2025-02-01", "2025-01-01", "from"),
        ("2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z", "from"),
    ],
)
def test_a_bad_window_is_a_bad_request_naming_its_parameter(
    since: str | None, until: str | None, parameter: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        report_window(since, until, NOW)
    assert caught.value.details == {"parameter": parameter}
    assert parameter in caught.value.message


def test_contract_totals_are_exact_per_currency() -> None:
    contracts = [
        {"status": "active", "value": "0.1", "currency": "EUR"},
        {"status": "active", "value": "0.2", "currency": "EUR"},
        {"status": "active", "value": "999999999999999999.999999", "currency": "JPY"},
        {"status": "active", "value": "0.000001", "currency": "JPY"},
        {"status": "expired", "value": "7", "currency": "USD"},
    ]
    summary = {s.status: s for s in contract_summary(contracts)}
    assert [s.status for s in contract_summary([])] == list(CONTRACT_STATUSES)
    assert summary["active"].count == 4
    assert [(t.currency, t.count, t.total) for t in summary["active"].totals] == [
        ("EUR", 2, "0.3"),
        ("JPY", 2, "1000000000000000000.000000"),
    ]
    assert summary["draft"].count == 0 and summary["draft"].totals == []


def test_p95_is_the_nearest_rank() -> None:
    assert p95([]) is None
    assert p95([5.0]) == 5.0
    assert p95([float(n) for n in range(1, 101)]) == 95.0
    assert p95([float(n) for n in range(1, 21)]) == 19.0
    tally = FlowTally()
    for status, latency in (("ok", 1.0), ("error", 3.0), ("invalid", 2.0), ("ok", None)):
        tally.add({"status": status, "latency_ms": latency})
    stats = tally.stats("shop", "dev", "f")
    assert (stats.executions, stats.errors, stats.error_rate, stats.p95_latency_ms) == (
        4,
        2,
        0.5,
        3.0,
    )
    assert FlowTally().stats("shop", "dev", None).error_rate == 0.0


def test_an_execution_counts_for_its_own_flows_else_its_steps() -> None:
    step_flows = {"Pay": ["checkout", "billing"]}
    assert flows_of_execution({"step": "Pay"}, step_flows) == ["checkout", "billing"]
    assert flows_of_execution({"step": "Pay", "flows": ["x"]}, step_flows) == ["x"]
    assert flows_of_execution({"step": "Other"}, step_flows) == [None]


def test_the_csv_is_one_table_with_a_section_column() -> None:
    report = ExecutiveReport.model_validate(
        {
            "window": {"from": "2025-05-17T00:00:00.000Z", "to": "2025-06-16T00:00:00.000Z"},
            "contracts": [
                s.model_dump()
                for s in contract_summary(
                    [
                        {"status": "active", "value": "10", "currency": "EUR"},
                        {"status": "active", "value": "5", "currency": "USD"},
                    ]
                )
            ],
            "projects": project_summary(
                ["shop", "blog"],
                {"shop": {"status": "green", "period": "W1", "id": "r1", "created_at": "t"}},
            ).model_dump(),
            "flows": [
                {
                    "project": "shop",
                    "env": "dev",
                    "flow": "=HYPERLINK(1)",
                    "executions": 3,
                    "errors": 1,
                    "error_rate": 0.333333,
                    "p95_latency_ms": 12.5,
                }
            ],
        }
    )
    text = executive_csv(report)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["section"] for r in rows] == [
        "window",
        *["contracts"] * 5,  # active in two currencies, three statuses without contracts
        "projects",
        "projects",
        "flows",
    ]
    assert (rows[0]["from"], rows[0]["to"]) == (
        "2025-05-17T00:00:00.000Z",
        "2025-06-16T00:00:00.000Z",
    )
    contracts = [
        (r["status"], r["currency"], r["count"], r["total_value"])
        for r in rows
        if r["section"] == "contracts"
    ]
    assert contracts == [
        ("draft", "", "0", ""),
        ("active", "EUR", "1", "10"),
        ("active", "USD", "1", "5"),
        ("expired", "", "0", ""),
        ("terminated", "", "0", ""),
    ]
    projects = {r["project"]: r["status"] for r in rows if r["section"] == "projects"}
    assert projects == {"blog": "", "shop": "green"}
    [flow] = [r for r in rows if r["section"] == "flows"]
    assert flow["flow"] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
    assert (flow["executions"], flow["errors"], flow["p95_latency_ms"]) == ("3", "1", "12.5")
    assert text.endswith("\r\n")


def test_the_series_buckets_hours_days_or_weeks_by_the_window() -> None:
    from cfp.domain.reporting import Series, series_step

    day = 86400.0
    assert series_step(0, 2 * day) == 3600 and series_step(0, 3 * day) == day
    assert series_step(0, 401 * day) == 7 * day
    series = Series(0, 3 * day)
    for started, status in ((10, "ok"), (day + 5, "error"), (day + 9, "ok"), (5 * day, "ok")):
        series.add({"started_at": started, "status": status})
    series.add({"started_at": "soon", "status": "ok"})  # no number: not counted
    points = series.points()
    assert [(p.executions, p.errors) for p in points] == [(1, 0), (2, 1), (0, 0)]
    assert points[1].error_rate == 0.5 and points[2].error_rate == 0.0
    assert (
        points[0].start == "1970-01-01T00:00:00.000Z"
        and points[-1].end == "1970-01-04T00:00:00.000Z"
    )
