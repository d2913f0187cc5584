import { fireEvent, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import AuditPage, { recordsPath } from "./Audit";
import { renderSignedIn } from "./govern/session.testing";
import { json } from "./govern/testing";

afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
  localStorage.clear();
});

function record(seq: number) {
  return {
    seq,
    chain: "tenant/acme",
    time: `2025-01-0${seq + 1}T00:00:00Z`,
    actor: { id: "u1", kind: "user", email: "ada@example.com" },
    action: seq === 0 ? "tenant.create" : "team.create",
    target: { type: "team", id: `t${seq}` },
    scope: "tenant/acme",
    outcome: "success",
    hash: `h${seq}`,
    prev_hash: `h${seq - 1}`,
  };
}

describe("the audit page", () => {
  it("builds the records query from the filters", () => {
    expect(recordsPath({ actor: " u1 ", action: "", target: "team/t1", since: "", until: "" })).toBe(
      "/v1/audit/records?limit=50&actor=u1&target=team%2Ft1",
    );
    const withTime = recordsPath({ actor: "", action: "", target: "", since: "2025-01-01T10:00", until: "" });
    expect(withTime).toMatch(/since=2025-01-01T\d\d%3A00%3A00\.000Z/);
  });

  it("pages the records, filters them and exports the bundle as cfp-audit-<id>.zip", async () => {
    const zip = new Uint8Array([0x50, 0x4b, 3, 4]);
    const { calls } = renderSignedIn(<AuditPage />, {
      bindings: [{ role: "auditor", scope: "tenant/acme" }],
      roles: { auditor: ["audit.read", "audit.export", "tenant.read"] },
      routes: (call) => {
        if (call.url.startsWith("/v1/audit/records"))
          return call.url.includes("cursor=c1")
            ? json({ items: [record(0)], next_cursor: null })
            : json({ items: [record(2), record(1)], next_cursor: "c1" });
        if (call.url.startsWith("/v1/audit/checkpoints")) return json({ items: [], next_cursor: null });
        if (call.url === "/v1/audit/export")
          return new Response(zip, {
            status: 201,
            headers: { "content-type": "application/zip", "x-export-id": "exp123", "x-content-sha256": "abc" },
          });
        return null;
      },
    });

    await screen.findByText("t2", { exact: false });
    expect(calls.find((c) => c.url.startsWith("/v1/audit/records"))!.headers["x-tenant-id"]).toBe("acme");
    fireEvent.click(screen.getByRole("button", { name: "More" }));
    await screen.findByText("tenant.create");
    expect(screen.queryByRole("button", { name: "More" })).toBeNull();
    expect(screen.getByRole("region", { name: "Audit records" }).querySelectorAll("tbody tr")).toHaveLength(3);

    fireEvent.change(screen.getByLabelText("Action", { exact: false }), { target: { value: "team.create" } });
    fireEvent.click(screen.getByRole("button", { name: "Apply filters" }));
    await waitFor(() => expect(calls.some((c) => c.url.includes("action=team.create"))).toBe(true));

    const created = vi.fn((_: Blob) => "blob:audit");
    vi.stubGlobal("URL", Object.assign(URL, { createObjectURL: created, revokeObjectURL: vi.fn() }));
    const names: string[] = [];
    vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(function (this: HTMLAnchorElement) {
      names.push(this.download);
    });
    fireEvent.click(screen.getByRole("button", { name: "Export bundle" }));
    await screen.findByText(/Exported cfp-audit-exp123\.zip/);
    const exported = calls.find((c) => c.url === "/v1/audit/export")!;
    expect(exported.method).toBe("POST");
    expect(exported.headers.accept).toBe("application/zip");
    expect(exported.headers["x-tenant-id"]).toBe("acme");
    expect(names).toEqual(["cfp-audit-exp123.zip"]);
    expect(created.mock.calls[0][0].size).toBe(4);
  });

  it("disables Export with the reason for a role without audit.export", async () => {
    renderSignedIn(<AuditPage />, {
      bindings: [{ role: "reader", scope: "tenant/acme" }],
      roles: { reader: ["audit.read"] },
      routes: (call) =>
        call.url.startsWith("/v1/audit/") ? json({ items: [], next_cursor: null }) : null,
    });
    const button = (await screen.findByRole("button", { name: /Export bundle/ })) as HTMLButtonElement;
    await waitFor(() => expect(button.title).toBe("needs audit.export on tenant/acme"));
    expect(button.disabled).toBe(true);
  });
});
