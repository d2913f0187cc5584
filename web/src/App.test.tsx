// The shell: the sign-in gate (password, then TOTP), the navigation the caller's roles allow, the
// refusal of a page the roles do not cover, unknown routes, the switcher and the phone menu.
import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { forgetTokens } from "./api";
import { App, mayOpen } from "./App";
import { PAGES } from "./pages/registry";
import type { PageDef } from "./pages/registry";
import { SessionProvider } from "./session";
import type { Role, Session } from "./session";

type Binding = { role: string; scope: string };
type Call = { url: string; method: string; headers: Record<string, string>; body: unknown };

const ROLES: Role[] = [
  { id: "system_admin", name: "System admin", actions: ["tenant.manage", "team.read", "flow.read", "execution.read", "audit.read", "step.invoke"], scopes: ["system"] },
  { id: "project_viewer", name: "Project viewer", actions: ["flow.read", "execution.read", "state.read"], scopes: ["project"] },
  { id: "auditor", name: "Auditor", actions: ["audit.read", "team.read"], scopes: ["tenant"] },
];

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
const unauthenticated = () =>
  json(401, { error: { code: "unauthenticated", message: "no session", details: null, correlation_id: "c" } });

/** A fake API for the shell; `signedIn` says whether the refresh cookie holds a session. */
function server(bindings: Binding[], { signedIn = true, mfa = false } = {}) {
  const calls: Call[] = [];
  let session = signedIn;
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
      const headers: Record<string, string> = {};
      new Headers(init.headers).forEach((value, key) => (headers[key] = value));
      const url = String(input);
      const method = init.method ?? "GET";
      const body = typeof init.body === "string" ? (JSON.parse(init.body) as unknown) : null;
      calls.push({ url, method, headers, body });
      const path = url.split("?")[0];
      if (path === "/v1/auth/refresh") return session ? json(200, { access_token: "tok", expires_in: 900 }) : unauthenticated();
      if (path === "/v1/auth/signin") {
        const { password } = body as { password: string };
        if (password !== "right") {
          return json(401, { error: { code: "invalid_credentials", message: "wrong email or password", details: null, correlation_id: "c-1" } });
        }
        if (mfa) return json(200, { mfa_required: true, challenge_id: "ch" });
        session = true;
        return json(200, { access_token: "tok", expires_in: 900 });
      }
      if (path === "/v1/auth/mfa/verify") {
        session = true;
        return json(200, { access_token: "tok", expires_in: 900 });
      }
      if (path === "/v1/auth/signout") {
        session = false;
        return new Response(null, { status: 204 });
      }
      if (!session || headers.authorization !== "Bearer tok") return unauthenticated();
      if (path === "/v1/me") {
        return json(200, { id: "u1", kind: "user", email: "ada@example.com", bindings: bindings.map((b) => ({ principal: "u1", ...b })) });
      }
      if (path === "/v1/roles") return json(200, { items: ROLES, next_cursor: null });
      if (path === "/v1/tenants") return json(200, { items: [{ id: "local", name: "Local" }, { id: "acme", name: "Acme" }], next_cursor: null });
      if (path === "/v1/projects") {
        return headers["x-tenant-id"]
          ? json(200, { items: [{ slug: "orders", name: "Orders", team_id: null }], next_cursor: null })
          : json(200, { items: [{ tenant: "local", slug: "orders", env: "dev", envs: ["dev"] }], next_cursor: null });
      }
      if (path === "/v1/projects/orders/envs") return json(200, { items: [{ name: "dev" }], next_cursor: null });
      return json(404, { error: { code: "not_found", message: path, details: null, correlation_id: "c" } });
    }),
  );
  return calls;
}

function shell() {
  return render(
    <SessionProvider>
      <App />
    </SessionProvider>,
  );
}

const nav = () => screen.getByRole("navigation", { name: "Pages", hidden: true });
const menuTitles = () => within(nav()).queryAllByRole("link", { hidden: true }).map((a) => a.textContent);

beforeEach(() => {
  forgetTokens();
  localStorage.clear();
  window.location.hash = "#/nowhere"; // a route with no page: no page's own calls in these tests
});

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("mayOpen", () => {
  const page = (scope: PageDef["scope"], action: string) => ({ ...PAGES[0], scope, action });
  const session = (bindings: Binding[], tenant: string | null, can: (a: string, s?: string) => boolean) =>
    ({
      place: { tenant, project: "orders", env: "dev" },
      me: { id: "u", kind: "user", email: null, bindings: bindings.map((b) => ({ principal: "u", ...b })) },
      roles: Object.fromEntries(ROLES.map((r) => [r.id, r])),
      can,
    }) as unknown as Session;

  it("asks the session for project and system pages", () => {
    const can = vi.fn((action: string, scope?: string) => action === "flow.read" && scope === undefined);
    const s = session([], "local", can);
    expect(mayOpen(s, page("project", "flow.read"))).toBe(true);
    expect(mayOpen(s, page("system", "tenant.manage"))).toBe(false);
    expect(can).toHaveBeenCalledWith("tenant.manage", "system");
  });

  it("opens a tenant page for a binding in that tenant or the system", () => {
    const never = () => false;
    const auditor = session([{ role: "auditor", scope: "tenant/local" }], "local", never);
    expect(mayOpen(auditor, page("tenant", "audit.read"))).toBe(true);
    expect(mayOpen(auditor, page("tenant", "tenant.manage"))).toBe(false);
    const elsewhere = session([{ role: "auditor", scope: "tenant/acme" }], "local", never);
    expect(mayOpen(elsewhere, page("tenant", "audit.read"))).toBe(false);
    const admin = session([{ role: "system_admin", scope: "system" }], "local", never);
    expect(mayOpen(admin, page("tenant", "audit.read"))).toBe(true);
  });

  it("every page of the registry has a route, a title and an action", () => {
    const paths = new Set<string>();
    for (const p of PAGES) {
      expect(p.path).toMatch(/^\/[a-z-]+(\/[:a-z-]+)*$/);
      expect(p.title.length).toBeGreaterThan(0);
      expect(p.action).toMatch(/^[a-z_]+\.[a-z_]+$/);
      expect(paths.has(p.path)).toBe(false);
      paths.add(p.path);
    }
  });
});

describe("shell", () => {
  it("shows the sign-in form without a session, and an error for a wrong password", async () => {
    server([], { signedIn: false });
    shell();
    expect(await screen.findByRole("heading", { name: "CFP Workbench" })).toBeTruthy();
    fireEvent.change(screen.getByLabelText("Email"), { target: { value: "ada@example.com" } });
    fireEvent.change(screen.getByLabelText("Password"), { target: { value: "wrong" } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain("401 invalid_credentials");
    expect(alert.textContent).toContain("wrong email or password");
  });

  it("signs in with password and TOTP, then shows the shell", async () => {
    const calls = server([{ role: "project_viewer", scope: "tenant/local/project/orders" }], { signedIn: false, mfa: true });
    shell();
    fireEvent.change(await screen.findByLabelText("Email"), { target: { value: " ada@example.com " } });
    fireEvent.change(screen.getByLabelText("Password"), { target: { value: "right" } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    fireEvent.change(await screen.findByLabelText("Code"), { target: { value: " 123456 " } });
    fireEvent.click(screen.getByRole("button", { name: "Verify" }));
    expect(await screen.findByRole("button", { name: "Sign out" })).toBeTruthy();
    expect(calls.find((c) => c.url === "/v1/auth/signin")!.body).toEqual({ email: "ada@example.com", password: "right" });
    expect(calls.find((c) => c.url === "/v1/auth/mfa/verify")!.body).toEqual({ challenge_id: "ch", code: "123456" });
  });

  it("lists only the pages the roles allow, and refuses the others with the reason", async () => {
    server([{ role: "project_viewer", scope: "tenant/local/project/orders" }]);
    shell();
    await screen.findByRole("button", { name: "Sign out" });
    await waitFor(() => expect(menuTitles()).toContain("Flows"));
    const titles = menuTitles();
    expect(titles).toEqual(expect.arrayContaining(["Flows", "Traces", "Logs", "State"]));
    for (const hidden of ["Tenants", "Endpoint tester", "Audit", "Teams"]) expect(titles).not.toContain(hidden);
    act(() => {
      window.location.hash = "#/manage/tenants";
    });
    expect(await screen.findByRole("heading", { name: "Tenants" })).toBeTruthy();
    expect(screen.getByText(/Your roles here do not include/).textContent).toContain("tenant.manage");
  });

  it("a system admin sees the management pages and every tenant in the switcher", async () => {
    const calls = server([{ role: "system_admin", scope: "system" }]);
    localStorage.setItem("cfp.place", JSON.stringify({ tenant: "local", project: "orders", env: "dev" }));
    shell();
    await screen.findByRole("button", { name: "Sign out" });
    await waitFor(() => expect(menuTitles()).toEqual(expect.arrayContaining(["Tenants", "Audit", "Endpoint tester"])));
    const switcher = screen.getByRole("group", { name: "Where you are working" });
    const tenant = within(switcher).getByLabelText("Tenant") as HTMLSelectElement;
    await waitFor(() => expect([...tenant.options].map((o) => o.value)).toEqual(["", "acme", "local"]));
    expect(tenant.value).toBe("local");
    await waitFor(() => expect((within(switcher).getByLabelText("Environment") as HTMLSelectElement).value).toBe("dev"));
    // choosing another tenant clears project and environment
    fireEvent.change(tenant, { target: { value: "acme" } });
    expect((within(switcher).getByLabelText("Project") as HTMLSelectElement).value).toBe("");
    expect(JSON.parse(localStorage.getItem("cfp.place")!)).toEqual({ tenant: "acme", project: null, env: null });
    // …and lists the new tenant's projects, asked with its x-tenant-id
    await waitFor(() =>
      expect(calls.some((c) => c.url.startsWith("/v1/projects?") && c.headers["x-tenant-id"] === "acme")).toBe(true),
    );
  });

  it("names an unknown route", async () => {
    server([{ role: "system_admin", scope: "system" }]);
    shell();
    expect(await screen.findByRole("heading", { name: "Not found" })).toBeTruthy();
    expect(screen.getByText("No page at /nowhere.")).toBeTruthy();
  });

  it("the menu button opens and closes the navigation (phones)", async () => {
    server([{ role: "system_admin", scope: "system" }]);
    const { container } = shell();
    const menu = await screen.findByRole("button", { name: /menu/i });
    expect(menu.getAttribute("aria-expanded")).toBe("false");
    expect(menu.getAttribute("aria-controls")).toBe("sidebar");
    fireEvent.click(menu);
    expect(menu.getAttribute("aria-expanded")).toBe("true");
    expect(container.querySelector("#sidebar")).not.toBeNull();
    // picking a page closes the menu
    await waitFor(() => expect(menuTitles()).toContain("Traces"));
    const traces = within(nav()).getAllByRole("link", { hidden: true }).find((a) => a.textContent === "Traces")!;
    traces.addEventListener("click", (e) => e.preventDefault()); // stay on this route
    fireEvent.click(traces);
    expect(menu.getAttribute("aria-expanded")).toBe("false");
  });

  it("signing out returns to the sign-in form", async () => {
    server([{ role: "system_admin", scope: "system" }]);
    shell();
    fireEvent.click(await screen.findByRole("button", { name: "Sign out" }));
    expect(await screen.findByLabelText("Password")).toBeTruthy();
  });
});
