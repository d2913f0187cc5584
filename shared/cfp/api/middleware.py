"""Pure ASGI middleware: correlation and trace ids on every request, and the body size limit."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cfp.api.errors import unexpected
from cfp.domain.tracing import make_traceparent, new_correlation_id, new_trace_id, parse_traceparent
from cfp.services.observability import correlation_var, trace_var

CORRELATION = b"x-correlation-id"
TRACEPARENT = b"traceparent"


class RequestIds:
    """Keep or assign `x-correlation-id` and `traceparent`; echo both; bind them to the context."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        correlation = headers.get(CORRELATION, b"").decode("latin-1").strip()[:128]
        if not correlation:
            correlation = new_correlation_id()
        parsed = parse_traceparent(headers.get(TRACEPARENT, b"").decode("latin-1"))
        trace_id = parsed[0] if parsed else new_trace_id()
        traceparent = (
            headers.get(TRACEPARENT, b"").decode("latin-1").strip().lower()
            if parsed
            else make_traceparent(trace_id)
        )
        scope.setdefault("state", {})
        scope["state"]["correlation_id"] = correlation
        scope["state"]["trace_id"] = trace_id
        scope["state"]["traceparent"] = traceparent
        tokens = correlation_var.set(correlation), trace_var.set(trace_id)
        started = False

        async def send_with_ids(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                raw = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (CORRELATION, TRACEPARENT)
                ]
                raw += [
                    (CORRELATION, correlation.encode("latin-1")),
                    (TRACEPARENT, traceparent.encode("latin-1")),
                ]
                message = {**message, "headers": raw}
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
        except Exception as exc:
            # Starlette answers unexpected errors outside every middleware, where these ids are
            # gone; answer here with them, and let the error go on to the server's log
            if scope["type"] == "http" and not started:
                response = await unexpected(Request(scope, receive), exc)
                await response(scope, receive, send_with_ids)
            raise
        finally:
            correlation_var.reset(tokens[0])
            trace_var.reset(tokens[1])


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._refuse(scope, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except BodyTooLarge:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        state = scope.get("state") or {}
        body = json.dumps(
            {
                "error": {
                    "code": "payload_too_large",
                    "message": f"request body is larger than the limit of {self.limit} bytes",
                    "details": {"limit": self.limit},
                    "correlation_id": state.get("correlation_id"),
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    pass
