"""The websocket at `R/ws`: join and leave stream groups or items (classic Motia's stream client
messages), and tail logs. Each connection has a bounded inbox (see `StreamHub`)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from cfp.app import Platform
from cfp.domain.callers import Caller
from cfp.errors import CfpError, NotFound
from cfp.services.streams import Subscriber


async def _allowed(platform: Platform, stream: str, sub: dict[str, Any], auth: Any) -> bool:
    definition = platform.project.streams[stream]
    if definition.can_access is None:
        return True
    verdict = definition.can_access(sub, auth)
    if inspect.isawaitable(verdict):
        verdict = await verdict
    return bool(verdict)


async def _snapshot(platform: Platform, stream: str, group: str, item: str | None) -> Any:
    scope = platform.scope
    if item is not None:
        return await platform.documents.get(scope.stream_item(stream, group, item))
    items, cursor = [], None
    while True:
        page = await platform.documents.list(
            scope.stream_items(stream, group), limit=500, cursor=cursor
        )
        items += [{k: v for k, v in d.items() if k != "_id"} for d in page.items]
        cursor = page.next_cursor
        if not cursor:
            return items


async def stream_socket(websocket: WebSocket) -> None:
    platform: Platform = websocket.app.state.platform
    params = websocket.path_params
    if params.get("project") != platform.project.slug or params.get("env") != platform.scope.env:
        await websocket.close(code=4404)
        return
    await websocket.accept()
    caller = await _authenticate(platform, websocket)
    if caller is None:
        return
    subscriber = Subscriber()
    auth = {
        "principal": {"id": caller.principal_id, "kind": caller.kind, "email": caller.email},
        "headers": {
            k.lower(): v for k, v in websocket.headers.items() if k.lower() != "authorization"
        },
        "query": dict(websocket.query_params),
    }
    untails: dict[str, Any] = {}

    async def pump() -> None:
        while True:
            message = await subscriber.queue.get()
            await websocket.send_text(json.dumps(message, default=str))

    sender = asyncio.create_task(pump())
    try:
        while True:
            try:
                message = json.loads(await websocket.receive_text())
            except ValueError:
                subscriber.offer(
                    {
                        "type": "error",
                        "error": {"code": "bad_request", "message": "messages are JSON objects"},
                    }
                )
                continue
            try:
                await _handle(platform, subscriber, message, auth, untails)
            except CfpError as exc:
                subscriber.offer(
                    {
                        "type": "error",
                        "error": {"code": exc.code, "message": exc.message, "details": exc.details},
                    }
                )
            except Exception as exc:  # e.g. a project's canAccess raised: this message fails,
                # the connection and its other subscriptions stay
                platform.logbook.log(
                    "error",
                    f"websocket message failed: {type(exc).__name__}: {exc}",
                    {"ws_message": message},
                )
                subscriber.offer(
                    {
                        "type": "error",
                        "error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}"},
                    }
                )
    except WebSocketDisconnect:
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        platform.hub.leave_all(subscriber)
        for untail in untails.values():
            untail()


AUTH_TIMEOUT = 10.0  # seconds a new connection has to authenticate


async def _authenticate(platform: Platform, websocket: WebSocket) -> Caller | None:
    """The first message must be `{"type": "auth", "token": …}` naming a principal that may
    read this project's streams; anything else, or nothing in time, closes the connection."""

    async def refuse(code: str, message: str, close: int) -> None:
        await websocket.send_text(
            json.dumps({"type": "error", "error": {"code": code, "message": message}})
        )
        await websocket.close(code=close)

    try:
        async with asyncio.timeout(AUTH_TIMEOUT):
            raw = await websocket.receive_text()
    except TimeoutError:
        await refuse("unauthorized", 'authenticate first: {"type": "auth", "token": …}', 4401)
        return None
    except WebSocketDisconnect:
        return None
    try:
        message = json.loads(raw)
    except ValueError:
        message = None
    if not isinstance(message, dict) or message.get("type") != "auth":
        await refuse("unauthorized", 'the first message must be {"type": "auth", "token": …}', 4401)
        return None
    token = message.get("token")
    if not isinstance(token, str) or not token:
        await refuse("unauthorized", "auth needs a `token`: an access token or API key", 4401)
        return None
    scope = platform.scope
    try:
        caller = await platform.control.authenticate(
            token,
            client_address=websocket.client.host if websocket.client else None,
            user_agent=websocket.headers.get("user-agent"),
        )
        await platform.control.authorize_project(caller, scope.tenant, scope.project, "state.read")
    except CfpError as exc:
        await refuse(exc.code, exc.message, 4401 if exc.status == 401 else 4403)
        return None
    await websocket.send_text(
        json.dumps({"type": "auth", "ok": True, "principal": caller.principal_id})
    )
    return caller


async def _handle(
    platform: Platform, subscriber: Subscriber, message: Any, auth: Any, untails: dict[str, Any]
) -> None:
    if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
        raise CfpError("messages are {'type': ..., 'data': {...}}", code="bad_request")
    kind, data = message.get("type"), message["data"]
    sub_id = str(data.get("subscriptionId") or "")
    if kind in ("join", "leave"):
        stream, group = data.get("streamName"), data.get("groupId")
        if stream not in platform.project.streams:
            raise NotFound(f"no stream named {stream!r}")
        if not isinstance(group, str) or not group:
            raise CfpError("join needs a groupId string", code="bad_request")
        item = data.get("id")
        item = None if item is None else str(item)
        if kind == "leave":
            platform.hub.leave(subscriber, stream, group, item)
            return
        if not await _allowed(platform, stream, {"groupId": group, "id": item}, auth):
            subscriber.offer(
                {
                    "type": "error",
                    "subscriptionId": sub_id,
                    "streamName": stream,
                    "groupId": group,
                    "id": item,
                    "error": {"code": "forbidden", "message": "canAccess refused this join"},
                }
            )
            return
        platform.hub.join(subscriber, stream, group, item)
        snapshot = await _snapshot(platform, stream, group, item)
        reply = {
            "streamName": stream,
            "groupId": group,
            "subscriptionId": sub_id,
            "event": {"type": "sync", "data": snapshot},
        }
        if item is not None:
            reply["id"] = item
        subscriber.offer(reply)
    elif kind == "tail":
        filters = {k: data[k] for k in ("level", "step", "trace_id") if data.get(k)}

        def listener(line: dict[str, Any]) -> None:
            if all(line.get(k) == v for k, v in filters.items()):
                subscriber.offer(
                    {
                        "streamName": "__logs",
                        "subscriptionId": sub_id,
                        "event": {"type": "log", "data": line},
                    }
                )

        if sub_id in untails:
            untails.pop(sub_id)()
        untails[sub_id] = platform.logbook.tail(listener)
        subscriber.offer(
            {
                "streamName": "__logs",
                "subscriptionId": sub_id,
                "event": {"type": "sync", "data": []},
            }
        )
    elif kind == "untail":
        if sub_id in untails:
            untails.pop(sub_id)()
    else:
        raise CfpError(
            f"unknown message type {kind!r}; use join, leave, tail or untail", code="bad_request"
        )
