import { render, screen, within } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";

import { cleanUpAfterEach, fakeSession, routeFetch, RUNTIME } from "./run/testkit";

const session = vi.hoisted(() => ({ current: null as unknown }));
vi.mock("../session", () => ({ useSession: () => session.current }));

import TracesPage, { timeline } from "./Traces";

const execution = (step: string, start: number, end: number, status = "ok", error: string | null = null, attempt = 1) => ({
  id: `${step}:${attempt}`,
  step,
  trace_id: "abc123",
  status,
  attempt,
  started_at: start,
  ended_at: end,
  latency_ms: (end - start) * 1000,
  error,
});

beforeEach(() => {
  session.current = fakeSession(["execution.read"]);
  routeFetch((call) => {
    if (call.url.startsWith(`${RUNTIME}/traces?`)) {
      return {
        body: {
          items: [{ trace_id: "abc123", root: "CreateOrder", kind: "api", started_at: 100, correlation_id: "c1" }],
          next_cursor: null,
        },
      };
    }
    if (call.url === `${RUNTIME}/traces/abc123`) {
      return {
        body: {
          trace_id: "abc123",
          root: "CreateOrder",
          kind: "api",
          started_at: 100,
          executions: [
            execution("CreateOrder", 100, 100.01),
            execution("SendConfirmation", 100.02, 100.03, "error", "ConnectionError: mail down"),
            execution("SendConfirmation", 100.05, 100.1, "ok", null, 2),
          ],
        },
      };
    }
    return undefined;
  });
});

cleanUpAfterEach();

describe("traces", () => {
  it("lists the latest traces with links to their timelines", async () => {
    render(<TracesPage params={{}} />);
    const link = await screen.findByRole("link", { name: "abc123" });
    expect(link.getAttribute("href")).toBe("#/traces/abc123");
    expect(screen.getByText("CreateOrder")).toBeTruthy();
  });

  it("draws each execution of a trace on the time axis", async () => {
    render(<TracesPage params={{ trace: "abc123" }} />);
    const table = await screen.findByRole("region", { name: "Executions of this trace" });
    const rows = within(table).getAllByRole("row").slice(1);
    expect(rows).toHaveLength(3);
    expect(rows[1].textContent).toContain("ConnectionError: mail down");
    expect(within(rows[1]).getByText("error").className).toContain("badge");
    expect(within(rows[2]).getByText("2")).toBeTruthy();
    const bars = within(table).getAllByRole("img");
    expect(bars[2].getAttribute("aria-label")).toBe("SendConfirmation, attempt 2: 50 ms");
    expect((bars[2].firstChild as HTMLElement).style.width).toBe("100%");
    expect(parseFloat((bars[0].firstChild as HTMLElement).style.width)).toBeCloseTo(20);
    expect(rows[2].textContent).toContain("+50 ms");
    expect(screen.getByRole("link", { name: "Logs of this trace" }).getAttribute("href")).toBe("#/logs?trace=abc123");
  });

  it("sizes bars by duration, the longest filling the track", () => {
    const axis = timeline([execution("A", 10, 11), execution("B", 11, 13)]);
    expect(axis.span).toBe(3000);
    expect(axis.bars.map((b) => [Math.round(b.width), Math.round(b.ms!)])).toEqual([
      [50, 1000],
      [100, 2000],
    ]);
    // a running execution lasts until now
    const running = timeline([{ ...execution("C", 10, 11), ended_at: null, latency_ms: null }], 14);
    expect(running.bars[0]).toEqual({ width: 100, ms: null });
  });
});
