// A signed-in session for page tests: the refresh cookie answers a token, `/v1/me` the given
// bindings, `/v1/roles` the given roles; other calls go to `routes`.
import { render } from "@testing-library/react";
import type { ReactElement } from "react";

import { SessionProvider } from "../../session";
import { json, mockFetch } from "./testing";
import type { Call } from "./testing";

export type Roles = Record<string, string[]>;

export function renderSignedIn(
  ui: ReactElement,
  options: {
    bindings: { role: string; scope: string }[];
    roles: Roles;
    place?: { tenant: string; project: string | null; env: string | null };
    routes: (call: Call) => Response | Promise<Response> | null;
  },
): { calls: Call[] } {
  localStorage.setItem("cfp.place", JSON.stringify(options.place ?? { tenant: "acme", project: "orders", env: "dev" }));
  const calls = mockFetch(async (call) => {
    const path = call.url.split("?")[0];
    if (path === "/v1/auth/refresh") return json({ access_token: "token", expires_in: 900 });
    if (path === "/v1/me")
      return json({ id: "me", kind: "user", email: "me@example.com", bindings: options.bindings.map((b) => ({ principal: "me", ...b })) });
    if (path === "/v1/roles")
      return json({
        items: Object.entries(options.roles).map(([id, actions]) => ({ id, name: id, actions, scopes: ["system", "tenant", "team", "project"] })),
        next_cursor: null,
      });
    const answer = await options.routes(call);
    if (answer) return answer;
    if (path === "/v1/projects")
      return json({
        items: [{ slug: "orders", name: "orders", team_id: null, tenant: "acme", env: "dev", envs: ["dev"] }],
        next_cursor: null,
      });
    return json({ error: { code: "not_found", message: `no route ${call.url}`, details: null, correlation_id: "t" } }, 404);
  });
  render(<SessionProvider>{ui}</SessionProvider>);
  return { calls };
}
