import { act, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";

import { acceptTokens } from "../api";
import { cleanUpAfterEach, fakeSession, FakeWebSocket, RUNTIME, serveSteps } from "./run/testkit";

const session = vi.hoisted(() => ({ current: null as unknown }));
vi.mock("../session", () => ({ useSession: () => session.current }));

import LogsPage, { merge } from "./Logs";

const stored = [
  { log_id: "2", ts: 1000.2, level: "info", msg: "Order priced", step: "PriceOrder", trace_id: "t1" },
  { log_id: "1", ts: 1000.1, level: "error", msg: "mail down", step: "SendConfirmation", trace_id: "t1" },
];

beforeEach(() => {
  session.current = fakeSession(["execution.read", "flow.read"]);
  FakeWebSocket.all = [];
  vi.stubGlobal("WebSocket", FakeWebSocket);
  acceptTokens({ access_token: "tok", expires_in: 3600 });
  window.location.hash = "#/logs?trace=t1";
});

cleanUpAfterEach();

function serve() {
  return serveSteps((call) => {
    if (call.url.startsWith(`${RUNTIME}/logs`)) {
      const q = new URL(call.url, "http://x").searchParams;
      const items = stored.filter(
        (l) => (!q.get("level") || l.level === q.get("level")) && (!q.get("trace_id") || l.trace_id === q.get("trace_id")),
      );
      return { body: { items, next_cursor: null } };
    }
    return undefined;
  });
}

const shown = () => screen.getAllByRole("button", { expanded: false }).map((b) => b.textContent);

describe("logs", () => {
  it("shows stored lines, tails live ones on top, and pauses", async () => {
    const { calls } = serve();
    render(<LogsPage params={{}} />);
    await screen.findByText("Order priced");
    expect(calls.some((c) => c.url.startsWith(`${RUNTIME}/logs?trace_id=t1&limit=100`))).toBe(true);
    expect((screen.getByLabelText("Trace id") as HTMLInputElement).value).toBe("t1");

    await waitFor(() => expect(FakeWebSocket.all.length).toBe(1));
    const socket = FakeWebSocket.last();
    expect(socket.url).toBe(`ws://${window.location.host}${RUNTIME}/ws`);
    act(() => socket.accept());
    expect(socket.sent[0]).toEqual({ type: "auth", token: "tok" });
    await waitFor(() => expect(socket.sent[1]).toEqual({ type: "tail", data: { subscriptionId: "logs", trace_id: "t1" } }));
    expect(screen.getByRole("status").textContent).toContain("Live");

    act(() =>
      socket.receive({
        streamName: "__logs",
        subscriptionId: "logs",
        event: { type: "log", data: { log_id: "3", ts: 1000.3, level: "warn", msg: "flagged", step: "Audit", trace_id: "t1" } },
      }),
    );
    expect(shown()[0]).toContain("flagged");
    expect(shown()).toHaveLength(3);

    fireEvent.click(screen.getByRole("button", { name: "Pause" }));
    act(() =>
      socket.receive({
        subscriptionId: "logs",
        event: { type: "log", data: { log_id: "4", ts: 1000.4, level: "info", msg: "held back", trace_id: "t1" } },
      }),
    );
    expect(screen.queryByText("held back")).toBeNull();
    fireEvent.click(screen.getByRole("button", { name: "Resume (1 new)" }));
    expect(shown()[0]).toContain("held back");

    // a line opens to its JSON
    fireEvent.click(screen.getByText("mail down"));
    expect(screen.getByLabelText("Log line mail down").textContent).toContain('"step": "SendConfirmation"');
  });

  it("applies the filters to the stored query and the tail", async () => {
    const { calls } = serve();
    render(<LogsPage params={{}} />);
    await screen.findByText("Order priced");
    await waitFor(() => expect(FakeWebSocket.all.length).toBe(1));
    const socket = FakeWebSocket.last();
    act(() => socket.accept());
    fireEvent.change(screen.getByLabelText("Level"), { target: { value: "error" } });
    await screen.findByText("mail down");
    expect(screen.queryByText("Order priced")).toBeNull();
    expect(calls.some((c) => c.url.includes("level=error"))).toBe(true);
    await waitFor(() =>
      expect(socket.sent[socket.sent.length - 1]).toEqual({
        type: "tail",
        data: { subscriptionId: "logs", level: "error", trace_id: "t1" },
      }),
    );
    // a live line the filters do not keep stays out
    act(() =>
      socket.receive({ subscriptionId: "logs", event: { type: "log", data: { log_id: "9", ts: 2000, level: "info", msg: "noise" } } }),
    );
    expect(screen.queryByText("noise")).toBeNull();
  });

  it("merges live and stored lines once each, newest first", () => {
    const live = [{ log_id: "2", ts: 1000.2, msg: "dup" }, { log_id: "5", ts: 999, msg: "old live" }];
    const lines = merge(live, stored, { level: "", step: "", trace: "" });
    expect(lines.map((l) => l.log_id)).toEqual(["2", "1", "5"]);
  });
});
