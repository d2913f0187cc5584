import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import { KeyPanel } from "./Keys";
import { OneTimeSecret } from "./Secret";
import { json, mockFetch } from "./testing";

const SECRET = "cfp_sk_0123456789abcdef_SECRETsecretSECRETsecret";
const ROTATED = "cfp_sk_fedcba9876543210_ROTATEDrotatedROTATED";

afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

describe("the one-time secret", () => {
  it("shows the secret with a warning and copies it", async () => {
    const writeText = vi.fn(async () => undefined);
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    const onDone = vi.fn();
    render(<OneTimeSecret secret={SECRET} title="New API key k1" onDone={onDone} />);
    expect((screen.getByLabelText("Secret") as HTMLInputElement).value).toBe(SECRET);
    expect((screen.getByLabelText("Secret") as HTMLInputElement).readOnly).toBe(true);
    expect(screen.getByText(/only time the key is shown/)).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Copy" }));
    await waitFor(() => expect(screen.getByText("Copied to the clipboard.")).toBeTruthy());
    expect(writeText).toHaveBeenCalledWith(SECRET);
    fireEvent.click(screen.getByRole("button", { name: /Done/ }));
    expect(onDone).toHaveBeenCalled();
  });

  it("falls back to selecting the secret when there is no clipboard", async () => {
    Object.defineProperty(navigator, "clipboard", { value: undefined, configurable: true });
    render(<OneTimeSecret secret={SECRET} title="New API key" onDone={() => undefined} />);
    fireEvent.click(screen.getByRole("button", { name: "Copy" }));
    await waitFor(() => expect(screen.getByText(/copy it by hand|Copied/)).toBeTruthy());
    expect(document.activeElement).toBe(screen.getByLabelText("Secret"));
  });
});

describe("API keys of a service account", () => {
  it("shows a new key's secret once, and never again after Done", async () => {
    const keys: { key_id: string; status: string }[] = [];
    const calls = mockFetch((call) => {
      const url = call.url;
      if (url === "/v1/service-accounts/sa1/keys" && call.method === "GET")
        return json({
          items: keys.map((k) => ({
            ...k,
            service_account_id: "sa1",
            created_at: "2025-01-01T00:00:00Z",
            expires_at: null,
            last_used_at: null,
          })),
          next_cursor: null,
        });
      if (url === "/v1/service-accounts/sa1/keys" && call.method === "POST") {
        keys.push({ key_id: "k1", status: "active" });
        return json(
          { key: SECRET, api_key: { key_id: "k1", service_account_id: "sa1", status: "active", created_at: "2025-01-01T00:00:00Z", expires_at: null, last_used_at: null } },
          201,
        );
      }
      if (url === "/v1/service-accounts/sa1/keys/k1/rotate" && call.method === "POST") {
        keys.push({ key_id: "k2", status: "active" });
        return json(
          { key: ROTATED, api_key: { key_id: "k2", service_account_id: "sa1", status: "active", created_at: "2025-01-02T00:00:00Z", expires_at: null, last_used_at: null } },
          201,
        );
      }
      return json({ error: { code: "not_found", message: url, details: null, correlation_id: "c" } }, 404);
    });

    const { container } = render(<KeyPanel tenant="acme" account={{ id: "sa1", name: "ci" }} allowed />);
    await screen.findByText("No API keys yet.");
    fireEvent.click(screen.getByRole("button", { name: "Create API key" }));

    const box = (await screen.findByLabelText("Secret")) as HTMLInputElement;
    expect(box.value).toBe(SECRET);
    const post = calls.find((c) => c.method === "POST")!;
    expect(post.headers["x-tenant-id"]).toBe("acme");
    await screen.findByText("k1"); // the list shows the key's id...
    const table = screen.getByRole("region", { name: "API keys of ci" });
    expect(table.textContent).not.toContain(SECRET); // ...never its secret

    fireEvent.click(screen.getByRole("button", { name: /Done/ }));
    expect(screen.queryByLabelText("Secret")).toBeNull();
    expect(container.innerHTML).not.toContain(SECRET);

    // rotating shows the new secret, once
    fireEvent.click(screen.getByRole("button", { name: "Rotate" }));
    expect(((await screen.findByLabelText("Secret")) as HTMLInputElement).value).toBe(ROTATED);
    expect(container.innerHTML).not.toContain(SECRET);
    fireEvent.click(screen.getByRole("button", { name: /Done/ }));
    expect(container.innerHTML).not.toContain(ROTATED);
  });

  it("disables key creation with the reason when the role may not manage users", async () => {
    mockFetch(() => json({ items: [], next_cursor: null }));
    render(<KeyPanel tenant="acme" account={{ id: "sa1", name: "ci" }} allowed={false} why="needs user.manage on tenant/acme" />);
    const button = screen.getByRole("button", { name: /Create API key/ }) as HTMLButtonElement;
    expect(button.disabled).toBe(true);
    expect(button.title).toBe("needs user.manage on tenant/acme");
    await screen.findByText("No API keys yet.");
  });
});
