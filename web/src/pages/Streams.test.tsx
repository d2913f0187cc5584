import { act, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";

import { acceptTokens } from "../api";
import { cleanUpAfterEach, fakeSession, FakeWebSocket, routeFetch, RUNTIME } from "./run/testkit";

const session = vi.hoisted(() => ({ current: null as unknown }));
vi.mock("../session", () => ({ useSession: () => session.current }));

import StreamsPage from "./Streams";

beforeEach(() => {
  session.current = fakeSession(["state.read"]);
  FakeWebSocket.all = [];
  vi.stubGlobal("WebSocket", FakeWebSocket);
  acceptTokens({ access_token: "tok", expires_in: 3600 });
  window.location.hash = "#/streams";
});

cleanUpAfterEach();

describe("streams", () => {
  it("finds the stream names, reads a group and keeps it live", async () => {
    const { calls } = routeFetch((call) => {
      const path = call.url.split("?")[0];
      if (path === `${RUNTIME}/streams`) {
        return { body: { items: [{ name: "order_status", schema: null, guarded: false }], next_cursor: null } };
      }
      if (path === `${RUNTIME}/streams/order_status/c1`) {
        return { body: { items: [{ id: "o1", status: "ready" }], next_cursor: null } };
      }
      return undefined;
    });
    render(<StreamsPage params={{}} />);
    await waitFor(() => expect(screen.getByLabelText("Stream").tagName).toBe("SELECT"));
    expect((screen.getByLabelText("Stream") as HTMLSelectElement).value).toBe("order_status");
    fireEvent.change(screen.getByLabelText("Group id"), { target: { value: "c1" } });
    fireEvent.click(screen.getByRole("button", { name: "Watch" }));
    await screen.findByText("o1");
    expect(calls.some((c) => c.url.startsWith(`${RUNTIME}/streams/order_status/c1?limit=500`))).toBe(true);

    await waitFor(() => expect(FakeWebSocket.all.length).toBe(1));
    const socket = FakeWebSocket.last();
    act(() => socket.accept());
    await waitFor(() =>
      expect(socket.sent[1]).toEqual({
        type: "join",
        data: { subscriptionId: "stream", streamName: "order_status", groupId: "c1" },
      }),
    );
    act(() =>
      socket.receive({
        streamName: "order_status",
        groupId: "c1",
        subscriptionId: "stream",
        event: { type: "sync", data: [{ id: "o1", status: "ready" }] },
      }),
    );
    act(() =>
      socket.receive({ streamName: "order_status", groupId: "c1", event: { type: "create", data: { id: "o2", status: "new" } } }),
    );
    await screen.findByText("o2");
    expect(screen.getByText(/^create /)).toBeTruthy();
    act(() => socket.receive({ streamName: "order_status", groupId: "c1", event: { type: "delete", data: { id: "o1" } } }));
    expect(screen.queryByText("o1")).toBeNull();

    fireEvent.click(screen.getByRole("button", { name: "Stop" }));
    expect(socket.sent[socket.sent.length - 1]).toEqual({
      type: "leave",
      data: { subscriptionId: "stream", streamName: "order_status", groupId: "c1" },
    });
  });
});
