"""Declared operations: each control-plane route is declared once, with its request and response
models, and becomes both a Starlette route and an operation of the OpenAPI 3.1 document served at
`/v1/openapi.json`. What a route declares is what it is checked against (schemathesis)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cfp.api.callers import TENANT_HEADER, caller, control
from cfp.api.errors import ErrorEnvelope
from cfp.services.idempotency import KEY_PATTERN, Reply, RequestKey

Handler = Callable[[Request], Awaitable[Response]]
Scope = Literal["public", "principal", "tenant", "system"]

ERRORS = {
    "400": "The request is malformed (a missing `x-tenant-id`, a bad parameter)",
    "401": "No, invalid or expired credentials",
    "403": "Not allowed (or the tenant is not one of the principal's)",
    "404": "Not found",
    "409": "Conflict (an `Idempotency-Key` reused with another body, a duplicate)",
    "412": "`If-Match` does not match the current `ETag`",
    "421": "The tenant lives in another region (`details.region`)",
    "422": "The body does not match its schema",
    "413": "The body is over the size limit",
    "429": "Too many attempts; `Retry-After` says when to try again",
    "503": "Not available now (a subscription not ready); try again",
}


_HEADER_DOCS: dict[str, dict[str, Any]] = {
    "Idempotency-Key": {
        "description": "Retry this create safely: per principal and route, kept 24 h, the same "
        "key and body get the first answer again (`Idempotent-Replayed: true`); another body "
        "is 409 `idempotency_key_reused`, a request still running with it 409 "
        "`idempotency_key_in_use`",
        "schema": {"type": "string", "pattern": KEY_PATTERN},
    }
}


@dataclass(frozen=True)
class Operation:
    """One route: method, path (Starlette syntax), the models it reads and answers."""

    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    scope: Scope = "tenant"
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    paged: bool = False  # the response is `{items: [response], next_cursor}`
    query: tuple[tuple[str, str], ...] = ()  # (name, description) of query parameters
    errors: tuple[str, ...] = ("400", "401", "403", "404")
    headers: tuple[str, ...] = ()  # request headers it reads: Idempotency-Key, If-Match
    extra: dict[str, Any] = field(default_factory=dict)
    idempotent: bool = False  # a create that honours `Idempotency-Key`
    # other media types of the success answer (by `Accept`), with their schemas
    media: dict[str, dict[str, Any]] = field(default_factory=dict)

    def route(self) -> Route:
        handler = idempotent(self.handler) if self.idempotent else self.handler
        return Route(self.path, handler, methods=[self.method])


IDEMPOTENCY_HEADER = "Idempotency-Key"
_REPLAYED_HEADERS = ("etag", "location")


def idempotent(handler: Handler) -> Handler:
    """`handler` under `Idempotency-Key` (per principal and route, kept 24 h): the same key and
    body get the first answer again, marked `Idempotent-Replayed: true`; another body, 409."""

    async def endpoint(request: Request) -> Response:
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return await handler(request)
        who = await caller(request)
        scope = RequestKey(
            who.principal_id,
            request.method,
            request.url.path,
            request.headers.get(TENANT_HEADER, "").strip() or None,
            key,
        )

        async def action() -> Reply:
            response = await handler(request)
            body = json.loads(response.body) if response.body else None
            kept = {h: response.headers[h] for h in _REPLAYED_HEADERS if h in response.headers}
            return Reply(response.status_code, body, kept)

        reply, replayed = await control(request).idempotency.run(
            scope, await request.body(), action
        )
        headers = {**reply.headers, **({"idempotent-replayed": "true"} if replayed else {})}
        if reply.body is None:
            return Response(status_code=reply.status, headers=headers)
        return JSONResponse(reply.body, status_code=reply.status, headers=headers)

    return endpoint


def openapi_document(operations: list[Operation], *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `operations`, with every model under components/schemas."""
    schemas: dict[str, Any] = {}

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
        schemas.setdefault(model.__name__, schema)
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    error_ref = ref(ErrorEnvelope)
    paths: dict[str, Any] = {}
    for op in operations:
        template = op.path
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", template)
        ]
        if op.scope == "tenant":
            params.append(
                {
                    "name": "x-tenant-id",
                    "in": "header",
                    "required": True,
                    "description": "The tenant the request acts in",
                    "schema": {"type": "string", "minLength": 1},
                }
            )
        for name in (*op.headers, *((IDEMPOTENCY_HEADER,) if op.idempotent else ())):
            params.append(
                {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
                | _HEADER_DOCS.get(name, {})
            )
        for name, description in op.query:
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "description": description,
                    "schema": {"type": "string"},
                }
            )
        if op.paged:
            params += [
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                },
                {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
            ]
        success: dict[str, Any] = {"description": op.summary}
        if op.response is not None:
            body_schema = ref(op.response)
            if op.paged:
                body_schema = {
                    "type": "object",
                    "required": ["items", "next_cursor"],
                    "properties": {
                        "items": {"type": "array", "items": body_schema},
                        "next_cursor": {"type": ["string", "null"]},
                    },
                }
            success["content"] = {"application/json": {"schema": body_schema}}
        if op.media:
            success.setdefault("content", {}).update(
                {kind: {"schema": schema} for kind, schema in op.media.items()}
            )
        responses: dict[str, Any] = {str(op.status): success}
        for code in op.errors:
            responses[code] = {
                "description": ERRORS[code],
                "content": {"application/json": {"schema": error_ref}},
            }
        operation: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": params,
            "responses": responses,
        }
        if op.scope == "public":
            operation["security"] = []
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(op.body)}},
            }
        operation.update(op.extra)
        paths.setdefault(template, {})[op.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An access token (JWT) from /v1/auth/signin, or a service "
                    "account's API key `cfp_sk_…`",
                }
            },
        },
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
    }
