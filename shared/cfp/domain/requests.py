"""Motia's `req` dict for api steps, built the same way by every HTTP entry point."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from cfp.errors import BadRequest


def motia_request(
    raw: bytes,
    *,
    content_type: str | None,
    headers: Iterable[tuple[str, str]],
    path_params: dict[str, str],
    query: Iterable[tuple[str, str]],
) -> dict[str, Any]:
    """`{body, headers, pathParams, queryParams, rawBody}`: JSON bodies parsed (400 when
    malformed), header names lower-case, a repeated query key as a list of its values."""
    body: Any = None
    if raw:
        if "json" in (content_type or "application/json"):
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise BadRequest(f"request body is not valid JSON: {exc}") from None
        else:
            body = raw.decode("utf-8", errors="replace")
    params: dict[str, Any] = {}
    for key, value in query:
        if key not in params:
            params[key] = value
        elif isinstance(params[key], list):
            params[key].append(value)
        else:
            params[key] = [params[key], value]
    return {
        "body": body,
        "headers": {k.lower(): v for k, v in headers},
        "pathParams": dict(path_params),
        "queryParams": params,
        "rawBody": raw.decode("utf-8", errors="replace"),
    }
