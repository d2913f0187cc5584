"""Reporting over HTTP: contracts and their documents, project status reports, session logs, the
executive report (JSON or CSV), retention settings, legal holds and purges. Thin: parse, resolve
the caller, call `cfp.services.reporting` or `cfp.services.retention`, shape the reply. Declared
once in `REPORT_OPERATIONS`, which the app mounts and the OpenAPI document lists."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cfp.api.callers import control, tenant_caller
from cfp.api.control_routes import if_match, resource
from cfp.api.operations import ERRORS, Operation
from cfp.api.runtime_routes import listing, no_body, page_args, read_json
from cfp.domain.reporting import (
    Contract,
    ContractDocument,
    ContractIn,
    ContractPatch,
    ExecutiveReport,
    LegalHold,
    LegalHoldIn,
    PurgeResult,
    Report,
    ReportIn,
    RetentionIn,
    RetentionSettings,
    SessionLog,
    SessionLogIn,
    executive_csv,
)
from cfp.services.reporting import Reporting, project_param
from cfp.services.retention import Retention


class LatestReports(BaseModel):
    """The latest status report of each project the caller reads reports of."""

    items: list[Report]


def reporting(request: Request) -> Reporting:
    return control(request).reporting


def retention(request: Request) -> Retention:
    return control(request).retention


def _json(model: BaseModel, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", by_alias=True), status_code=status)


# -- contracts ----------------------------------------------------------------------------------


async def create_contract(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    body = await read_json(request, ContractIn)
    return resource(await reporting(request).create_contract(who, tenant, body), 201)


async def list_contracts(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    limit, cursor = page_args(request)
    page = await reporting(request).list_contracts(
        who, tenant, status=request.query_params.get("status") or None, limit=limit, cursor=cursor
    )
    return listing(page.items, page.next_cursor)


async def get_contract(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    return resource(
        await reporting(request).get_contract(who, tenant, request.path_params["contract"])
    )


async def update_contract(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    body = await read_json(request, ContractPatch)
    updated = await reporting(request).update_contract(
        who, tenant, request.path_params["contract"], body, if_match(request)
    )
    return resource(updated)


async def upload_document(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    document = await reporting(request).add_document(
        who,
        tenant,
        request.path_params["contract"],
        name=request.query_params.get("name"),
        content_type=request.headers.get("content-type"),
        data=await request.body(),
    )
    return _json(document, 201)


def _attachment(name: str) -> str:
    """Content-Disposition for a download: an ASCII fallback and the exact UTF-8 name."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def download_document(request: Request) -> Response:
    who, tenant = await tenant_caller(request)
    params = request.path_params
    record, data = await reporting(request).read_document(
        who, tenant, params["contract"], params["document"]
    )
    return Response(
        data,
        headers={
            "content-type": record.content_type,
            "content-disposition": _attachment(record.name),
            "x-content-type-options": "nosniff",
            "etag": f'"{record.sha256}"',
        },
    )


# -- status reports -----------------------------------------------------------------------------


async def create_report(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    body = await read_json(request, ReportIn)
    return _json(await reporting(request).create_report(who, tenant, body), 201)


async def list_reports(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    limit, cursor = page_args(request)
    project = project_param(request.query_params.get("project"))
    page = await reporting(request).list_reports(
        who, tenant, project=project, limit=limit, cursor=cursor
    )
    return listing(page.items, page.next_cursor)


async def latest_reports(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    project = project_param(request.query_params.get("project"))
    found = await reporting(request).latest_reports(who, tenant, project=project)
    return _json(LatestReports(items=found))


async def get_report(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    return _json(await reporting(request).get_report(who, tenant, request.path_params["report"]))


# -- session logs -------------------------------------------------------------------------------


async def create_session_log(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    body = await read_json(request, SessionLogIn)
    return _json(await reporting(request).create_session_log(who, tenant, body), 201)


async def list_session_logs(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    limit, cursor = page_args(request)
    project = project_param(request.query_params.get("project"))
    page = await reporting(request).list_session_logs(
        who, tenant, project=project, limit=limit, cursor=cursor
    )
    return listing(page.items, page.next_cursor)


async def get_session_log(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    log = await reporting(request).get_session_log(who, tenant, request.path_params["log"])
    return _json(log)


# -- the executive report -----------------------------------------------------------------------


def _quality(accept: str, wanted: str) -> float:
    """The q a client's Accept gives `wanted` (exact type, `type/*` or `*/*`; 0 if none)."""
    main = wanted.split("/", 1)[0]
    best, specificity = 0.0, -1
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        media = media.lower()
        rank = {wanted: 2, f"{main}/*": 1, "*/*": 0}.get(media)
        if rank is None or rank < specificity:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best, specificity = q, rank
    return best


def wants_csv(request: Request) -> bool:
    """CSV when the Accept header prefers text/csv to application/json (JSON on a tie)."""
    accept = request.headers.get("accept", "")
    return _quality(accept, "text/csv") > _quality(accept, "application/json")


async def get_executive_report(request: Request) -> Response:
    who, tenant = await tenant_caller(request)
    q = request.query_params
    report = await reporting(request).executive_report(
        who, tenant, since=q.get("from") or None, until=q.get("to") or None
    )
    if wants_csv(request):
        return Response(
            executive_csv(report),
            media_type="text/csv",
            headers={"content-disposition": 'inline; filename="executive-report.csv"'},
        )
    return _json(report)


# -- retention and legal holds ------------------------------------------------------------------


async def get_retention(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    return resource(await retention(request).get(who, tenant))


async def put_retention(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    body = await read_json(request, RetentionIn)
    return resource(await retention(request).put(who, tenant, body, if_match(request)))


async def purge(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    await no_body(request)
    return _json(await retention(request).purge_as(who, tenant))


async def list_legal_holds(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    limit, cursor = page_args(request)
    page = await retention(request).list_holds(who, tenant, limit=limit, cursor=cursor)
    return listing(page.items, page.next_cursor)


async def place_legal_hold(request: Request) -> JSONResponse:
    who, tenant = await tenant_caller(request)
    body = await read_json(request, LegalHoldIn)
    return _json(await retention(request).place_hold(who, tenant, body), 201)


async def release_legal_hold(request: Request) -> Response:
    who, tenant = await tenant_caller(request)
    await retention(request).release_hold(who, tenant, request.path_params["hold"])
    return Response(status_code=204)


# -- declarations -------------------------------------------------------------------------------

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}


def _responses(
    status: int, description: str, content: dict[str, Any], errors: tuple[str, ...]
) -> dict[str, Any]:
    """A `responses` object for an answer that is not (only) JSON."""
    return {
        str(status): {"description": description, "content": content},
        **{code: {"description": ERRORS[code], "content": _ERROR} for code in errors},
    }


def _op(
    method: str, path: str, handler: Any, op_id: str, summary: str, tag: str, **kw: Any
) -> Operation:
    return Operation(method, path, handler, op_id, summary, tag, **kw)


_READ = ("400", "401", "403", "404")
_CREATE = ("400", "401", "403", "404", "409", "422")
_WRITE = ("400", "401", "403", "404", "409", "412", "422")
_PROJECT = (("project", "Only this project's (its id)"),)

_DOWNLOAD_ERRORS = ("400", "401", "403", "404", "503")
_CSV_ERRORS = _READ

# `/v1/reports/latest` before `/v1/reports/{report}`, `/v1/retention/purge` with its own method:
# routes match in this order.
REPORT_OPERATIONS: list[Operation] = [
    _op(
        "GET",
        "/v1/contracts",
        list_contracts,
        "listContracts",
        "The tenant's contracts, newest first",
        "contracts",
        response=Contract,
        paged=True,
        query=(("status", "Only contracts in this status: draft, active, expired, terminated"),),
    ),
    _op(
        "POST",
        "/v1/contracts",
        create_contract,
        "createContract",
        "Create a contract (draft, or active for one already running); `value` is a decimal "
        "string in `currency`",
        "contracts",
        body=ContractIn,
        response=Contract,
        status=201,
        errors=_CREATE,
        idempotent=True,
    ),
    _op(
        "GET",
        "/v1/contracts/{contract}",
        get_contract,
        "getContract",
        "A contract, with its documents' records; its `ETag` is its version",
        "contracts",
        response=Contract,
    ),
    _op(
        "PATCH",
        "/v1/contracts/{contract}",
        update_contract,
        "updateContract",
        "Change a contract; its status moves draft → active → expired or terminated only (409 "
        "otherwise)",
        "contracts",
        body=ContractPatch,
        response=Contract,
        errors=_WRITE,
        headers=("if-match",),
    ),
    _op(
        "POST",
        "/v1/contracts/{contract}/documents",
        upload_document,
        "uploadContractDocument",
        "Store a document with a contract: the request body is its bytes, `Content-Type` its "
        "type, `?name=` its file name",
        "contracts",
        response=ContractDocument,
        status=201,
        query=(("name", "The document's file name (default: `document`)"),),
        errors=("400", "401", "403", "404", "409", "413", "503"),
        idempotent=True,
        extra={
            "requestBody": {
                "required": True,
                "description": "The document's bytes, of any type (its `Content-Type`)",
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            }
        },
    ),
    _op(
        "GET",
        "/v1/contracts/{contract}/documents/{document}",
        download_document,
        "downloadContractDocument",
        "A contract's document: its bytes, with the type it was stored with",
        "contracts",
        extra={
            "responses": _responses(
                200,
                "The document's bytes (`Content-Type` as stored; `ETag` its SHA-256)",
                {"*/*": {}},  # any bytes: OpenAPI 3.1 gives raw content no schema
                _DOWNLOAD_ERRORS,
            )
        },
    ),
    _op(
        "GET",
        "/v1/reports",
        list_reports,
        "listReports",
        "Project status reports, every one kept, newest first: of the projects the caller "
        "reads reports of",
        "reports",
        response=Report,
        paged=True,
        query=_PROJECT,
    ),
    _op(
        "POST",
        "/v1/reports",
        create_report,
        "createReport",
        "Report a project's status (report.manage on the project); it becomes the latest",
        "reports",
        body=ReportIn,
        response=Report,
        status=201,
        errors=_CREATE,
        idempotent=True,
    ),
    _op(
        "GET",
        "/v1/reports/latest",
        latest_reports,
        "latestReports",
        "The latest status report of each project the caller reads reports of",
        "reports",
        response=LatestReports,
        query=_PROJECT,
    ),
    _op(
        "GET",
        "/v1/reports/{report}",
        get_report,
        "getReport",
        "A status report",
        "reports",
        response=Report,
    ),
    _op(
        "GET",
        "/v1/session-logs",
        list_session_logs,
        "listSessionLogs",
        "The session logs the caller may see (by their visibility), newest first",
        "session-logs",
        response=SessionLog,
        paged=True,
        query=_PROJECT,
    ),
    _op(
        "POST",
        "/v1/session-logs",
        create_session_log,
        "createSessionLog",
        "Write a session log of a project (report.manage there); the caller is its author",
        "session-logs",
        body=SessionLogIn,
        response=SessionLog,
        status=201,
        errors=_CREATE,
        idempotent=True,
    ),
    _op(
        "GET",
        "/v1/session-logs/{log}",
        get_session_log,
        "getSessionLog",
        "A session log the caller may see (404 for any other)",
        "session-logs",
        response=SessionLog,
    ),
    _op(
        "GET",
        "/v1/executive-report",
        get_executive_report,
        "getExecutiveReport",
        "Contracts by status with totals per currency, projects by latest status, and per flow "
        "the executions, error rate and p95 latency in the window; CSV with `Accept: text/csv`",
        "reports",
        response=ExecutiveReport,
        query=(
            ("from", "Window start, inclusive: RFC 3339 time or date (default: `to` - 30 days)"),
            ("to", "Window end, exclusive: RFC 3339 time, or a date (to its end; default: today)"),
        ),
        extra={
            "responses": _responses(
                200,
                "The executive report",
                {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/ExecutiveReport"}
                    },
                    "text/csv": {"schema": {"type": "string"}},
                },
                _CSV_ERRORS,
            )
        },
    ),
    _op(
        "GET",
        "/v1/retention",
        get_retention,
        "getRetention",
        "The tenant's retention periods in days (null: kept forever); the defaults until set",
        "retention",
        response=RetentionSettings,
    ),
    _op(
        "PUT",
        "/v1/retention",
        put_retention,
        "putRetention",
        "Set the tenant's retention periods (retention.manage)",
        "retention",
        body=RetentionIn,
        response=RetentionSettings,
        errors=_WRITE,
        headers=("if-match",),
    ),
    _op(
        "POST",
        "/v1/retention/purge",
        purge,
        "purgeRetention",
        "Delete executions, traces, logs and session logs older than their periods now, unless "
        "a legal hold is active (then nothing); audited",
        "retention",
        response=PurgeResult,
        errors=("400", "401", "403", "404", "409"),
    ),
    _op(
        "GET",
        "/v1/legal-holds",
        list_legal_holds,
        "listLegalHolds",
        "The tenant's active legal holds, oldest first",
        "retention",
        response=LegalHold,
        paged=True,
    ),
    _op(
        "POST",
        "/v1/legal-holds",
        place_legal_hold,
        "placeLegalHold",
        "Place a legal hold: purges delete nothing until it is released",
        "retention",
        body=LegalHoldIn,
        response=LegalHold,
        status=201,
        errors=_CREATE,
        idempotent=True,
    ),
    _op(
        "DELETE",
        "/v1/legal-holds/{hold}",
        release_legal_hold,
        "releaseLegalHold",
        "Release a legal hold",
        "retention",
        status=204,
        errors=("400", "401", "403", "404", "409"),
    ),
]
