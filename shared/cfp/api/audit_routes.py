"""Audit proof routes: verify a chain, its signed checkpoints, inclusion and consistency proofs,
and the offline-verifiable export. With `x-tenant-id` they act on the tenant's chain (auditor,
tenant admin); without it on the `system` chain (system admin, system-wide auditor). Thin:
the audit proof service does the work."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cfp.api.callers import TENANT_HEADER, caller, control, tenant_caller
from cfp.api.operations import Operation
from cfp.api.runtime_routes import no_body, page_args, read_json
from cfp.domain.audit import SYSTEM_CHAIN, tenant_chain
from cfp.domain.callers import Caller
from cfp.domain.rbac import AccessScope
from cfp.errors import BadRequest

# -- wire shapes -----------------------------------------------------------------------------


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_seq: int | None = Field(default=None, ge=0)
    to_seq: int | None = Field(default=None, ge=0)


class CheckpointOut(BaseModel):
    chain: str
    size: int
    root: str
    note: str
    origin: str
    key: dict[str, Any]
    head: dict[str, Any]
    created_at: str
    anchors: dict[str, str]
    timestamp_error: str | None = None


class VerifyOut(BaseModel):
    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str | None
    latest_checkpoint: CheckpointOut | None


class InclusionOut(BaseModel):
    chain: str
    seq: int
    leaf_index: int
    tree_size: int
    leaf_hash: str
    proof: list[str]
    root: str
    checkpoint: str | None


class ConsistencyOut(BaseModel):
    chain: str
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str]
    first_checkpoint: str | None
    second_checkpoint: str | None


class ExportOut(BaseModel):
    id: str
    chain: str
    size: int
    sha256: str
    records: int
    checkpoints: int
    created_at: str
    download: str


# -- helpers -----------------------------------------------------------------------------------

_WHOLE = re.compile(r"[0-9]{1,18}")  # ASCII digits only ('²' is a digit to str.isdigit)


async def audit_caller(request: Request, action: str) -> tuple[Caller, str]:
    """The caller and the chain it addresses: the tenant's with `x-tenant-id`, else `system`;
    `action` is checked on that tenant or on the system."""
    if request.headers.get(TENANT_HEADER):
        who, tenant = await tenant_caller(request)
        who.check(action, AccessScope.for_tenant(tenant))
        return who, tenant_chain(tenant)
    who = await caller(request)
    who.check(action, AccessScope.system())
    return who, SYSTEM_CHAIN


def int_param(request: Request, name: str, *, minimum: int = 0) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        raise BadRequest(
            f"query parameter {name} is required: a whole number ≥ {minimum}",
            details={"parameter": name},
        )
    if not _WHOLE.fullmatch(raw) or int(raw) < minimum:
        raise BadRequest(
            f"query parameter {name} must be a whole number ≥ {minimum}, not {raw!r}",
            details={"parameter": name, "value": raw},
        )
    return int(raw)


# -- handlers --------------------------------------------------------------------------------


async def verify(request: Request) -> JSONResponse:
    _, chain = await audit_caller(request, "audit.read")
    body = await read_json(request, VerifyIn) if await request.body() else VerifyIn()
    result = await control(request).proofs.verify(chain, from_seq=body.from_seq, to_seq=body.to_seq)
    return JSONResponse(VerifyOut(**result).model_dump(mode="json"))


async def list_checkpoints(request: Request) -> JSONResponse:
    _, chain = await audit_caller(request, "audit.read")
    limit, cursor = page_args(request)
    found, next_cursor = await control(request).checkpoints.list(chain, limit=limit, cursor=cursor)
    items = [CheckpointOut(**c.public()).model_dump(mode="json") for c in found]
    return JSONResponse({"items": items, "next_cursor": next_cursor})


async def inclusion(request: Request) -> JSONResponse:
    _, chain = await audit_caller(request, "audit.read")
    seq, size = int_param(request, "seq"), int_param(request, "tree_size", minimum=1)
    proof = await control(request).proofs.inclusion(chain, seq, size)
    return JSONResponse(InclusionOut(**proof).model_dump(mode="json"))


async def consistency(request: Request) -> JSONResponse:
    _, chain = await audit_caller(request, "audit.read")
    first = int_param(request, "first", minimum=1)
    second = int_param(request, "second", minimum=1)
    proof = await control(request).proofs.consistency(chain, first, second)
    return JSONResponse(ConsistencyOut(**proof).model_dump(mode="json"))


async def export(request: Request) -> Response:
    """The bundle itself (`application/zip`), or with `Accept: application/json` the stored
    artifact's record; either way it stays downloadable at `Location`."""
    who, chain = await audit_caller(request, "audit.export")
    await no_body(request)
    entry = who.entry("audit.export", "audit_chain", chain, chain)  # a chain names its scope
    proofs = control(request).proofs
    made = await proofs.export(chain, entry)
    if _wants_json(request.headers.get("accept", "")):
        response: Response = JSONResponse(
            ExportOut(**made.public()).model_dump(mode="json"), status_code=201
        )
    else:
        _, data = await proofs.get_export(chain, made.id)
        response = _bundle(made, data, status=201)
    response.headers["location"] = made.public()["download"]
    return response


async def download(request: Request) -> Response:
    _, chain = await audit_caller(request, "audit.export")
    made, data = await control(request).proofs.get_export(chain, request.path_params["export"])
    return _bundle(made, data)


def _bundle(made: Any, data: bytes, status: int = 200) -> Response:
    return Response(
        data,
        status_code=status,
        media_type="application/zip",
        headers={
            "content-disposition": f'attachment; filename="cfp-audit-{made.id}.zip"',
            "x-export-id": made.id,
            "x-content-sha256": made.sha256,
        },
    )


def _wants_json(accept: str) -> bool:
    """JSON only when asked for before (or instead of) the zip."""
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",") if part.strip()]
    for kind in kinds:
        if kind == "application/json":
            return True
        if kind in ("application/zip", "*/*", "application/*"):
            return False
    return False


# -- the operations ----------------------------------------------------------------------------

_ERRORS = ("400", "401", "403", "404", "421")
_ZIP = {"type": "string", "format": "binary"}
_CHAIN = (
    "With `x-tenant-id`, the tenant's chain (auditor, tenant admin); without it, the system "
    "chain (system admin, system-wide auditor)."
)


def _op(method: str, path: str, handler: Any, op_id: str, summary: str, **kw: Any) -> Operation:
    return Operation(
        method, path, handler, op_id, summary, "audit", extra={"description": _CHAIN}, **kw
    )


AUDIT_OPERATIONS: list[Operation] = [
    _op(
        "POST",
        "/v1/audit/verify",
        verify,
        "verifyAuditChain",
        "Verify the chain: hashes, signed checkpoints and their anchors",
        body=VerifyIn,
        response=VerifyOut,
        errors=(*_ERRORS, "422"),
    ),
    _op(
        "GET",
        "/v1/audit/checkpoints",
        list_checkpoints,
        "listAuditCheckpoints",
        "The chain's signed checkpoints, newest first",
        response=CheckpointOut,
        paged=True,
    ),
    _op(
        "GET",
        "/v1/audit/proofs/inclusion",
        inclusion,
        "getAuditInclusionProof",
        "An RFC 6962 inclusion proof of record `seq` in the tree of size `tree_size`",
        response=InclusionOut,
        query=(("seq", "The record's seq (its leaf index)"), ("tree_size", "The tree size")),
    ),
    _op(
        "GET",
        "/v1/audit/proofs/consistency",
        consistency,
        "getAuditConsistencyProof",
        "An RFC 6962 consistency proof between tree sizes `first` and `second`",
        response=ConsistencyOut,
        query=(("first", "The smaller tree size"), ("second", "The larger tree size")),
    ),
    _op(
        "POST",
        "/v1/audit/export",
        export,
        "exportAudit",
        "Export the chain as an offline-verifiable zip bundle (the export is audited): the "
        "zip, or its artifact record with `Accept: application/json`; `Location` downloads it",
        response=ExportOut,
        status=201,
        media={"application/zip": _ZIP},
    ),
    _op(
        "GET",
        "/v1/audit/exports/{export}",
        download,
        "downloadAuditExport",
        "Download an export bundle (application/zip)",
        media={"application/zip": _ZIP},
    ),
]
