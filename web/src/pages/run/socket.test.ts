import { describe, expect, it, vi } from "vitest";

import { RuntimeSocket, socketUrl } from "./socket";
import type { ServerMessage, SocketLike, SocketStatus } from "./socket";

class FakeSocket implements SocketLike {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: unknown[] = [];
  closed: { code?: number } | null = null;
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }

  send(data: string) {
    this.sent.push(JSON.parse(data));
  }

  close(code?: number) {
    this.closed = { code };
    this.readyState = 3;
  }

  // the server's side
  open() {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }

  receive(message: unknown) {
    this.onmessage?.({ data: JSON.stringify(message) } as MessageEvent);
  }

  drop(code: number, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason } as CloseEvent);
  }
}

function harness(token: (fresh: boolean) => Promise<string | null> = async () => "tok") {
  FakeSocket.all = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const statuses: SocketStatus[] = [];
  const errors: unknown[] = [];
  const client = new RuntimeSocket({
    url: "ws://host/v1/projects/p/envs/e/ws",
    token,
    create: (url) => new FakeSocket(url),
    setTimer: (fn, ms) => timers.push({ fn, ms }),
    clearTimer: () => undefined,
    onStatus: (s) => statuses.push(s),
    onError: (e) => errors.push(e),
  });
  const flush = () => new Promise((resolve) => setTimeout(resolve, 0));
  return { client, timers, statuses, errors, flush, last: () => FakeSocket.all[FakeSocket.all.length - 1] };
}

describe("RuntimeSocket", () => {
  it("builds the socket URL of the page's origin", () => {
    expect(socketUrl("/v1/projects/p/envs/e", { protocol: "https:", host: "x.dev" })).toBe("wss://x.dev/v1/projects/p/envs/e/ws");
    expect(socketUrl("/v1/projects/p/envs/e", { protocol: "http:", host: "127.0.0.1:8080" })).toBe(
      "ws://127.0.0.1:8080/v1/projects/p/envs/e/ws",
    );
  });

  it("authenticates first, then sends the subscriptions", async () => {
    const h = harness();
    const handler = vi.fn();
    h.client.subscribe({ type: "tail", data: { subscriptionId: "logs", level: "error" } }, handler);
    h.client.connect();
    await h.flush();
    const socket = h.last();
    expect(socket.url).toBe("ws://host/v1/projects/p/envs/e/ws");
    socket.open();
    expect(socket.sent).toEqual([{ type: "auth", token: "tok" }]);
    socket.receive({ type: "auth", ok: true, principal: "u1" });
    expect(socket.sent[1]).toEqual({ type: "tail", data: { subscriptionId: "logs", level: "error" } });
    expect(h.client.status).toEqual({ state: "open" });
  });

  it("routes log lines by subscription id and stream changes by stream and group", async () => {
    const h = harness();
    h.client.connect();
    await h.flush();
    const socket = h.last();
    socket.open();
    socket.receive({ type: "auth", ok: true });
    const logs = vi.fn();
    const group = vi.fn();
    const item = vi.fn();
    h.client.subscribe({ type: "tail", data: { subscriptionId: "logs" } }, logs);
    h.client.subscribe({ type: "join", data: { subscriptionId: "g", streamName: "order_status", groupId: "c1" } }, group);
    h.client.subscribe(
      { type: "join", data: { subscriptionId: "i", streamName: "order_status", groupId: "c1", id: "o1" } },
      item,
    );
    expect(socket.sent.slice(1).map((m) => (m as { type: string }).type)).toEqual(["tail", "join", "join"]);

    const line = { streamName: "__logs", subscriptionId: "logs", event: { type: "log", data: { msg: "hi" } } };
    socket.receive(line);
    expect(logs).toHaveBeenCalledWith(line);

    const change: ServerMessage = { streamName: "order_status", groupId: "c1", event: { type: "update", data: { id: "o2" } } };
    socket.receive(change);
    expect(group).toHaveBeenCalledWith(change);
    expect(item).not.toHaveBeenCalled();

    socket.receive({ streamName: "order_status", groupId: "c1", id: "o1", event: { type: "update", data: { id: "o1" } } });
    expect(item).toHaveBeenCalledTimes(1);
    socket.receive({ streamName: "order_status", groupId: "other", event: { type: "create", data: {} } });
    expect(group).toHaveBeenCalledTimes(1);
  });

  it("hands errors to their subscription, or to onError", async () => {
    const h = harness();
    h.client.connect();
    await h.flush();
    const socket = h.last();
    socket.open();
    socket.receive({ type: "auth", ok: true });
    const handler = vi.fn();
    h.client.subscribe({ type: "join", data: { subscriptionId: "s", streamName: "x", groupId: "private" } }, handler);
    const refusal = { type: "error", subscriptionId: "s", error: { code: "forbidden", message: "no" } };
    socket.receive(refusal);
    expect(handler).toHaveBeenCalledWith(refusal);
    socket.receive({ type: "error", error: { code: "not_found", message: "no stream named 'y'" } });
    expect(h.errors).toEqual([{ code: "not_found", message: "no stream named 'y'" }]);
  });

  it("replaces a subscription with the same id and leaves or untails on unsubscribe", async () => {
    const h = harness();
    h.client.connect();
    await h.flush();
    const socket = h.last();
    socket.open();
    socket.receive({ type: "auth", ok: true });
    const first = vi.fn();
    const second = vi.fn();
    h.client.subscribe({ type: "tail", data: { subscriptionId: "logs" } }, first);
    const stop = h.client.subscribe({ type: "tail", data: { subscriptionId: "logs", step: "A" } }, second);
    socket.receive({ subscriptionId: "logs", event: { type: "log", data: {} } });
    expect(first).not.toHaveBeenCalled();
    expect(second).toHaveBeenCalledTimes(1);
    stop();
    const leave = h.client.subscribe({ type: "join", data: { subscriptionId: "g", streamName: "s", groupId: "g1" } }, vi.fn());
    leave();
    expect(socket.sent.slice(-3)).toEqual([
      { type: "untail", data: { subscriptionId: "logs" } },
      { type: "join", data: { subscriptionId: "g", streamName: "s", groupId: "g1" } },
      { type: "leave", data: { subscriptionId: "g", streamName: "s", groupId: "g1" } },
    ]);
  });

  it("reconnects with backoff and subscribes again", async () => {
    const h = harness();
    h.client.subscribe({ type: "tail", data: { subscriptionId: "logs" } }, vi.fn());
    h.client.connect();
    await h.flush();
    h.last().open();
    h.last().receive({ type: "auth", ok: true });

    h.last().drop(1006);
    expect(h.timers.map((t) => t.ms)).toEqual([1000]);
    expect(h.client.status.state).toBe("waiting");
    h.timers[0].fn();
    await h.flush();
    h.last().drop(1006); // fails again before opening
    expect(h.timers.map((t) => t.ms)).toEqual([1000, 2000]);
    h.timers[1].fn();
    await h.flush();
    h.last().drop(1006);
    expect(h.timers[2].ms).toBe(4000);
    h.timers[2].fn();
    await h.flush();
    const socket = h.last();
    socket.open();
    socket.receive({ type: "auth", ok: true });
    expect(socket.sent).toEqual([
      { type: "auth", token: "tok" },
      { type: "tail", data: { subscriptionId: "logs" } },
    ]);
    expect(FakeSocket.all).toHaveLength(4);
    // a success resets the backoff
    socket.drop(1006);
    expect(h.timers[3].ms).toBe(1000);
  });

  it("asks for a fresh token after a 4401 and stops after a 4403", async () => {
    const token = vi.fn(async (fresh: boolean) => (fresh ? "new" : "old"));
    const h = harness(token);
    h.client.connect();
    await h.flush();
    h.last().open();
    h.last().receive({ type: "error", error: { code: "unauthorized", message: "token expired" } });
    h.last().drop(4401);
    expect(h.client.status).toMatchObject({ state: "waiting", reason: "unauthorized: token expired" });
    h.timers[0].fn();
    await h.flush();
    expect(token).toHaveBeenLastCalledWith(true);
    h.last().open();
    expect(h.last().sent[0]).toEqual({ type: "auth", token: "new" });
    h.last().receive({ type: "error", error: { code: "forbidden", message: "needs state.read" } });
    h.last().drop(4403);
    expect(h.client.status).toEqual({ state: "refused", reason: "forbidden: needs state.read" });
    expect(h.timers).toHaveLength(1);
  });

  it("does not connect without a token, and close() stops for good", async () => {
    const h = harness(async () => null);
    h.client.connect();
    await h.flush();
    expect(FakeSocket.all).toHaveLength(0);
    expect(h.client.status).toEqual({ state: "refused", reason: "not signed in" });

    const g = harness();
    g.client.connect();
    await g.flush();
    const socket = g.last();
    socket.open();
    g.client.close();
    expect(socket.closed).toEqual({ code: 1000 });
    expect(g.timers).toHaveLength(0);
    expect(g.client.status).toEqual({ state: "closed" });
  });
});
