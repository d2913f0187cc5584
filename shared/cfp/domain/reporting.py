"""Reporting: contracts with their documents, project status reports, session logs, the
executive report, and each tenant's retention periods and legal holds — their wire shapes, the
rules on them and where they are stored, without I/O.

Choices (docs/reporting.md says them to users):

- A contract's `value` is a decimal string (`"12500.00"`): exact, non-negative, at most 18
  integer and 6 fractional digits, in its `currency` (ISO 4217, three upper-case letters).
  Totals are summed exactly per currency, never across currencies.
- A contract's status moves draft → active → expired | terminated, one step at a time; a
  contract is created as draft (or, for one already running, as active).
- A session log's visibility nests: private ⊂ team ⊂ project ⊂ tenant (`can_see_session_log`).
- Retention periods are whole days, or null to keep forever.
"""

from __future__ import annotations

import base64
import binascii
import csv
import decimal
import io
import math
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import rfc8785
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cfp.domain.audit import payload_hash
from cfp.domain.documents import doc_id
from cfp.domain.rbac import ROLES, AccessScope, Binding, ScopeKind, allowed
from cfp.domain.tenancy import SLUG, TenantPaths
from cfp.errors import BadRequest, Conflict

# -- value types --------------------------------------------------------------------------------

DECIMAL = r"^(0|[1-9][0-9]{0,17})(\.[0-9]{1,6})?$"
CURRENCY = r"^[A-Z]{3}$"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# a media type as RFC 9110 writes it: type "/" subtype, parameters after a ";"
_MEDIA_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
)
MAX_DOCUMENTS = 100  # per contract: their records live in the contract's own document
MAX_NAME = 255


def _iso_date(value: Any) -> Any:
    """Only `YYYY-MM-DD` text is a date on the wire (not a number, not a time)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError("a date is text `YYYY-MM-DD`")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
Days = Annotated[int, Field(strict=True, ge=1, le=36500)]


def _amount(value: Any) -> Any:
    """A JSON number is taken as the decimal it is written as (an integer, or a finite float
    through its shortest text); text is checked against DECIMAL as it is."""
    if isinstance(value, bool):
        return value  # refused by the pattern's type check
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        text = repr(value)
        return text if "e" not in text else format(decimal.Decimal(text), "f")
    return value


Amount = Annotated[
    str,
    BeforeValidator(_amount),
    Field(
        pattern=DECIMAL,
        description="A non-negative decimal: text (`12500.00`, kept exactly) or a JSON number",
    ),
]
Currency = Annotated[str, Field(pattern=CURRENCY, description="ISO 4217 code: `EUR`, `USD`")]
ProjectId = Annotated[str, Field(pattern=SLUG, description="The project's id (its slug)")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors -------------------------------------------------------------------------------------


class InvalidTransition(Conflict):
    """A status change the lifecycle does not allow; retrying will not make it allowed."""

    code, retryable = "invalid_transition", False


# -- time ---------------------------------------------------------------------------------------


def iso(epoch: float) -> str:
    """Epoch seconds as the API shows times: RFC 3339, UTC, milliseconds, one fixed width (so
    that text order is time order)."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return f"{moment.year:04d}" + moment.strftime("-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_id(prefix: str, now: float | None = None) -> str:
    """An id that sorts by creation time (milliseconds), then a random part: `ctr-…`."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{prefix}-{millis:012x}{secrets.token_hex(5)}"


def content_hash(data: str | Mapping[str, Any] | Sequence[Any]) -> str:
    """The audit `payload_hash` of content kept as text (UTF-8) or JSON (RFC 8785): what an
    audit record keeps of content instead of the content."""
    raw = data.encode() if isinstance(data, str) else rfc8785.dumps(data)
    return payload_hash(raw)


# -- where it is stored -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportingPaths:
    """Documents and blob keys of one tenant's reporting, all under `tenants/{t}/`."""

    tenant: str

    @property
    def root(self) -> str:
        return TenantPaths(self.tenant).root

    def contracts(self) -> str:
        return f"{self.root}/contracts"

    def contract(self, contract: str) -> str:
        return f"{self.contracts()}/{doc_id(contract)}"

    def document_key(self, contract: str, document: str) -> str:
        """The blob of a contract's document (a BlobStore key: the same shape as the path)."""
        return f"{self.contract(contract)}/documents/{doc_id(document)}"

    def reports(self) -> str:
        return f"{self.root}/reports"

    def report(self, report: str) -> str:
        return f"{self.reports()}/{doc_id(report)}"

    def latest_reports(self) -> str:
        """One document per project: its newest status report."""
        return f"{self.root}/report_latest"

    def latest_report(self, project: str) -> str:
        return f"{self.latest_reports()}/{doc_id(project)}"

    def session_logs(self) -> str:
        return f"{self.root}/session_logs"

    def session_log(self, log: str) -> str:
        return f"{self.session_logs()}/{doc_id(log)}"

    def retention(self) -> str:
        return f"{self.root}/config/retention"

    def legal_holds(self) -> str:
        return f"{self.root}/legal_holds"

    def legal_hold(self, hold: str) -> str:
        return f"{self.legal_holds()}/{doc_id(hold)}"

    def hold_serial(self) -> str:
        """`{serial}`, moved by every hold placed or released: a purge's deletions commit only
        if it has not moved since the purge saw no hold."""
        return f"{self.root}/config/legal_hold_serial"


# -- contracts ----------------------------------------------------------------------------------

ContractStatus = Literal["draft", "active", "expired", "terminated"]
CONTRACT_STATUSES: tuple[ContractStatus, ...] = ("draft", "active", "expired", "terminated")
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "draft": frozenset({"active"}),
    "active": frozenset({"expired", "terminated"}),
    "expired": frozenset(),
    "terminated": frozenset(),
}


def check_transition(current: str, new: str) -> None:
    """InvalidTransition (409) naming both states unless the lifecycle allows `current` →
    `new`: draft → active → expired | terminated, never a no-op or a step back."""
    if new in TRANSITIONS.get(current, frozenset()):
        return
    nexts = sorted(TRANSITIONS.get(current, frozenset()))
    allowed_next = " or ".join(nexts) if nexts else "nothing (it is final)"
    raise InvalidTransition(
        f"a contract cannot move from {current} to {new}: from {current} it moves to "
        f"{allowed_next}",
        details={"from": current, "to": new, "allowed": nexts},
    )


def _dates_in_order(start: date | None, end: date | None) -> None:
    if start is not None and end is not None and end < start:
        raise ValueError(f"end_date {end} is before start_date {start}")


class DocumentIn(Strict):
    """A document sent with the contract: its bytes in base64 (large ones are uploaded on
    their own, to POST /v1/contracts/{id}/documents)."""

    name: str = Field(min_length=1, max_length=200)
    content_type: str = Field(default="application/octet-stream", max_length=200)
    content: str = Field(description="The bytes, base64 (RFC 4648)")

    def data(self) -> bytes:
        try:
            raw = base64.b64decode(self.content, validate=True)
        except binascii.Error:
            raise ValueError("content is not base64") from None
        if not raw:
            raise ValueError("content is empty")
        return raw


class ContractIn(Strict):
    title: str = Field(min_length=1, max_length=200)
    counterparty: str = Field(min_length=1, max_length=200)
    status: Literal["draft", "active"] = Field(
        default="draft", description="draft, or active for a contract already running"
    )
    value: Amount
    currency: Currency
    start_date: IsoDate
    end_date: IsoDate | None = Field(default=None, description="null: open-ended")
    documents: list[DocumentIn] = Field(default_factory=list, max_length=MAX_DOCUMENTS)

    @field_validator("end_date")
    @classmethod
    def _end_after_start(cls, end: date | None, info: ValidationInfo) -> date | None:
        _dates_in_order(info.data.get("start_date"), end)  # the error points at /end_date
        return end

    @field_validator("documents")
    @classmethod
    def _documents_decode(cls, documents: list[DocumentIn]) -> list[DocumentIn]:
        for index, document in enumerate(documents):
            try:
                document.data()
                document_name(document.name)
                media_type(document.content_type)
            except BadRequest as exc:
                raise ValueError(f"documents[{index}]: {exc.message}") from None
            except ValueError as exc:
                raise ValueError(f"documents[{index}]: {exc}") from None
        return documents


class ContractPatch(Strict):
    """The fields to change; `end_date: null` makes the contract open-ended."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    counterparty: str | None = Field(default=None, min_length=1, max_length=200)
    status: ContractStatus | None = None
    value: Amount | None = None
    currency: Currency | None = None
    start_date: IsoDate | None = None
    end_date: IsoDate | None = None

    @model_validator(mode="after")
    def _no_null_but_end_date(self) -> ContractPatch:
        for name in sorted(self.model_fields_set - {"end_date"}):
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        _dates_in_order(self.start_date, self.end_date)
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the request sets, as stored (dates as text)."""
        return {
            name: value
            for name, value in self.model_dump(mode="json").items()
            if name in self.model_fields_set
        }


def merged_dates_problem(stored: Mapping[str, Any], changes: Mapping[str, Any]) -> str | None:
    """What is wrong with the dates a patch leaves a contract with, or None."""
    start = changes.get("start_date", stored.get("start_date"))
    end = changes.get("end_date", stored.get("end_date"))
    if start is not None and end is not None and str(end) < str(start):
        return f"end_date {end} is before start_date {start}"
    return None


class ContractDocument(BaseModel):
    """A document stored with a contract: its bytes are in the blob store, never here."""

    id: str
    name: str
    content_type: str
    size: int
    sha256: str
    uploaded_at: str
    uploaded_by: str


class Contract(BaseModel):
    id: str
    title: str
    counterparty: str
    status: ContractStatus
    value: str
    currency: str
    start_date: date
    end_date: date | None
    documents: list[ContractDocument]
    created_at: str
    created_by: str
    updated_at: str
    version: int


def document_name(raw: str | None) -> str:
    """A document's file name as given (`?name=`), or `document`; BadRequest for one that
    could not be a file name."""
    if raw is None or raw == "":
        return "document"
    if len(raw) > MAX_NAME or any(c in raw for c in "/\\") or not raw.isprintable():
        raise BadRequest(
            f"name is a file name of at most {MAX_NAME} printable characters without '/' or '\\'",
            details={"parameter": "name"},
        )
    if raw in {".", ".."}:
        raise BadRequest("name is not a file name", details={"parameter": "name"})
    return raw


def media_type(raw: str | None) -> str:
    """The Content-Type a document is stored and served with: `type/subtype` and parameters as
    sent (application/octet-stream when absent); BadRequest for a malformed one."""
    if raw is None or not raw.strip():
        return "application/octet-stream"
    value = raw.strip()
    essence = value.split(";", 1)[0].strip()
    if len(value) > 255 or not _MEDIA_TYPE.fullmatch(essence) or not value.isprintable():
        raise BadRequest(
            "Content-Type must be a media type such as application/pdf",
            details={"header": "content-type"},
        )
    return value


# -- project status reports ---------------------------------------------------------------------

ReportStatus = Literal["green", "amber", "red"]
REPORT_STATUSES: tuple[ReportStatus, ...] = ("green", "amber", "red")


class ReportIn(Strict):
    project_id: ProjectId
    status: ReportStatus
    period: str = Field(
        min_length=1, max_length=100, description="What it covers: `2025-W07`, `January 2025`"
    )
    summary: str = Field(max_length=20_000, description="Markdown")
    highlights: list[Annotated[str, Field(max_length=2_000)]] = Field(
        default_factory=list, max_length=50
    )
    risks: list[Annotated[str, Field(max_length=2_000)]] = Field(
        default_factory=list, max_length=50
    )


class Report(BaseModel):
    id: str
    project_id: str
    status: ReportStatus
    period: str
    summary: str
    highlights: list[str]
    risks: list[str]
    author: str
    created_at: str


# -- session logs -------------------------------------------------------------------------------

Visibility = Literal["private", "team", "project", "tenant"]


class SessionLogIn(Strict):
    project_id: ProjectId
    visibility: Visibility
    content: str = Field(min_length=1, max_length=200_000, description="Markdown")


class SessionLog(BaseModel):
    id: str
    project_id: str
    visibility: Visibility
    content: str
    author: str  # the principal that wrote it, set by the server
    created_at: str


def _role_of(binding: Binding) -> Any:
    # A stored binding the table no longer admits grants nothing (as in cfp.domain.rbac).
    role = ROLES.get(binding.role)
    if role is None or binding.scope.kind not in role.scopes:
        return None
    return role


def reads_reports_in(bindings: Iterable[Binding], tenant: str) -> bool:
    """Whether any binding grants `report.read` somewhere in `tenant` (on it, a team or a
    project of it, or system-wide)."""
    for binding in bindings:
        role = _role_of(binding)
        if role is None or "report.read" not in role.actions:
            continue
        if binding.scope.kind is ScopeKind.SYSTEM or binding.scope.tenant == tenant:
            return True
    return False


def can_see_session_log(
    principal: str,
    bindings: Sequence[Binding],
    *,
    tenant: str,
    team: str | None,
    log: Mapping[str, Any],
) -> bool:
    """Whether a principal with `bindings` may read `log` (of a project whose team is `team`):

    - its author always;
    - `private`: nobody else;
    - `team`: whoever reads reports of the project (`report.read` there) through a role on the
      project's team or above it (the tenant, the system), not through the project alone;
    - `project`: whoever holds `report.read` on the project;
    - `tenant`: whoever holds `report.read` anywhere in the tenant.
    """
    if log.get("author") == principal:
        return True
    visibility = log.get("visibility")
    project = AccessScope.for_project(tenant, str(log.get("project_id")))
    if visibility == "tenant":
        return reads_reports_in(bindings, tenant)
    if visibility == "project":
        return allowed(bindings, "report.read", project, team=team)
    if visibility == "team":
        # report.read on the project from a binding on its team or above, the same binding:
        # a project-only reader plus some unrelated team role is not on the team.
        above = [b for b in bindings if b.scope.kind is not ScopeKind.PROJECT]
        return allowed(above, "report.read", project, team=team)
    return False


# -- retention and legal holds ------------------------------------------------------------------

PurgeKind = Literal["executions", "traces", "logs", "session_logs"]
PURGE_KINDS: tuple[PurgeKind, ...] = ("executions", "traces", "logs", "session_logs")
# the period each kind is kept for: a trace (its summary) goes with its executions
PERIOD_OF: Mapping[str, str] = {
    "executions": "executions_days",
    "traces": "executions_days",
    "logs": "logs_days",
    "session_logs": "session_logs_days",
}


class RetentionIn(Strict):
    """Each period in whole days (1 to 36500), or null to keep forever."""

    executions_days: Days | None
    logs_days: Days | None
    session_logs_days: Days | None


class RetentionSettings(BaseModel):
    executions_days: int | None
    logs_days: int | None
    session_logs_days: int | None
    updated_at: str | None = None
    updated_by: str | None = None
    version: int = Field(description="0 while the defaults apply; the ETag")


DEFAULT_RETENTION = RetentionSettings(
    executions_days=90, logs_days=30, session_logs_days=None, version=0
)


def cutoffs(retention: RetentionSettings, now: float) -> dict[str, float | None]:
    """Per kind, the time before which records are purged (None: kept forever)."""
    result: dict[str, float | None] = {}
    for kind in PURGE_KINDS:
        days = getattr(retention, PERIOD_OF[kind])
        result[kind] = None if days is None else now - days * 86400.0
    return result


class LegalHoldIn(Strict):
    reason: str = Field(min_length=1, max_length=1000)


class LegalHold(BaseModel):
    id: str
    reason: str
    created_at: str
    created_by: str


class PurgeCounts(BaseModel):
    executions: int = 0
    traces: int = 0
    logs: int = 0
    session_logs: int = 0


class PurgeCutoffs(BaseModel):
    """Records older than these times were purged; null: that kind is kept forever."""

    executions: str | None
    traces: str | None
    logs: str | None
    session_logs: str | None


class PurgeResult(BaseModel):
    tenant: str
    at: str
    held: bool = Field(description="true: a legal hold is active and nothing was deleted")
    holds: list[str]
    cutoffs: PurgeCutoffs
    deleted: PurgeCounts


# -- the executive report -----------------------------------------------------------------------

DEFAULT_WINDOW_DAYS = 30


def parse_bound(raw: str, parameter: str, *, end: bool) -> datetime:
    """A window bound: an RFC 3339 time with its offset, or a date — its start as `from`, its
    end (the next midnight, exclusive) as `to`. BadRequest naming `parameter` otherwise."""
    text = raw.strip()
    problem = f"{parameter} must be an RFC 3339 time (2025-01-31T00:00:00Z) or a date (2025-01-31)"
    if _DATE.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise BadRequest(problem, details={"parameter": parameter}) from None
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start + timedelta(days=1) if end else start
    if "T" not in text.upper() and " " not in text:
        raise BadRequest(problem, details={"parameter": parameter})
    try:
        when = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise BadRequest(problem, details={"parameter": parameter}) from None
    if when.tzinfo is None:
        raise BadRequest(
            f"{parameter} needs its UTC offset (`Z` or `+01:00`)", details={"parameter": parameter}
        )
    return when.astimezone(UTC)


def report_window(raw_from: str | None, raw_to: str | None, now: float) -> tuple[float, float]:
    """The window `[from, to)` in epoch seconds. Defaults: `to` the end of today (UTC), `from`
    30 days before `to`; `from` must be before `to`; both within years 1970 to 9998."""
    try:
        return _window(raw_from, raw_to, now)
    except OverflowError:
        raise BadRequest(
            "from and to lie between 1970-01-01 and 9998-12-31",
            details={"parameter": "from" if raw_from else "to"},
        ) from None


def _window(raw_from: str | None, raw_to: str | None, now: float) -> tuple[float, float]:
    if raw_to:
        to = parse_bound(raw_to, "to", end=True)
    else:
        today = datetime.fromtimestamp(now, UTC).date()
        to = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
    start = (
        parse_bound(raw_from, "from", end=False)
        if raw_from
        else to - timedelta(days=DEFAULT_WINDOW_DAYS)
    )
    if start >= to:
        raise BadRequest(
            f"from ({start.isoformat()}) must be before to ({to.isoformat()})",
            details={"parameter": "from"},
        )
    for bound, name in ((start, "from"), (to, "to")):
        if not _EPOCH <= bound <= _LAST:
            raise BadRequest(
                f"{name} lies between 1970-01-01 and 9998-12-31", details={"parameter": name}
            )
    return start.timestamp(), to.timestamp()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LAST = datetime(9998, 12, 31, 23, 59, 59, tzinfo=UTC)


class Window(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", description="Inclusive")
    to: str = Field(description="Exclusive")


class CurrencyTotal(BaseModel):
    currency: str
    count: int
    total: str = Field(description="The exact sum of the contracts' values, as text")


class ContractStatusSummary(BaseModel):
    status: ContractStatus
    count: int
    totals: list[CurrencyTotal]


class ProjectStatus(BaseModel):
    project_id: str
    status: ReportStatus | None = Field(description="Of its latest report; null: none yet")
    period: str | None
    report_id: str | None
    reported_at: str | None


class ProjectStatusSummary(BaseModel):
    counts: dict[str, int] = Field(description="Projects by latest status: green, amber, red, none")
    items: list[ProjectStatus]


class FlowStats(BaseModel):
    project: str
    env: str
    flow: str | None = Field(description="null: steps that belong to no flow")
    executions: int
    errors: int
    error_rate: float = Field(description="errors / executions (0 without executions)")
    p95_latency_ms: float | None = Field(description="Nearest-rank 95th percentile")


class SeriesPoint(BaseModel):
    """Executions that started in `[start, end)`, every flow and project of the tenant."""

    start: str
    end: str
    executions: int
    errors: int
    error_rate: float


class ExecutiveReport(BaseModel):
    window: Window
    contracts: list[ContractStatusSummary]
    projects: ProjectStatusSummary
    flows: list[FlowStats]
    series: list[SeriesPoint] = Field(
        default_factory=list,
        description="Executions and error rate over time: hourly for windows up to two days, "
        "daily up to 400 days, weekly beyond",
    )


def series_step(start: float, end: float) -> float:
    """The width of the series' buckets, in seconds, for a window `[start, end)`."""
    span = end - start
    if span <= 2 * 86400:
        return 3600.0
    if span <= 400 * 86400:
        return 86400.0
    return 7 * 86400.0


class Series:
    """Executions and errors counted into the buckets of a window."""

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.step = series_step(start, end)
        self.size = max(1, math.ceil((end - start) / self.step))
        self.executions = [0] * self.size
        self.errors = [0] * self.size

    def add(self, execution: Mapping[str, Any]) -> None:
        started = execution.get("started_at")
        if not isinstance(started, int | float) or isinstance(started, bool):
            return
        index = int((started - self.start) // self.step)
        if 0 <= index < self.size:
            self.executions[index] += 1
            if execution.get("status") != "ok":
                self.errors[index] += 1

    def points(self) -> list[SeriesPoint]:
        return [
            SeriesPoint(
                start=iso(self.start + i * self.step),
                end=iso(min(self.end, self.start + (i + 1) * self.step)),
                executions=n,
                errors=self.errors[i],
                error_rate=round(self.errors[i] / n, 6) if n else 0.0,
            )
            for i, n in enumerate(self.executions)
        ]


def contract_summary(contracts: Iterable[Mapping[str, Any]]) -> list[ContractStatusSummary]:
    """Contracts by status (every status, zero included) with exact totals per currency."""
    totals: dict[str, dict[str, tuple[int, decimal.Decimal]]] = {s: {} for s in CONTRACT_STATUSES}
    context = decimal.Context(prec=60)
    for contract in contracts:
        by_currency = totals[contract["status"]]
        count, total = by_currency.get(contract["currency"], (0, decimal.Decimal(0)))
        amount = decimal.Decimal(contract["value"])
        by_currency[contract["currency"]] = (count + 1, context.add(total, amount))
    return [
        ContractStatusSummary(
            status=status,
            count=sum(count for count, _ in totals[status].values()),
            totals=[
                CurrencyTotal(currency=currency, count=count, total=format(total, "f"))
                for currency, (count, total) in sorted(totals[status].items())
            ],
        )
        for status in CONTRACT_STATUSES
    ]


def project_summary(
    projects: Iterable[str], latest: Mapping[str, Mapping[str, Any]]
) -> ProjectStatusSummary:
    """Every project with the status of its latest report, and how many are in each."""
    counts = {**dict.fromkeys(REPORT_STATUSES, 0), "none": 0}
    items = []
    for project in sorted(set(projects) | set(latest)):
        report = latest.get(project)
        counts[report["status"] if report else "none"] += 1
        items.append(
            ProjectStatus(
                project_id=project,
                status=report["status"] if report else None,
                period=report["period"] if report else None,
                report_id=report["id"] if report else None,
                reported_at=report["created_at"] if report else None,
            )
        )
    return ProjectStatusSummary(counts=counts, items=items)


def p95(values: Sequence[float]) -> float | None:
    """The nearest-rank 95th percentile: the smallest value at or above 95 % of them."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)])


@dataclass
class FlowTally:
    """Executions of one flow of one project environment, as they are read."""

    executions: int = 0
    errors: int = 0
    latencies: list[float] | None = None

    def add(self, execution: Mapping[str, Any]) -> None:
        self.executions += 1
        if execution.get("status") != "ok":
            self.errors += 1
        latency = execution.get("latency_ms")
        if isinstance(latency, int | float) and not isinstance(latency, bool):
            if self.latencies is None:
                self.latencies = []
            self.latencies.append(float(latency))

    def stats(self, project: str, env: str, flow: str | None) -> FlowStats:
        return FlowStats(
            project=project,
            env=env,
            flow=flow,
            executions=self.executions,
            errors=self.errors,
            error_rate=round(self.errors / self.executions, 6) if self.executions else 0.0,
            p95_latency_ms=p95(self.latencies or []),
        )


def flows_of_execution(
    execution: Mapping[str, Any], step_flows: Mapping[str, list[str]]
) -> list[str | None]:
    """The flows an execution counts for: those it names itself, else its step's (from the
    registered flow graphs); `[None]` for a step in no flow."""
    named = execution.get("flows")
    if isinstance(named, list) and named:
        return [str(f) for f in named]
    flows: list[str | None] = list(step_flows.get(str(execution.get("step")), []))
    return flows or [None]


CSV_COLUMNS = (
    "section",
    "project",
    "env",
    "flow",
    "status",
    "currency",
    "count",
    "total_value",
    "executions",
    "errors",
    "error_rate",
    "p95_latency_ms",
    "from",
    "to",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    # a spreadsheet must not run a cell as a formula (OWASP CSV injection)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def executive_csv(report: ExecutiveReport) -> str:
    """The report as one CSV table (`CSV_COLUMNS`): a `window` row with `from` and `to`, a
    `contracts` row per status and currency with its count and total (a status without
    contracts: one row, count 0),
    a `projects` row per project with its latest status, a `flows` row per flow."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    rows: list[dict[str, Any]] = [
        {"section": "window", "from": report.window.from_, "to": report.window.to}
    ]
    for summary in report.contracts:
        if not summary.totals:
            rows.append({"section": "contracts", "status": summary.status, "count": 0})
        for total in summary.totals:
            rows.append(
                {
                    "section": "contracts",
                    "status": summary.status,
                    "currency": total.currency,
                    "count": total.count,
                    "total_value": total.total,
                }
            )
    for project in report.projects.items:
        rows.append(
            {"section": "projects", "project": project.project_id, "status": project.status}
        )
    for point in report.series:
        rows.append(
            {
                "section": "series",
                "from": point.start,
                "to": point.end,
                "executions": point.executions,
                "errors": point.errors,
                "error_rate": point.error_rate,
            }
        )
    for flow in report.flows:
        rows.append(
            {
                "section": "flows",
                "project": flow.project,
                "env": flow.env,
                "flow": flow.flow,
                "executions": flow.executions,
                "errors": flow.errors,
                "error_rate": flow.error_rate,
                "p95_latency_ms": flow.p95_latency_ms,
            }
        )
    for row in rows:
        writer.writerow({column: _cell(row.get(column)) for column in CSV_COLUMNS})
    return out.getvalue()
