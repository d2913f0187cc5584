import { fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";

import { cleanUpAfterEach, fakeSession, routeFetch, RUNTIME } from "./run/testkit";

const session = vi.hoisted(() => ({ current: null as unknown }));
vi.mock("../session", () => ({ useSession: () => session.current }));

import DeadLettersPage from "./DeadLetters";

const letter = (id: string, step: string) => ({
  id,
  step,
  topic: "order.flagged",
  event_id: `ev${id}`,
  input: { orderId: `o${id}` },
  trace_id: `tr${id}`,
  attempts: 2,
  error: `ValueError: rejected o${id}`,
  traceback: `Traceback (most recent call last):\n  File "x.py"\nValueError: rejected o${id}\n`,
  failed_at: 1796182972.48,
});

let letters = [letter("7", "AuditFlaggedOrder"), letter("8", "SendConfirmation")];

beforeEach(() => {
  letters = [letter("7", "AuditFlaggedOrder"), letter("8", "SendConfirmation")];
  window.location.hash = "#/dead-letters";
});

cleanUpAfterEach();

function serve() {
  return routeFetch((call) => {
    const path = call.url.split("?")[0];
    if (path === `${RUNTIME}/dead-letters` && call.method === "GET") return { body: { items: letters, next_cursor: null } };
    const one = /\/dead-letters\/([^/]+)$/.exec(path);
    if (one && call.method === "GET") return { body: letters.find((l) => l.id === one[1]) };
    if (path === `${RUNTIME}/dead-letters/replay`) {
      const ids = (call.body as { ids: string[] }).ids;
      letters = letters.filter((l) => !ids.includes(l.id));
      return { status: 202, body: { replayed: ids.length } };
    }
    const replayOne = /\/dead-letters\/([^/]+)\/replay$/.exec(path);
    if (replayOne) {
      letters = letters.filter((l) => l.id !== replayOne[1]);
      return { status: 202, body: { replayed: 1 } };
    }
    return undefined;
  });
}

describe("dead letters", () => {
  it("replays the selected ones and reads the list again", async () => {
    session.current = fakeSession(["execution.read", "execution.replay"]);
    const { calls } = serve();
    render(<DeadLettersPage params={{}} />);
    await screen.findByText("AuditFlaggedOrder");
    const bulk = () => screen.getByRole("button", { name: /Replay selected/ }) as HTMLButtonElement;
    expect(bulk().disabled).toBe(true);
    fireEvent.click(screen.getByLabelText("Select dead letter 7 (AuditFlaggedOrder)"));
    fireEvent.click(screen.getByLabelText("Select dead letter 8 (SendConfirmation)"));
    expect(bulk().textContent).toBe("Replay selected (2)");
    fireEvent.click(bulk());
    await screen.findByText(/Replayed 2 dead letters/);
    const replay = calls.find((c) => c.url.endsWith("/dead-letters/replay"))!;
    expect(replay.method).toBe("POST");
    expect(replay.body).toEqual({ ids: ["7", "8"] });
    expect(replay.headers["x-tenant-id"]).toBe("local");
    await screen.findByText(/No dead letters/);
  });

  it("inspects one in the sheet and replays it", async () => {
    session.current = fakeSession(["execution.read", "execution.replay"]);
    const { calls } = serve();
    render(<DeadLettersPage params={{}} />);
    fireEvent.click(await screen.findByRole("button", { name: "Inspect 7" }));
    const sheet = await screen.findByRole("dialog", { name: "Dead letter 7" });
    await within(sheet).findByLabelText("Traceback");
    expect(within(sheet).getByLabelText("Traceback").textContent).toContain("ValueError: rejected o7");
    expect(within(sheet).getByLabelText("Input of the failed delivery").textContent).toContain('"orderId": "o7"');
    expect(within(sheet).getByRole("link", { name: "tr7" }).getAttribute("href")).toBe("#/traces/tr7");
    fireEvent.click(within(sheet).getByRole("button", { name: "Replay this one" }));
    await screen.findByText(/Replayed 1 dead letter:/);
    expect(calls.some((c) => c.url === `${RUNTIME}/dead-letters/7/replay` && c.method === "POST")).toBe(true);
    await waitFor(() => expect(screen.queryByText("AuditFlaggedOrder")).toBeNull());
    expect(screen.queryByRole("dialog")).toBeNull();
  });

  it("disables replay, saying why, without execution.replay", async () => {
    session.current = fakeSession(["execution.read"]);
    serve();
    render(<DeadLettersPage params={{}} />);
    await screen.findByText("AuditFlaggedOrder");
    const buttons = screen.getAllByRole("button", { name: /Replay/ }) as HTMLButtonElement[];
    expect(buttons.length).toBe(3);
    for (const button of buttons) {
      expect(button.disabled).toBe(true);
      expect(button.textContent).toContain("do not include execution.replay");
    }
  });
});
