"""What a handler receives as `context`: emit, state, streams, logger and ids.

Every effect is buffered in a `Transaction` and committed by the runtime at the end of a
successful attempt, once per (step, event id); reads see the attempt's own buffered writes."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cfp.domain.documents import (
    ABSENT,
    CompareAndSet,
    DeleteCollection,
    DeleteDoc,
    Increment,
    MergeDoc,
    SetDoc,
    Write,
    raw_id,
)
from cfp.domain.events import Event
from cfp.domain.paths import Scope
from cfp.errors import BadRequest, EmitRefused, NotFound
from cfp.ports import DocumentStore
from cfp.services.observability import StepLogger

_DELETED: Any = object()


def plain(value: Any) -> Any:
    """JSON-ready data from what a handler passes (pydantic models, objects with __dict__)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


@dataclass(slots=True)
class StreamChange:
    """A stream write to announce to subscribers once its transaction committed."""

    stream: str
    group: str
    item_id: str | None
    event: dict[str, Any]


@dataclass(slots=True)
class Transaction:
    """The buffered effects of one attempt."""

    writes: list[Write] = field(default_factory=list)
    emits: list[Event] = field(default_factory=list)
    changes: list[StreamChange] = field(default_factory=list)
    overlay: dict[str, Any] = field(default_factory=dict)
    cleared: set[str] = field(default_factory=set)
    touched_groups: set[str] = field(default_factory=set)

    def buffered(self, path: str) -> Any:
        """The doc this attempt wrote at path, `_DELETED`, or ABSENT if it did not touch it."""
        if path in self.overlay:
            return self.overlay[path]
        collection = path.rpartition("/")[0]
        return _DELETED if collection in self.cleared else ABSENT

    def put(self, path: str, doc: Any) -> None:
        self.overlay[path] = doc


async def _read(documents: DocumentStore, txn: Transaction, path: str) -> dict[str, Any] | None:
    doc = txn.buffered(path)
    if doc is _DELETED:
        return None
    if doc is not ABSENT:
        return doc
    return await documents.get(path)


async def _read_collection(
    documents: DocumentStore, txn: Transaction, collection: str
) -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    if collection not in txn.cleared:
        cursor = None
        while True:
            page = await documents.list(collection, limit=500, cursor=cursor)
            for item in page.items:
                ident = item.pop("_id")
                docs[ident] = item
            cursor = page.next_cursor
            if not cursor:
                break
    prefix = collection + "/"
    for path, doc in txn.overlay.items():
        if path.startswith(prefix) and "/" not in path[len(prefix) :]:
            ident = path[len(prefix) :]
            if doc is _DELETED:
                docs.pop(ident, None)
            else:
                docs[ident] = doc
    return docs


class State:
    """`context.state`: groups of keys holding JSON values, plus atomic updates."""

    def __init__(self, documents: DocumentStore, scope: Scope, txn: Transaction) -> None:
        self._documents = documents
        self._scope = scope
        self._txn = txn

    def _mark_group(self, group: str) -> None:
        if group not in self._txn.touched_groups:
            self._txn.touched_groups.add(group)
            self._txn.writes.append(SetDoc(self._scope.state_group(group), {"name": group}))

    async def get(self, group: str, key: str) -> Any:
        """The value as stored (not wrapped), or None."""
        doc = await _read(self._documents, self._txn, self._scope.state_item(group, key))
        return None if doc is None else copy.deepcopy(doc.get("value"))

    async def set(self, group: str, key: str, value: Any) -> Any:
        value = plain(value)
        path = self._scope.state_item(group, key)
        self._mark_group(group)
        self._txn.writes.append(SetDoc(path, {"value": value}))
        self._txn.put(path, {"value": copy.deepcopy(value)})
        return value

    async def delete(self, group: str, key: str) -> Any:
        previous = await self.get(group, key)
        path = self._scope.state_item(group, key)
        self._txn.writes.append(DeleteDoc(path))
        self._txn.put(path, _DELETED)
        return previous

    async def clear(self, group: str) -> None:
        collection = self._scope.state_items(group)
        self._txn.writes.append(DeleteCollection(collection))
        self._txn.writes.append(DeleteDoc(self._scope.state_group(group)))
        self._txn.touched_groups.discard(group)
        self._txn.cleared.add(collection)
        for path in [p for p in self._txn.overlay if p.startswith(collection + "/")]:
            del self._txn.overlay[path]

    async def get_group(self, group: str) -> list[Any]:
        """Every value in the group, ordered by key."""
        docs = await _read_collection(self._documents, self._txn, self._scope.state_items(group))
        return [copy.deepcopy(docs[k].get("value")) for k in sorted(docs, key=raw_id)]

    getGroup = get_group

    async def increment(self, group: str, key: str, by: int | float = 1) -> int | float:
        """Add `by` atomically (applied at commit); returns the value as this attempt sees it."""
        if not isinstance(by, int | float) or isinstance(by, bool):
            raise BadRequest(f"state.increment: 'by' must be a number, got {by!r}")
        current = await self.get(group, key)
        if current is None:
            current = 0
        if not isinstance(current, int | float) or isinstance(current, bool):
            raise BadRequest(f"state.increment: {group}/{key} holds {type(current).__name__}")
        path = self._scope.state_item(group, key)
        self._mark_group(group)
        self._txn.writes.append(Increment(path, by))
        self._txn.put(path, {"value": current + by})
        return current + by

    async def merge(self, group: str, key: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Shallow-merge `patch` into a dict value atomically (applied at commit)."""
        if not isinstance(patch, dict):
            raise BadRequest(f"state.merge: patch must be a dict, got {type(patch).__name__}")
        patch = plain(patch)
        current = await self.get(group, key)
        merged = {**(current if isinstance(current, dict) else {}), **patch}
        path = self._scope.state_item(group, key)
        self._mark_group(group)
        self._txn.writes.append(MergeDoc(path, patch))
        self._txn.put(path, {"value": copy.deepcopy(merged)})
        return merged

    async def compare_and_set(self, group: str, key: str, expected: Any, value: Any) -> bool:
        """Set `value` only if the key holds `expected` (None: absent); re-checked at commit."""
        path = self._scope.state_item(group, key)
        doc = await _read(self._documents, self._txn, path)
        current = None if doc is None else doc.get("value")
        if plain(expected) != current:
            return False
        value = plain(value)
        self._mark_group(group)
        self._txn.writes.append(
            CompareAndSet(path, ABSENT if doc is None else current, {"value": value})
        )
        self._txn.put(path, {"value": copy.deepcopy(value)})
        return True


Validate = Callable[[str, Any, str], Awaitable[None]]


class Stream:
    """`context.streams.<name>`: items by group and id, persisted and pushed to subscribers."""

    def __init__(
        self,
        name: str,
        documents: DocumentStore,
        scope: Scope,
        txn: Transaction,
        validate: Validate,
        send_now: Callable[[StreamChange], None],
    ) -> None:
        self.name = name
        self._documents = documents
        self._scope = scope
        self._txn = txn
        self._validate = validate
        self._send_now = send_now

    async def get(self, group_id: str, item_id: str) -> dict[str, Any] | None:
        doc = await _read(
            self._documents, self._txn, self._scope.stream_item(self.name, group_id, item_id)
        )
        return copy.deepcopy(doc)

    async def set(self, group_id: str, item_id: str, data: Any) -> dict[str, Any]:
        data = plain(data)
        await self._validate(f"stream {self.name}", data, "stream")
        path = self._scope.stream_item(self.name, group_id, item_id)
        existed = await _read(self._documents, self._txn, path) is not None
        item = {**data, "id": item_id} if isinstance(data, dict) else {"id": item_id, "data": data}
        self._txn.writes.append(SetDoc(path, item))
        self._txn.put(path, copy.deepcopy(item))
        kind = "update" if existed else "create"
        self._txn.changes.append(
            StreamChange(self.name, group_id, item_id, {"type": kind, "data": item})
        )
        return item

    async def delete(self, group_id: str, item_id: str) -> dict[str, Any] | None:
        path = self._scope.stream_item(self.name, group_id, item_id)
        previous = await _read(self._documents, self._txn, path)
        self._txn.writes.append(DeleteDoc(path))
        self._txn.put(path, _DELETED)
        self._txn.changes.append(
            StreamChange(self.name, group_id, item_id, {"type": "delete", "data": previous})
        )
        return previous

    async def get_group(self, group_id: str) -> list[dict[str, Any]]:
        docs = await _read_collection(
            self._documents, self._txn, self._scope.stream_items(self.name, group_id)
        )
        return [copy.deepcopy(docs[k]) for k in sorted(docs, key=raw_id)]

    getGroup = get_group

    async def send(self, channel: dict[str, Any], event: dict[str, Any]) -> None:
        """An ephemeral event to a group's (or one item's) subscribers; nothing is stored."""
        if not isinstance(channel, dict) or "groupId" not in channel:
            raise BadRequest("streams.send: channel must be {'groupId': ..., 'id'?: ...}")
        if not isinstance(event, dict) or "type" not in event:
            raise BadRequest("streams.send: event must be {'type': ..., 'data': ...}")
        self._send_now(
            StreamChange(
                self.name,
                str(channel["groupId"]),
                channel.get("id"),
                {
                    "type": "event",
                    "event": {"type": event["type"], "data": plain(event.get("data"))},
                },
            )
        )


class Streams:
    """`context.streams`: attribute and item access by stream name."""

    def __init__(self, factory: Callable[[str], Stream], names: set[str]) -> None:
        self._factory = factory
        self._names = names
        self._open: dict[str, Stream] = {}

    def __getitem__(self, name: str) -> Stream:
        if name not in self._names:
            raise NotFound(f"no stream named {name!r}; known: {sorted(self._names)}")
        if name not in self._open:
            self._open[name] = self._factory(name)
        return self._open[name]

    def __getattr__(self, name: str) -> Stream:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except NotFound as exc:
            raise AttributeError(exc.message) from None

    def __contains__(self, name: str) -> bool:
        return name in self._names


class FlowContext:
    """The `context` argument of every handler."""

    def __init__(
        self,
        *,
        step: str,
        trace_id: str,
        flows: list[str],
        emit: Callable[[dict[str, Any]], Awaitable[None]],
        state: State,
        streams: Streams,
        logger: StepLogger,
        correlation_id: str,
        traceparent: str,
        auth_context: Any = None,
    ) -> None:
        self.step = step
        self.trace_id = trace_id
        self.traceId = trace_id
        self.flows = flows
        self.state = state
        self.streams = streams
        self.logger = logger
        self.correlation_id = correlation_id
        self.traceparent = traceparent
        self.auth_context = auth_context
        self._emit = emit

    async def emit(self, event: dict[str, Any]) -> None:
        """Emit `{"topic", "data", "messageGroupId"?}`; delivered once this attempt commits."""
        await self._emit(event)


def check_emit(event: Any, allowed: set[str], step: str) -> tuple[str, Any, str | None]:
    """The topic, data and group of an emit call, or BadRequest/EmitRefused saying why not."""
    if not isinstance(event, dict) or not isinstance(event.get("topic"), str):
        raise BadRequest(f"step {step}: emit takes {{'topic': str, 'data': ...}}, got {event!r}")
    unknown = set(event) - {"topic", "data", "messageGroupId"}
    if unknown:
        raise BadRequest(f"step {step}: emit got unknown keys {sorted(unknown)}")
    topic = event["topic"]
    if allowed and topic not in allowed:
        raise EmitRefused(
            f"step {step} emitted topic {topic!r} that its config does not declare in emits",
            details={"step": step, "topic": topic, "emits": sorted(allowed)},
        )
    group = event.get("messageGroupId")
    return topic, plain(event.get("data")), None if group is None else str(group)
