"""The websocket at R/ws: stream joins (sync, then create/update/delete), item joins, leave,
canAccess, ephemeral events and the log tail; and the hub behind it under a slow subscriber.

"Nothing arrived" is shown with a barrier: after the write that must not be seen has committed,
a further join is sent, and its sync must be the next message on the socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from cfp.services.context import StreamChange
from cfp.services.streams import StreamHub, Subscriber
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.api.conftest import R, ok_json, wait_for

pytestmark = pytest.mark.api


@contextlib.contextmanager
def connect(client, path: str) -> Iterator[Any]:
    """A websocket that has authenticated with the client's credential, its first message."""
    with client.websocket_connect(path) as ws:
        token = client.headers["authorization"].split(" ", 1)[1]
        ws.send_json({"type": "auth", "token": token})
        assert ws.receive_json()["type"] == "auth"
        yield ws


def receive(ws: Any, within: float = 5.0) -> dict[str, Any]:
    """The next message, failing after `within` seconds instead of blocking the run."""

    async def next_message() -> Any:
        with anyio.fail_after(within):
            return await ws._send_rx.receive()

    message = ws.portal.call(next_message)
    assert message["type"] == "websocket.send", message
    return json.loads(message["text"])


def join(ws: Any, sub: str, stream: str, group: str, item: str | None = None) -> None:
    data = {"subscriptionId": sub, "streamName": stream, "groupId": group}
    if item is not None:
        data["id"] = item
    ws.send_json({"type": "join", "data": data})


def board(client: TestClient, op: str, group: str, item: str | None = None, **rest: Any) -> None:
    """Have the Board step write the stream, and wait until the write is visible over HTTP."""
    data = {"op": op, "group": group, "id": item, **rest}
    ok_json(client.post(f"{R}/events", json={"topic": "board.op", "data": data}), 202)
    stream = rest.get("stream", "board")
    if op in ("set", "delete"):
        url = f"{R}/streams/{stream}/{group}/{item}"
        wait_for(lambda: (client.get(url).status_code == 200) == (op == "set"))


def barrier(ws: Any, group: str = "barrier") -> None:
    """Join an empty group and require its sync to be the very next message."""
    join(ws, "barrier", "board", group)
    assert receive(ws) == {
        "streamName": "board",
        "groupId": group,
        "subscriptionId": "barrier",
        "event": {"type": "sync", "data": []},
    }


def test_join_syncs_then_streams_create_update_delete(serve):
    client = serve()
    board(client, "set", "g1", "i1", value={"text": "one"})
    with connect(client, f"{R}/ws") as ws:
        join(ws, "s1", "board", "g1")
        assert receive(ws) == {
            "streamName": "board",
            "groupId": "g1",
            "subscriptionId": "s1",
            "event": {"type": "sync", "data": [{"text": "one", "id": "i1"}]},
        }
        board(client, "set", "other", "x", value={"text": "elsewhere"})  # another group: unseen
        board(client, "set", "g1", "i2", value={"text": "two"})
        created = receive(ws)
        assert (created["streamName"], created["groupId"]) == ("board", "g1")
        assert created["event"] == {"type": "create", "data": {"text": "two", "id": "i2"}}
        assert isinstance(created["timestamp"], int)
        board(client, "set", "g1", "i1", value={"text": "uno"})
        assert receive(ws)["event"] == {"type": "update", "data": {"text": "uno", "id": "i1"}}
        board(client, "delete", "g1", "i2")
        assert receive(ws)["event"] == {"type": "delete", "data": {"text": "two", "id": "i2"}}


def test_item_join_gets_only_that_items_events(serve):
    client = serve()
    board(client, "set", "g1", "i1", value={"text": "one"})
    with connect(client, f"{R}/ws") as ws:
        join(ws, "s1", "board", "g1", "i1")
        assert receive(ws) == {
            "streamName": "board",
            "groupId": "g1",
            "subscriptionId": "s1",
            "id": "i1",
            "event": {"type": "sync", "data": {"text": "one", "id": "i1"}},
        }
        board(client, "set", "g1", "i2", value={"text": "two"})  # a sibling item: unseen
        board(client, "set", "g1", "i1", value={"text": "uno"})
        update = receive(ws)
        assert update["id"] == "i1"
        assert update["event"] == {"type": "update", "data": {"text": "uno", "id": "i1"}}
        join(ws, "s2", "board", "g1", "absent")
        assert receive(ws)["event"] == {"type": "sync", "data": None}


def test_leave_stops_events(serve):
    client = serve()
    with connect(client, f"{R}/ws") as ws:
        join(ws, "s1", "board", "g1")
        assert receive(ws)["event"] == {"type": "sync", "data": []}
        board(client, "set", "g1", "i1", value={"text": "seen"})
        assert receive(ws)["event"]["type"] == "create"
        ws.send_json(
            {
                "type": "leave",
                "data": {"subscriptionId": "s1", "streamName": "board", "groupId": "g1"},
            }
        )
        board(client, "set", "g1", "i2", value={"text": "unseen"})
        barrier(ws)


def test_sync_can_access_refusal(serve):
    client = serve()
    with connect(client, f"{R}/ws") as ws:
        join(ws, "s1", "board", "private")
        refused = receive(ws)
        assert refused["type"] == "error" and refused["subscriptionId"] == "s1"
        assert (refused["streamName"], refused["groupId"]) == ("board", "private")
        assert refused["error"]["code"] == "forbidden"
        board(client, "set", "private", "i1", value={"text": "secret"})
        barrier(ws)


def test_async_can_access_sees_the_connection_auth(serve):
    client = serve()
    with connect(client, f"{R}/ws") as ws:
        join(ws, "v1", "vault", "g1")
        assert receive(ws)["error"]["code"] == "forbidden"
        board(client, "set", "g1", "i1", stream="vault", value={"text": "secret"})
        barrier(ws)
    with connect(client, f"{R}/ws?token=letmein") as ws:
        join(ws, "v1", "vault", "g1")
        sync = receive(ws)
        assert sync["event"] == {"type": "sync", "data": [{"text": "secret", "id": "i1"}]}


def test_can_access_that_raises_fails_the_join_not_the_connection(serve):
    client = serve()
    with connect(client, f"{R}/ws?token=explode") as ws:
        join(ws, "b1", "board", "g1")
        assert receive(ws)["event"]["type"] == "sync"
        join(ws, "v1", "vault", "g1")
        failed = receive(ws)
        assert failed["type"] == "error" and failed["error"]["code"] == "internal"
        assert "token service unavailable" in failed["error"]["message"]
        board(client, "set", "g1", "i1", value={"text": "still subscribed"})
        update = receive(ws)
        assert update["groupId"] == "g1" and update["event"]["type"] == "create"


def test_bad_joins_and_messages_answer_errors(serve):
    client = serve()
    with connect(client, f"{R}/ws") as ws:
        join(ws, "s1", "nope", "g1")
        unknown = receive(ws)
        assert unknown["type"] == "error" and unknown["error"]["code"] == "not_found"
        assert "nope" in unknown["error"]["message"]
        ws.send_json({"type": "join", "data": {"subscriptionId": "s", "streamName": "board"}})
        assert receive(ws)["error"]["code"] == "bad_request"
        ws.send_text("not json")
        assert receive(ws)["error"]["code"] == "bad_request"
        ws.send_json({"type": "dance", "data": {}})
        assert "dance" in receive(ws)["error"]["message"]
        barrier(ws)  # the socket is still usable


def test_wrong_project_closes_the_socket(serve):
    client = serve()
    with pytest.raises(WebSocketDisconnect) as info:
        with client.websocket_connect("/v1/projects/other/envs/dev/ws"):
            pass
    assert info.value.code == 4404


def test_ephemeral_send_reaches_group_subscribers(serve):
    client = serve()
    with connect(client, f"{R}/ws") as ws:
        join(ws, "s1", "board", "g1")
        receive(ws)
        board(client, "send", "g1", type="ping", value={"n": 1})
        message = receive(ws)
        assert (message["streamName"], message["groupId"]) == ("board", "g1")
        assert message["event"] == {"type": "event", "event": {"type": "ping", "data": {"n": 1}}}
    assert ok_json(client.get(f"{R}/streams/board/g1"))["items"] == []  # nothing stored


def test_log_tail_receives_matching_lines(serve):
    client = serve()
    with connect(client, f"{R}/ws") as ws:
        ws.send_json({"type": "tail", "data": {"subscriptionId": "t", "step": "Echo"}})
        assert receive(ws) == {
            "streamName": "__logs",
            "subscriptionId": "t",
            "event": {"type": "sync", "data": []},
        }
        board(client, "set", "g1", "i1", value={"text": "x"})  # Board logs: not Echo's
        trace = ok_json(client.post("/echo/thing/a1", json={}))["trace_id"]
        line = receive(ws)
        assert line["subscriptionId"] == "t" and line["event"]["type"] == "log"
        assert line["event"]["data"]["msg"] == "echoing"
        assert line["event"]["data"]["step"] == "Echo"
        assert line["event"]["data"]["trace_id"] == trace
        # Record logs "recorded" for the same trace: filtered out, as the barrier shows
        wait_for(lambda: client.get(f"{R}/state/counts/a1").status_code == 200)
        ws.send_json({"type": "untail", "data": {"subscriptionId": "t"}})
        client.post("/echo/thing/a2", json={})
        barrier(ws)


async def test_full_subscriber_drops_oldest_and_never_blocks_others():
    hub = StreamHub()
    slow = Subscriber(queue=asyncio.Queue(maxsize=3))
    fast = Subscriber()
    hub.join(slow, "board", "g1", None)
    hub.join(fast, "board", "g1", None)
    received: list[int] = []

    async def drain() -> None:
        while len(received) < 10:
            received.append((await fast.queue.get())["event"]["data"]["n"])

    drainer = asyncio.create_task(drain())
    for n in range(10):
        hub.send(StreamChange("board", "g1", str(n), {"type": "create", "data": {"n": n}}))
        await asyncio.sleep(0)  # the fast reader keeps up; the slow one never reads
    await asyncio.wait_for(drainer, timeout=5)
    assert received == list(range(10))
    kept = [slow.queue.get_nowait()["event"]["data"]["n"] for _ in range(slow.queue.qsize())]
    assert kept == [7, 8, 9] and slow.dropped == 7 and fast.dropped == 0
    hub.leave_all(slow)
    hub.send(StreamChange("board", "g1", "10", {"type": "create", "data": {"n": 10}}))
    assert slow.queue.empty() and fast.queue.qsize() == 1
    assert hub.subscriber_count() == 1
