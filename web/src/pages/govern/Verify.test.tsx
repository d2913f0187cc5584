import { fireEvent, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import { json, mockFetch } from "./testing";
import { VerifyPanel } from "./Verify";

afterEach(() => vi.unstubAllGlobals());

const CHECKPOINT = {
  chain: "tenant/acme",
  size: 42,
  root: "o8wCqF1rootbase64=",
  note: "coditect.cfp/local/tenant/acme\n42\no8wCqF1rootbase64=\n\n— coditect.cfp/local/audit Ab3dE\n",
  origin: "coditect.cfp/local/tenant/acme",
  key: { name: "coditect.cfp/local/audit", version: 1 },
  head: { seq: 41 },
  created_at: "2025-02-01T10:00:00Z",
  anchors: { files: "anchors/00000000000000000042.note" },
  timestamp_error: null,
};

describe("audit verification", () => {
  it("posts {} to the tenant's chain and shows an intact verdict with the latest checkpoint", async () => {
    const calls = mockFetch(() =>
      json({ ok: true, checked: 42, first_bad_seq: null, reason: null, latest_checkpoint: CHECKPOINT }),
    );
    render(<VerifyPanel tenant="acme" allowed />);
    fireEvent.click(screen.getByRole("button", { name: "Verify" }));
    await screen.findByText("✓ The chain is intact");
    expect(calls).toHaveLength(1);
    expect(calls[0].url).toBe("/v1/audit/verify");
    expect(calls[0].method).toBe("POST");
    expect(calls[0].body).toEqual({});
    expect(calls[0].headers["x-tenant-id"]).toBe("acme");
    const verdict = screen.getByRole("status");
    expect(verdict.textContent).toContain("42 records");
    expect(verdict.textContent).toContain("ok");
    expect(verdict.textContent).not.toContain("First bad seq");
    expect(verdict.textContent).toContain("Tree size42");
    expect(verdict.textContent).toContain("o8wCqF1rootbase64=");
    expect(verdict.textContent).toContain("coditect.cfp/local/audit (version 1)");
    expect(verdict.textContent).toContain("files");
  });

  it("names the first bad seq and the reason of a broken chain", async () => {
    mockFetch(() =>
      json({
        ok: false,
        checked: 41,
        first_bad_seq: 17,
        reason: "seq 17: the record's hash does not match its contents",
        latest_checkpoint: null,
      }),
    );
    render(<VerifyPanel tenant="acme" allowed />);
    fireEvent.click(screen.getByRole("button", { name: "Verify" }));
    await screen.findByText("✗ The chain is broken");
    const verdict = screen.getByRole("status");
    expect(verdict.textContent).toContain("failed");
    expect(verdict.textContent).toContain("First bad seq17");
    expect(verdict.textContent).toContain("the record's hash does not match its contents");
    expect(verdict.textContent).toContain("41 records");
    expect(verdict.textContent).toContain("None signed yet");
  });

  it("sends a seq range when one is given, and the system chain without a tenant", async () => {
    const calls = mockFetch(() => json({ ok: true, checked: 5, first_bad_seq: null, reason: null, latest_checkpoint: null }));
    render(<VerifyPanel tenant={null} allowed />);
    fireEvent.change(screen.getByLabelText("From seq (optional)"), { target: { value: "10" } });
    fireEvent.change(screen.getByLabelText("To seq (optional)"), { target: { value: "14" } });
    fireEvent.click(screen.getByRole("button", { name: "Verify" }));
    await screen.findByText("✓ The chain is intact");
    expect(calls[0].body).toEqual({ from_seq: 10, to_seq: 14 });
    expect(calls[0].headers["x-tenant-id"]).toBeUndefined();
  });

  it("shows the API's error, with its code", async () => {
    mockFetch(() =>
      json(
        { error: { code: "forbidden", message: "audit.read is not allowed", details: null, correlation_id: "c-1" } },
        403,
      ),
    );
    render(<VerifyPanel tenant="acme" allowed />);
    fireEvent.click(screen.getByRole("button", { name: "Verify" }));
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain("403 forbidden");
    expect(alert.textContent).toContain("audit.read is not allowed");
    expect(alert.textContent).toContain("c-1");
    expect(screen.queryByRole("status")).toBeNull();
  });

  it("is disabled with the reason for a role without audit.read", () => {
    render(<VerifyPanel tenant="acme" allowed={false} why="needs audit.read on tenant/acme" />);
    const button = screen.getByRole("button", { name: /Verify/ }) as HTMLButtonElement;
    expect(button.disabled).toBe(true);
    expect(button.title).toBe("needs audit.read on tenant/acme");
  });
});
