"""The one error envelope: `{"error": {"code", "message", "details", "correlation_id"}}`."""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from cfp.errors import CfpError
from cfp.services.observability import correlation_var


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None
    correlation_id: str | None = None


class ErrorEnvelope(BaseModel):
    error: ErrorBody


def envelope(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body = ErrorEnvelope(
        error=ErrorBody(
            code=code, message=message, details=details, correlation_id=correlation_var.get()
        )
    )
    return JSONResponse(json.loads(body.model_dump_json()), status_code=status)


async def cfp_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CfpError)
    response = envelope(exc.status, exc.code, exc.message, exc.details)
    retry_after = exc.details.get("retry_after") if isinstance(exc.details, dict) else None
    if exc.status == 429 and retry_after is not None:
        response.headers["retry-after"] = str(max(1, math.ceil(float(retry_after))))
    return response


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
    return envelope(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    return envelope(500, "internal", f"internal error: {type(exc).__name__}")


HANDLERS = {CfpError: cfp_error, HTTPException: http_error, Exception: unexpected}
