// The API client (bearer token in memory, tenant header, one refresh on 401, error envelopes) and
// the session (reload through the refresh cookie, sign-in with and without TOTP, the chosen
// place, what `can` allows) against a fake server behind a stubbed `fetch`.
import { act, render, screen, waitFor } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { acceptTokens, api, ApiError, currentToken, forgetTokens, query, send } from "./api";
import { covers, SessionProvider, useSession } from "./session";
import type { Session } from "./session";

type Call = { url: string; method: string; headers: Record<string, string>; body: unknown };
type Route = (call: Call) => Response | undefined;

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(status === 204 ? null : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

const ROLES = {
  items: [
    { id: "system_admin", name: "System admin", actions: ["tenant.manage", "flow.read", "audit.read"], scopes: ["system"] },
    { id: "project_viewer", name: "Project viewer", actions: ["flow.read", "execution.read"], scopes: ["project"] },
    { id: "team_admin", name: "Team admin", actions: ["flow.read", "step.invoke"], scopes: ["team"] },
  ],
};

/** A fake API: each route answers the calls it knows; every call is kept in `calls`. */
function server(routes: Route[]) {
  const calls: Call[] = [];
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, key) => (headers[key] = value));
    const call: Call = {
      url: String(input),
      method: init.method ?? "GET",
      headers,
      body: typeof init.body === "string" ? JSON.parse(init.body) : init.body,
    };
    calls.push(call);
    for (const route of routes) {
      const answer = route(call);
      if (answer) return answer;
    }
    return json(404, { error: { code: "not_found", message: `no route ${call.method} ${call.url}`, details: null, correlation_id: "c-404" } });
  });
  vi.stubGlobal("fetch", fetchMock);
  return { calls, fetchMock };
}

const on =
  (method: string, path: string | RegExp, answer: (call: Call) => Response): Route =>
  (call) => {
    const bare = call.url.split("?")[0];
    const hit = typeof path === "string" ? bare === path : path.test(call.url);
    return call.method === method && hit ? answer(call) : undefined;
  };

/** The routes a signed-in session loads: who, roles, what the process serves, the tenant's projects. */
function signedInRoutes(bindings: { role: string; scope: string }[]): Route[] {
  return [
    on("GET", "/v1/me", () =>
      json(200, { id: "u1", kind: "user", email: "ada@example.com", bindings: bindings.map((b) => ({ principal: "u1", ...b })) }),
    ),
    on("GET", "/v1/roles", () => json(200, ROLES)),
    on("GET", "/v1/projects", (call) =>
      call.headers["x-tenant-id"]
        ? json(200, { items: [{ slug: "orders", team_id: "t-shop" }, { slug: "billing", team_id: null }], next_cursor: null })
        : json(200, { items: [{ tenant: "local", slug: "orders", env: "dev", envs: ["dev"], steps: 10, streams: 1 }], next_cursor: null }),
    ),
  ];
}

let session: Session | null = null;
function Probe() {
  session = useSession();
  return <p>state: {session.state}</p>;
}

beforeEach(() => {
  forgetTokens();
  localStorage.clear();
  session = null;
});

afterEach(() => {
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

describe("api client", () => {
  it("sends the bearer token, the tenant and a correlation id; parses JSON", async () => {
    const { calls } = server([on("GET", "/v1/things", () => json(200, { items: [1], next_cursor: null }))]);
    acceptTokens({ access_token: "tok-1", expires_in: 900 });
    const page = await api<{ items: number[] }>("/v1/things", { tenant: "acme" });
    expect(page.items).toEqual([1]);
    expect(calls[0].headers.authorization).toBe("Bearer tok-1");
    expect(calls[0].headers["x-tenant-id"]).toBe("acme");
    expect(calls[0].headers["x-correlation-id"]).toMatch(/^wb-/);
    expect(calls[0].headers.accept).toBe("application/json");
  });

  it("posts a JSON body and answers undefined on 204", async () => {
    const { calls } = server([on("POST", "/v1/do", () => json(204, null))]);
    await expect(api("/v1/do", { body: { a: 1 } })).resolves.toBeUndefined();
    expect(calls[0].method).toBe("POST");
    expect(calls[0].headers["content-type"]).toBe("application/json");
    expect(calls[0].body).toEqual({ a: 1 });
    expect(calls[0].headers.authorization).toBeUndefined(); // no token: no header
  });

  it("turns the error envelope into an ApiError with code and correlation id", async () => {
    server([
      on("GET", "/v1/nope", () =>
        json(403, { error: { code: "forbidden", message: "not allowed", details: { action: "x" }, correlation_id: "c-9" } }),
      ),
      on("GET", "/v1/plain", () => new Response("upstream down", { status: 502, headers: { "x-correlation-id": "c-10" } })),
    ]);
    const error = await api("/v1/nope").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 403, code: "forbidden", message: "not allowed", correlationId: "c-9" });
    const plain = await api("/v1/plain").catch((e: unknown) => e);
    expect(plain).toMatchObject({ status: 502, code: "http_error", message: "HTTP 502", correlationId: "c-10" });
  });

  it("refreshes once on 401 through the cookie and retries with the new token", async () => {
    let refreshes = 0;
    const { calls } = server([
      on("POST", "/v1/auth/refresh", () => {
        refreshes += 1;
        return json(200, { access_token: "tok-new", expires_in: 900 });
      }),
      on("GET", "/v1/data", (call) =>
        call.headers.authorization === "Bearer tok-new"
          ? json(200, { ok: true })
          : json(401, { error: { code: "unauthenticated", message: "expired", details: null, correlation_id: "c" } }),
      ),
    ]);
    acceptTokens({ access_token: "tok-old", expires_in: 900 });
    await expect(api("/v1/data")).resolves.toEqual({ ok: true });
    expect(refreshes).toBe(1);
    expect(currentToken()).toBe("tok-new");
    const refresh = calls.find((c) => c.url === "/v1/auth/refresh")!;
    expect(refresh.headers.authorization).toBeUndefined(); // the cookie, not a header
  });

  it("refreshes before a request when the token is about to expire", async () => {
    const { calls } = server([
      on("POST", "/v1/auth/refresh", () => json(200, { access_token: "tok-fresh", expires_in: 900 })),
      on("GET", "/v1/data", () => json(200, {})),
    ]);
    acceptTokens({ access_token: "tok-stale", expires_in: 5 });
    await send("/v1/data");
    expect(calls.map((c) => c.url)).toEqual(["/v1/auth/refresh", "/v1/data"]);
    expect(calls[1].headers.authorization).toBe("Bearer tok-fresh");
  });

  it("forgets the token when the refresh is refused, and answers the 401", async () => {
    server([
      on("POST", "/v1/auth/refresh", () => json(401, { error: { code: "unauthenticated", message: "no session", details: null, correlation_id: "c" } })),
      on("GET", "/v1/data", () => json(401, { error: { code: "unauthenticated", message: "expired", details: null, correlation_id: "c" } })),
    ]);
    acceptTokens({ access_token: "tok-old", expires_in: 900 });
    const error = await api("/v1/data").catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 401 });
    expect(currentToken()).toBeNull();
  });

  it("builds query strings without empty values", () => {
    expect(query({ a: 1, b: "", c: null, d: undefined, e: "x y", f: false })).toBe("?a=1&e=x+y&f=false");
    expect(query({})).toBe("");
  });
});

describe("covers", () => {
  it("follows the scope tree and a team's projects", () => {
    expect(covers("system", "tenant/a/project/p", null)).toBe(true);
    expect(covers("tenant/a", "tenant/a/project/p", null)).toBe(true);
    expect(covers("tenant/a", "tenant/ab", null)).toBe(false);
    expect(covers("tenant/a/project/p", "tenant/a/project/q", null)).toBe(false);
    expect(covers("tenant/a/team/t1", "tenant/a/project/p", "t1")).toBe(true);
    expect(covers("tenant/a/team/t1", "tenant/a/project/p", "t2")).toBe(false);
    expect(covers("tenant/a/team/t1", "tenant/b/project/p", "t1")).toBe(false);
  });
});

describe("session", () => {
  it("signs out when the refresh cookie gives no session", async () => {
    server([on("POST", "/v1/auth/refresh", () => json(401, { error: { code: "unauthenticated", message: "", details: null, correlation_id: "" } }))]);
    render(
      <SessionProvider>
        <Probe />
      </SessionProvider>,
    );
    expect(await screen.findByText("state: signed-out")).toBeTruthy();
  });

  it("a reload keeps the session: refresh, then who, roles and the served place", async () => {
    server([
      on("POST", "/v1/auth/refresh", () => json(200, { access_token: "tok-r", expires_in: 900 })),
      ...signedInRoutes([{ role: "project_viewer", scope: "tenant/local/project/orders" }]),
    ]);
    render(
      <SessionProvider>
        <Probe />
      </SessionProvider>,
    );
    expect(await screen.findByText("state: signed-in")).toBeTruthy();
    expect(session!.me?.email).toBe("ada@example.com");
    expect(session!.place).toEqual({ tenant: "local", project: "orders", env: "dev" });
    expect(session!.served).toEqual({ tenant: "local", project: "orders", env: "dev" });
    expect(session!.runtime).toBe("/v1/projects/orders/envs/dev");
    expect(JSON.parse(localStorage.getItem("cfp.place")!)).toEqual({ tenant: "local", project: "orders", env: "dev" });
    expect(session!.can("flow.read")).toBe(true);
    expect(session!.can("step.invoke")).toBe(false);
    expect(session!.can("flow.read", "tenant/local/project/billing")).toBe(false);
  });

  it("keeps a place chosen before the reload", async () => {
    localStorage.setItem("cfp.place", JSON.stringify({ tenant: "acme", project: "shop", env: "prod" }));
    server([
      on("POST", "/v1/auth/refresh", () => json(200, { access_token: "tok-r", expires_in: 900 })),
      ...signedInRoutes([{ role: "system_admin", scope: "system" }]),
    ]);
    render(
      <SessionProvider>
        <Probe />
      </SessionProvider>,
    );
    await screen.findByText("state: signed-in");
    expect(session!.place).toEqual({ tenant: "acme", project: "shop", env: "prod" });
    act(() => session!.choose({ project: "other", env: null }));
    expect(session!.place).toEqual({ tenant: "acme", project: "other", env: null });
    expect(session!.runtime).toBeNull();
  });

  it("a team binding covers the team's projects only", async () => {
    server([
      on("POST", "/v1/auth/refresh", () => json(200, { access_token: "tok-r", expires_in: 900 })),
      ...signedInRoutes([{ role: "team_admin", scope: "tenant/local/team/t-shop" }]),
    ]);
    render(
      <SessionProvider>
        <Probe />
      </SessionProvider>,
    );
    await screen.findByText("state: signed-in");
    await waitFor(() => expect(session!.teamOf).toEqual({ orders: "t-shop", billing: null }));
    expect(session!.can("step.invoke")).toBe(true); // orders belongs to t-shop
    expect(session!.can("step.invoke", "tenant/local/project/billing")).toBe(false);
    expect(session!.can("tenant.manage", "system")).toBe(false);
  });

  it("signs in with a password, then a TOTP code when the account asks for one", async () => {
    const { calls } = server([
      on("POST", "/v1/auth/refresh", () => json(401, { error: { code: "unauthenticated", message: "", details: null, correlation_id: "" } })),
      on("POST", "/v1/auth/signin", () => json(200, { mfa_required: true, challenge_id: "ch-1" })),
      on("POST", "/v1/auth/mfa/verify", () => json(200, { access_token: "tok-mfa", expires_in: 900 })),
      ...signedInRoutes([{ role: "system_admin", scope: "system" }]),
    ]);
    render(
      <SessionProvider>
        <Probe />
      </SessionProvider>,
    );
    await screen.findByText("state: signed-out");
    let result: Awaited<ReturnType<Session["signIn"]>> | undefined;
    await act(async () => {
      result = await session!.signIn("ada@example.com", "pw");
    });
    expect(result).toEqual({ mfa: true, challenge: "ch-1" });
    expect(currentToken()).toBeNull(); // no token before the second factor
    await act(async () => session!.verifyMfa("ch-1", "123456"));
    expect(await screen.findByText("state: signed-in")).toBeTruthy();
    expect(currentToken()).toBe("tok-mfa");
    expect(calls.find((c) => c.url === "/v1/auth/mfa/verify")!.body).toEqual({ challenge_id: "ch-1", code: "123456" });
    expect(calls.find((c) => c.url === "/v1/me")!.headers.authorization).toBe("Bearer tok-mfa");
  });

  it("signing out forgets the token even when the server fails", async () => {
    server([
      on("POST", "/v1/auth/refresh", () => json(200, { access_token: "tok-r", expires_in: 900 })),
      on("POST", "/v1/auth/signout", () => json(500, { error: { code: "internal", message: "boom", details: null, correlation_id: "c" } })),
      ...signedInRoutes([{ role: "system_admin", scope: "system" }]),
    ]);
    render(
      <SessionProvider>
        <Probe />
      </SessionProvider>,
    );
    await screen.findByText("state: signed-in");
    await act(async () => {
      await session!.signOut().catch(() => undefined);
    });
    expect(await screen.findByText("state: signed-out")).toBeTruthy();
    expect(currentToken()).toBeNull();
  });
});
