import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import ContractsPage from "./Contracts";
import { renderSignedIn } from "./govern/session.testing";
import { json } from "./govern/testing";

afterEach(() => {
  vi.unstubAllGlobals();
  localStorage.clear();
});

function contract(status: string, version: number) {
  return {
    id: "c1",
    title: "Support agreement",
    counterparty: "ACME",
    status,
    value: "12500.00",
    currency: "EUR",
    start_date: "2025-01-01",
    end_date: null,
    documents: [],
    created_at: "2025-01-01T00:00:00Z",
    created_by: "me",
    updated_at: "2025-01-01T00:00:00Z",
    version,
  };
}

describe("the contracts page", () => {
  it("moves a contract along its allowed states with If-Match, and uploads a document raw", async () => {
    let current = contract("draft", 1);
    const { calls } = renderSignedIn(<ContractsPage />, {
      bindings: [{ role: "tenant_admin", scope: "tenant/acme" }],
      roles: { tenant_admin: ["report.read", "report.manage"] },
      routes: (call) => {
        const path = call.url.split("?")[0];
        if (path === "/v1/contracts") return json({ items: [current], next_cursor: null });
        if (path === "/v1/contracts/c1" && call.method === "GET") return json(current, 200, { etag: `"${current.version}"` });
        if (path === "/v1/contracts/c1" && call.method === "PATCH") {
          current = contract((call.body as { status: string }).status, current.version + 1);
          return json(current);
        }
        if (path === "/v1/contracts/c1/documents" && call.method === "POST")
          return json({ id: "d1", name: "signed.pdf", content_type: "application/pdf", size: 3, sha256: "x", uploaded_at: "2025-01-02T00:00:00Z", uploaded_by: "me" }, 201);
        return null;
      },
    });

    fireEvent.click(await screen.findByRole("button", { name: "Support agreement" }));
    const panel = await screen.findByRole("dialog", { name: "Contract" });
    const status = await within(panel).findByRole("group", { name: "Change status" });
    expect(within(status).getAllByRole("button").map((b) => b.textContent)).toEqual(["Activate"]);

    fireEvent.click(within(status).getByRole("button", { name: "Activate" }));
    await within(panel).findByText("Status changed from draft to active.");
    const patch = calls.find((c) => c.method === "PATCH")!;
    expect(patch.body).toEqual({ status: "active" });
    expect(patch.headers["if-match"]).toBe('"1"');
    expect(patch.headers["x-tenant-id"]).toBe("acme");
    await waitFor(() =>
      expect(
        within(within(panel).getByRole("group", { name: "Change status" }))
          .getAllByRole("button")
          .map((b) => b.textContent),
      ).toEqual(["Mark expired", "Terminate"]),
    );

    const file = new File(["pdf"], "signed.pdf", { type: "application/pdf" });
    fireEvent.change(within(panel).getByLabelText(/^Upload a document/, { selector: "input" }), { target: { files: [file] } });
    fireEvent.click(within(panel).getByRole("button", { name: "Upload" }));
    await within(panel).findByText("Uploaded signed.pdf.");
    const upload = calls.find((c) => c.url.startsWith("/v1/contracts/c1/documents"))!;
    expect(upload.url).toBe("/v1/contracts/c1/documents?name=signed.pdf");
    expect(upload.headers["content-type"]).toBe("application/pdf");
    expect(upload.body).toBe(file);
  });

  it("offers no changes to a role that only reads", async () => {
    renderSignedIn(<ContractsPage />, {
      bindings: [{ role: "tenant_viewer", scope: "tenant/acme" }],
      roles: { tenant_viewer: ["report.read"] },
      routes: (call) => {
        const path = call.url.split("?")[0];
        if (path === "/v1/contracts") return json({ items: [contract("draft", 1)], next_cursor: null });
        if (path === "/v1/contracts/c1") return json(contract("draft", 1));
        return null;
      },
    });
    const create = (await screen.findByRole("button", { name: /New contract/ })) as HTMLButtonElement;
    await waitFor(() => expect(create.title).toBe("needs report.manage on tenant/acme"));
    expect(create.disabled).toBe(true);
    fireEvent.click(await screen.findByRole("button", { name: "Support agreement" }));
    const activate = (await screen.findByRole("button", { name: /Activate/ })) as HTMLButtonElement;
    expect(activate.disabled).toBe(true);
  });
});
