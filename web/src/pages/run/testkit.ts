// Test helpers for the runtime pages: a signed-in session, a routed fake `fetch`, a fake
// WebSocket. Used by the `*.test.tsx` files only.
import { cleanup } from "@testing-library/react";
import { afterEach, vi } from "vitest";

import type { Session } from "../../session";

export const RUNTIME = "/v1/projects/orders/envs/dev";

export function fakeSession(actions: string[]): Session {
  const allowed = new Set(actions);
  return {
    state: "signed-in",
    me: { id: "u1", kind: "user", email: "a@b.c", bindings: [] },
    roles: {},
    place: { tenant: "local", project: "orders", env: "dev" },
    served: { tenant: "local", project: "orders", env: "dev" },
    teamOf: {},
    choose: () => undefined,
    signIn: async () => ({ mfa: false }),
    verifyMfa: async () => undefined,
    signOut: async () => undefined,
    can: (action: string) => allowed.has(action),
    runtime: RUNTIME,
  };
}

export type Call = { url: string; method: string; headers: Record<string, string>; body: unknown };

type Reply = { status?: number; body?: unknown; headers?: Record<string, string> };
type Route = (call: Call) => Reply | undefined;

/** Register the teardown every page test shares: unmount, drop the stubbed globals. */
export function cleanUpAfterEach(): void {
  afterEach(() => {
    cleanup();
    vi.unstubAllGlobals();
  });
}

/** `routeFetch` that also answers the runtime's step list (STEPS), which the run pages load. */
export function serveSteps(route: Route) {
  return routeFetch((call) => (call.url === `${RUNTIME}/steps` ? { body: { items: STEPS, next_cursor: null } } : route(call)));
}

/** A `fetch` that answers from `route` (404 when it answers nothing) and records each call. */
export function routeFetch(route: Route) {
  const calls: Call[] = [];
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input);
    const headers = (init?.headers ?? {}) as Record<string, string>;
    const raw = init?.body;
    const call: Call = {
      url,
      method: init?.method ?? "GET",
      headers,
      body: typeof raw === "string" ? JSON.parse(raw) : undefined,
    };
    calls.push(call);
    const reply = route(call) ?? {
      status: 404,
      body: { error: { code: "not_found", message: `no route ${url}`, details: null, correlation_id: "c" } },
    };
    const status = reply.status ?? 200;
    const text = reply.body === undefined ? "" : JSON.stringify(reply.body);
    return new Response(status === 204 ? null : text, {
      status,
      headers: { "content-type": "application/json", ...(reply.headers ?? {}) },
    });
  });
  vi.stubGlobal("fetch", fetchMock);
  return { calls, fetchMock };
}

export class FakeWebSocket {
  static all: FakeWebSocket[] = [];
  static OPEN = 1;
  readyState = 0;
  sent: { type: string; data?: Record<string, unknown>; token?: string }[] = [];
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;

  constructor(readonly url: string) {
    FakeWebSocket.all.push(this);
  }

  send(data: string) {
    this.sent.push(JSON.parse(data));
  }

  close() {
    this.readyState = 3;
  }

  /** The server accepts the connection and the token. */
  accept() {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
    this.receive({ type: "auth", ok: true, principal: "u1" });
  }

  receive(message: unknown) {
    this.onmessage?.({ data: JSON.stringify(message) } as MessageEvent);
  }

  static last(): FakeWebSocket {
    return FakeWebSocket.all[FakeWebSocket.all.length - 1];
  }
}

export const STEPS = [
  {
    name: "CreateOrder",
    type: "api",
    subscribes: [],
    emits: [{ topic: "order.created" }],
    path: "/orders",
    method: "POST",
    description: "Accepts an order",
    input_schema: null,
    body_schema: {
      $defs: {
        OrderItem: {
          type: "object",
          properties: {
            sku: { type: "string" },
            quantity: { type: "integer", exclusiveMinimum: 0 },
            unitPrice: { type: "number", minimum: 0 },
          },
          required: ["sku", "quantity", "unitPrice"],
        },
      },
      type: "object",
      properties: {
        customerId: { type: "string" },
        items: { type: "array", items: { $ref: "#/$defs/OrderItem" }, minItems: 1 },
        fail: { type: "boolean", default: false },
      },
      required: ["customerId", "items"],
    },
  },
  {
    name: "GetOrder",
    type: "api",
    subscribes: [],
    emits: [],
    path: "/orders/:id",
    method: "GET",
    input_schema: null,
    body_schema: null,
  },
  {
    name: "PriceOrder",
    type: "event",
    subscribes: ["order.created"],
    emits: [],
    path: null,
    method: null,
    queue: { type: "standard" },
    input_schema: {
      type: "object",
      properties: { orderId: { type: "string" }, quantity: { type: "integer", exclusiveMinimum: 0 } },
      required: ["orderId", "quantity"],
    },
    body_schema: null,
  },
  {
    name: "AppendLedger",
    type: "event",
    subscribes: ["order.ready"],
    emits: [],
    path: null,
    method: null,
    queue: { type: "fifo" },
    input_schema: null,
    body_schema: null,
  },
];
