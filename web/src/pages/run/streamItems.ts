// A stream group's items kept up to date from the websocket's messages: `sync` replaces them,
// `create`/`update` upsert by id, `delete` removes; ephemeral `event`s are kept apart.
import type { ServerMessage } from "./socket";

export type StreamItem = { id: string; [key: string]: unknown };
export type Watched = { item: StreamItem; changed: number | null; change: string | null };
export type Ephemeral = { type: string; data: unknown; at: number };

function idOf(value: unknown): string | null {
  if (typeof value !== "object" || value === null) return null;
  const id = (value as { id?: unknown }).id;
  return id === undefined || id === null ? null : String(id);
}

function asItem(value: unknown): StreamItem | null {
  const id = idOf(value);
  return id === null ? null : ({ ...(value as object), id } as StreamItem);
}

/** The items after `message`; `now` stamps what changed (ms). */
export function applyStreamMessage(items: Watched[], message: ServerMessage, now: number): Watched[] {
  const event = message.event;
  if (!event) return items;
  switch (event.type) {
    case "sync": {
      const data = event.data;
      const list = Array.isArray(data) ? data : data ? [data] : [];
      const before = new Map(items.map((w) => [w.item.id, w]));
      return list
        .map(asItem)
        .filter((i): i is StreamItem => i !== null)
        .map((item) => {
          const previous = before.get(item.id);
          const same = previous && JSON.stringify(previous.item) === JSON.stringify(item);
          return same ? previous : { item, changed: previous ? now : null, change: previous ? "sync" : null };
        });
    }
    case "create":
    case "update": {
      const item = asItem(event.data) ?? (message.id ? asItem({ ...(event.data as object), id: message.id }) : null);
      if (!item) return items;
      const at = items.findIndex((w) => w.item.id === item.id);
      const next: Watched = { item, changed: now, change: event.type };
      if (at < 0) return [...items, next];
      const copy = [...items];
      copy[at] = next;
      return copy;
    }
    case "delete": {
      const id = idOf(event.data) ?? message.id ?? null;
      return id === null ? items : items.filter((w) => w.item.id !== id);
    }
    default:
      return items;
  }
}

/** An ephemeral `send` event in `message`, if it carries one. */
export function ephemeral(message: ServerMessage, now: number): Ephemeral | null {
  const event = message.event;
  if (event?.type !== "event" || !event.event) return null;
  return { type: event.event.type, data: event.event.data, at: now };
}
