"""W3C trace context and correlation ids, without I/O."""

from __future__ import annotations

import re
import secrets
import uuid

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, parent span id) of a valid `traceparent` header, else None."""
    match = _TRACEPARENT.match((value or "").strip().lower())
    if not match or match.group(2) == "0" * 32 or match.group(3) == "0" * 16:
        return None
    return match.group(2), match.group(3)


def make_traceparent(trace_id: str, span_id: str | None = None) -> str:
    """A `traceparent` for a new span of `trace_id` (sampled)."""
    return f"00-{trace_id}-{span_id or new_span_id()}-01"
