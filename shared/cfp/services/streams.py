"""Fan-out of stream changes and log lines to websocket subscribers.

A slow subscriber must not stall its group: each has a bounded queue, and when it is full the
oldest message is dropped for that subscriber alone (and counted), never blocking the sender."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from cfp.services.context import StreamChange

QUEUE_LIMIT = 1000


@dataclass(eq=False, slots=True)
class Subscriber:
    """One connection's inbox."""

    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_LIMIT)
    )
    dropped: int = 0

    def offer(self, message: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.queue.get_nowait()
            self.dropped += 1
            self.queue.put_nowait(message)


class StreamHub:
    """Who listens to which (stream, group[, item]); `send` never blocks."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], dict[Subscriber, set[str | None]]] = defaultdict(dict)

    def join(self, subscriber: Subscriber, stream: str, group: str, item_id: str | None) -> None:
        self._groups[(stream, group)].setdefault(subscriber, set()).add(item_id)

    def leave(self, subscriber: Subscriber, stream: str, group: str, item_id: str | None) -> None:
        members = self._groups.get((stream, group))
        if members and subscriber in members:
            members[subscriber].discard(item_id)
            if not members[subscriber]:
                del members[subscriber]
            if not members:
                del self._groups[(stream, group)]

    def leave_all(self, subscriber: Subscriber) -> None:
        for key in list(self._groups):
            members = self._groups[key]
            members.pop(subscriber, None)
            if not members:
                del self._groups[key]

    def send(self, change: StreamChange) -> None:
        members = self._groups.get((change.stream, change.group))
        if not members:
            return
        stamp = int(time.time() * 1000)
        for subscriber, items in list(members.items()):
            if None in items:
                subscriber.offer(
                    {
                        "streamName": change.stream,
                        "groupId": change.group,
                        "timestamp": stamp,
                        "event": change.event,
                    }
                )
            if change.item_id is not None and change.item_id in items:
                subscriber.offer(
                    {
                        "streamName": change.stream,
                        "groupId": change.group,
                        "id": change.item_id,
                        "timestamp": stamp,
                        "event": change.event,
                    }
                )

    def subscriber_count(self) -> int:
        return len({s for members in self._groups.values() for s in members})
