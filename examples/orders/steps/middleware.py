"""API middleware shared by the orders API steps (not a step: no `_step.py` suffix)."""

import time
from datetime import UTC, datetime


async def timing(req, context, next_fn):
    """Stamps the request on the way in and the handler's duration on the way out."""
    req["headers"]["x-received-at"] = datetime.now(UTC).isoformat()
    started = time.perf_counter()
    response = await next_fn()
    elapsed_ms = (time.perf_counter() - started) * 1000
    headers = {**(response.get("headers") or {}), "x-response-time-ms": f"{elapsed_ms:.1f}"}
    return {**response, "headers": headers}


async def reject_blocked_key(req, context, next_fn):
    """A stand-in for real auth: no key is fine, the key "blocked" is refused."""
    if req["headers"].get("x-api-key") == "blocked":
        context.logger.warn("Refused a blocked API key", {"path": "/orders"})
        return {"status": 401, "body": {"error": "this API key is blocked"}}
    return await next_fn()
