import { fireEvent, render, screen } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";

import { contractProblems, DECIMAL, nextStatuses, Transitions } from "./contracts";

function buttons(): string[] {
  return screen.queryAllByRole("button").map((b) => b.textContent ?? "");
}

describe("contract status transitions", () => {
  it("knows the allowed next states", () => {
    expect(nextStatuses("draft")).toEqual(["active"]);
    expect(nextStatuses("active")).toEqual(["expired", "terminated"]);
    expect(nextStatuses("expired")).toEqual([]);
    expect(nextStatuses("terminated")).toEqual([]);
    expect(nextStatuses("bogus")).toEqual([]);
  });

  it("offers only Activate for a draft", () => {
    const onMove = vi.fn();
    render(<Transitions status="draft" allowed onMove={onMove} />);
    expect(buttons()).toEqual(["Activate"]);
    fireEvent.click(screen.getByRole("button", { name: "Activate" }));
    expect(onMove).toHaveBeenCalledWith("active");
  });

  it("offers expire and terminate for an active contract, each after a confirmation", () => {
    const onMove = vi.fn();
    render(<Transitions status="active" allowed onMove={onMove} />);
    expect(buttons()).toEqual(["Mark expired", "Terminate"]);
    expect(buttons()).not.toContain("Activate");
    fireEvent.click(screen.getByRole("button", { name: "Terminate" }));
    expect(onMove).not.toHaveBeenCalled();
    fireEvent.click(screen.getByRole("button", { name: "Yes, terminate" }));
    expect(onMove).toHaveBeenCalledWith("terminated");
  });

  it("lets a confirmation be cancelled", () => {
    const onMove = vi.fn();
    render(<Transitions status="active" allowed onMove={onMove} />);
    fireEvent.click(screen.getByRole("button", { name: "Mark expired" }));
    fireEvent.click(screen.getByRole("button", { name: "Cancel" }));
    expect(onMove).not.toHaveBeenCalled();
    expect(buttons()).toEqual(["Mark expired", "Terminate"]);
  });

  it("offers nothing from a final state", () => {
    for (const status of ["expired", "terminated"]) {
      const { unmount } = render(<Transitions status={status} allowed onMove={() => undefined} />);
      expect(screen.queryAllByRole("button")).toHaveLength(0);
      expect(screen.getByText(/final state/)).toBeTruthy();
      unmount();
    }
  });

  it("disables the buttons with the reason when the role may not change contracts", () => {
    const onMove = vi.fn();
    render(<Transitions status="draft" allowed={false} why="needs report.manage on tenant/acme" onMove={onMove} />);
    const button = screen.getByRole("button", { name: /Activate/ }) as HTMLButtonElement;
    expect(button.disabled).toBe(true);
    expect(button.title).toBe("needs report.manage on tenant/acme");
    expect(button.textContent).toContain("needs report.manage");
    fireEvent.click(button);
    expect(onMove).not.toHaveBeenCalled();
  });
});

describe("contract form rules", () => {
  it("takes values as exact decimal strings", () => {
    for (const good of ["0", "12500", "12500.00", "0.5", "999999999999999999.123456"]) expect(DECIMAL.test(good)).toBe(true);
    for (const bad of ["", "-1", "+1", "01", "1e3", "1.", ".5", "1.1234567", "1,5", "1000000000000000000"])
      expect(DECIMAL.test(bad)).toBe(false);
  });

  it("names each wrong field", () => {
    const problems = contractProblems({
      title: " ",
      counterparty: "ACME",
      value: "12,5",
      currency: "eur",
      start_date: "2025-02-01",
      end_date: "2025-01-01",
    });
    expect(Object.keys(problems).sort()).toEqual(["currency", "end_date", "title", "value"]);
    expect(
      contractProblems({
        title: "Support",
        counterparty: "ACME",
        value: "12500.00",
        currency: "EUR",
        start_date: "2025-01-01",
        end_date: "",
      }),
    ).toEqual({});
  });
});
