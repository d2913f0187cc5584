// The runtime websocket (`R/ws`): authenticate with the access token as the first message, then
// join/leave stream groups and tail logs. Subscriptions are remembered and sent again after each
// reconnect; a dropped connection is retried with exponential backoff (a refused one is not).
import { useEffect, useState } from "react";

import { currentToken, refresh } from "../../api";

export type JoinData = { subscriptionId: string; streamName: string; groupId: string; id?: string };
export type TailData = { subscriptionId: string; level?: string; step?: string; trace_id?: string };
export type ClientMessage =
  | { type: "join"; data: JoinData }
  | { type: "tail"; data: TailData };

export type LogLine = {
  level?: string;
  time?: string;
  msg?: string;
  step?: string | null;
  trace_id?: string | null;
  log_id?: string;
  ts?: number;
  [key: string]: unknown;
};

export type ServerError = { code: string; message: string; details?: unknown };

/** What the server sends: a stream or log event, the auth answer, or an error. */
export type ServerMessage = {
  type?: string;
  ok?: boolean;
  principal?: string;
  streamName?: string;
  groupId?: string;
  id?: string;
  subscriptionId?: string;
  timestamp?: number;
  event?: { type: string; data?: unknown; event?: { type: string; data?: unknown } };
  error?: ServerError;
};

export type SocketStatus =
  | { state: "connecting"; attempt: number }
  | { state: "open" }
  | { state: "waiting"; attempt: number; retryIn: number; reason: string }
  | { state: "refused"; reason: string }
  | { state: "closed" };

type Handler = (message: ServerMessage) => void;

type Subscription = { message: ClientMessage; handler: Handler };

/** The subset of the browser's WebSocket the client uses (a fake one stands in for tests). */
export interface SocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  onclose: ((event: CloseEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
}

export type SocketOptions = {
  url: string;
  /** The credential for `{"type": "auth"}`; `fresh` asks for a refreshed one (after a 4401). */
  token?: (fresh: boolean) => Promise<string | null>;
  create?: (url: string) => SocketLike;
  baseDelay?: number; // ms before the first retry; doubles each time
  maxDelay?: number;
  onStatus?: (status: SocketStatus) => void;
  onError?: (error: ServerError) => void;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
};

const OPEN = 1;

/** `ws://host/v1/projects/p/envs/e/ws` (or wss://) for the page's own origin. */
export function socketUrl(runtime: string, location: Pick<Location, "protocol" | "host"> = window.location): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${runtime}/ws`;
}

async function defaultToken(fresh: boolean): Promise<string | null> {
  const token = fresh ? null : currentToken();
  return token ?? (await refresh());
}

export class RuntimeSocket {
  private socket: SocketLike | null = null;
  private subs = new Map<string, Subscription>();
  private authed = false;
  private stopped = false;
  private attempt = 0; // connections tried since the last successful one
  private failures = 0; // drops in a row: the backoff's exponent
  private timer: unknown = null;
  private freshToken = false;
  private readonly options: Required<Omit<SocketOptions, "onStatus" | "onError">> &
    Pick<SocketOptions, "onStatus" | "onError">;
  status: SocketStatus = { state: "closed" };

  constructor(options: SocketOptions) {
    this.options = {
      token: defaultToken,
      create: (url) => new WebSocket(url) as unknown as SocketLike,
      baseDelay: 1000,
      maxDelay: 30_000,
      setTimer: (fn, ms) => setTimeout(fn, ms),
      clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
      ...options,
    };
  }

  /** Open the connection (and keep it open until `close()`). */
  connect(): void {
    this.stopped = false;
    void this.open();
  }

  /** Close for good: no reconnect. */
  close(): void {
    this.stopped = true;
    if (this.timer !== null) this.options.clearTimer(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    this.authed = false;
    if (socket) {
      socket.onclose = null;
      socket.onmessage = null;
      socket.onerror = null;
      socket.onopen = null;
      try {
        socket.close(1000, "done");
      } catch {
        // already closed
      }
    }
    this.setStatus({ state: "closed" });
  }

  /** Send `message` now (if authenticated) and after every reconnect; `handler` gets its replies.
   * A second call with the same subscription id replaces the first (a tail with new filters). */
  subscribe(message: ClientMessage, handler: Handler): () => void {
    const id = message.data.subscriptionId;
    this.subs.set(id, { message, handler });
    if (this.authed) this.write(message);
    return () => this.unsubscribe(id);
  }

  unsubscribe(id: string): void {
    const sub = this.subs.get(id);
    if (!sub) return;
    this.subs.delete(id);
    if (!this.authed) return;
    if (sub.message.type === "join") {
      this.write({ type: "leave", data: sub.message.data });
    } else {
      this.write({ type: "untail", data: { subscriptionId: id } });
    }
  }

  private setStatus(status: SocketStatus): void {
    this.status = status;
    this.options.onStatus?.(status);
  }

  private write(message: unknown): void {
    if (this.socket && this.socket.readyState === OPEN) this.socket.send(JSON.stringify(message));
  }

  private async open(): Promise<void> {
    if (this.stopped) return;
    this.attempt += 1;
    this.setStatus({ state: "connecting", attempt: this.attempt });
    let token: string | null;
    try {
      token = await this.options.token(this.freshToken);
    } catch {
      token = null;
    }
    this.freshToken = false;
    if (this.stopped) return;
    if (!token) {
      this.setStatus({ state: "refused", reason: "not signed in" });
      return;
    }
    let socket: SocketLike;
    try {
      socket = this.options.create(this.options.url);
    } catch (error) {
      this.retry(error instanceof Error ? error.message : "cannot open the websocket");
      return;
    }
    this.socket = socket;
    this.authed = false;
    socket.onopen = () => socket.send(JSON.stringify({ type: "auth", token }));
    socket.onmessage = (event) => this.receive(event.data);
    socket.onerror = () => {
      // a close always follows; it decides what to do
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.authed = false;
      if (this.stopped) return;
      if (event.code === 4403 || event.code === 4404) {
        this.setStatus({ state: "refused", reason: event.reason || this.lastError || `closed (${event.code})` });
        return;
      }
      if (event.code === 4401) this.freshToken = true;
      this.retry(this.lastError || `connection closed (${event.code})`);
    };
  }

  private lastError: string | null = null;

  private retry(reason: string): void {
    if (this.stopped) return;
    this.failures += 1;
    const delay = Math.min(this.options.maxDelay, this.options.baseDelay * 2 ** (this.failures - 1));
    this.setStatus({ state: "waiting", attempt: this.attempt, retryIn: delay, reason });
    this.timer = this.options.setTimer(() => {
      this.timer = null;
      void this.open();
    }, delay);
  }

  private receive(raw: unknown): void {
    let message: ServerMessage;
    try {
      message = JSON.parse(String(raw)) as ServerMessage;
    } catch {
      return;
    }
    if (!message || typeof message !== "object") return;
    if (!this.authed && message.type === "auth" && message.ok) {
      this.authed = true;
      this.attempt = 0;
      this.failures = 0;
      this.lastError = null;
      this.setStatus({ state: "open" });
      for (const sub of this.subs.values()) this.write(sub.message);
      return;
    }
    if (message.type === "error" && message.error) {
      const target = message.subscriptionId ? this.subs.get(message.subscriptionId) : undefined;
      if (target) {
        target.handler(message);
      } else {
        if (!this.authed) this.lastError = `${message.error.code}: ${message.error.message}`;
        this.options.onError?.(message.error);
      }
      return;
    }
    for (const sub of this.route(message)) sub.handler(message);
  }

  /** The subscriptions a message is for: by subscription id when it has one, else by stream,
   * group (and item) — the server's change broadcasts name no subscription. */
  private route(message: ServerMessage): Subscription[] {
    if (message.subscriptionId) {
      const sub = this.subs.get(message.subscriptionId);
      if (sub) return [sub];
    }
    const found: Subscription[] = [];
    for (const sub of this.subs.values()) {
      if (sub.message.type !== "join") continue;
      const data = sub.message.data;
      if (data.streamName !== message.streamName || data.groupId !== message.groupId) continue;
      if ((data.id ?? undefined) !== (message.id ?? undefined)) continue;
      found.push(sub);
    }
    return found;
  }
}

/** A runtime socket for the page's lifetime (null until there is a runtime), with its status. */
export function useRuntimeSocket(runtime: string | null): { socket: RuntimeSocket | null; status: SocketStatus; error: ServerError | null } {
  const [socket, setSocket] = useState<RuntimeSocket | null>(null);
  const [status, setStatus] = useState<SocketStatus>({ state: "closed" });
  const [error, setError] = useState<ServerError | null>(null);
  useEffect(() => {
    if (!runtime) return;
    const client = new RuntimeSocket({
      url: socketUrl(runtime),
      onStatus: (next) => {
        setStatus(next);
        if (next.state === "open") setError(null);
      },
      onError: setError,
    });
    setSocket(client);
    client.connect();
    return () => {
      client.close();
      setSocket(null);
    };
  }, [runtime]);
  return { socket, status, error };
}

/** A short, human account of the connection. */
export function describeStatus(status: SocketStatus): string {
  switch (status.state) {
    case "connecting":
      return status.attempt > 1 ? `Reconnecting (attempt ${status.attempt})…` : "Connecting…";
    case "open":
      return "Live";
    case "waiting":
      return `Disconnected (${status.reason}); retrying in ${Math.round(status.retryIn / 1000)} s`;
    case "refused":
      return `Live updates unavailable: ${status.reason}`;
    case "closed":
      return "Not connected";
  }
}
