import { describe, expect, it } from "vitest";

import { applyStreamMessage, ephemeral } from "./streamItems";
import type { Watched } from "./streamItems";

const item = (id: string, status = "ready") => ({ id, orderId: id, status });

describe("stream items over the websocket", () => {
  it("syncs, creates, updates and deletes by id", () => {
    let items: Watched[] = [];
    items = applyStreamMessage(items, { event: { type: "sync", data: [item("a"), item("b")] } }, 1);
    expect(items.map((w) => [w.item.id, w.change])).toEqual([
      ["a", null],
      ["b", null],
    ]);
    items = applyStreamMessage(items, { event: { type: "create", data: item("c") } }, 2);
    items = applyStreamMessage(items, { event: { type: "update", data: item("a", "shipped") } }, 3);
    expect(items.map((w) => [w.item.id, w.item.status, w.change, w.changed])).toEqual([
      ["a", "shipped", "update", 3],
      ["b", "ready", null, null],
      ["c", "ready", "create", 2],
    ]);
    items = applyStreamMessage(items, { id: "b", event: { type: "delete", data: null } }, 4);
    expect(items.map((w) => w.item.id)).toEqual(["a", "c"]);
    // a later sync keeps unchanged entries as they were and marks changed ones
    items = applyStreamMessage(items, { event: { type: "sync", data: [item("a", "shipped"), item("c", "gone")] } }, 5);
    expect(items.map((w) => [w.item.id, w.change, w.changed])).toEqual([
      ["a", "update", 3],
      ["c", "sync", 5],
    ]);
  });

  it("accepts an item-level sync and an update naming its item in the message", () => {
    let items = applyStreamMessage([], { id: "x", event: { type: "sync", data: item("x") } }, 1);
    expect(items).toHaveLength(1);
    items = applyStreamMessage(items, { id: "x", event: { type: "update", data: { status: "late" } } }, 2);
    expect(items[0].item).toEqual({ id: "x", status: "late" });
  });

  it("keeps ephemeral events apart", () => {
    const message = { event: { type: "event", event: { type: "typing", data: { who: "c1" } } } };
    expect(ephemeral(message, 9)).toEqual({ type: "typing", data: { who: "c1" }, at: 9 });
    expect(applyStreamMessage([], message, 9)).toEqual([]);
    expect(ephemeral({ event: { type: "update", data: {} } }, 9)).toBeNull();
  });
});
