import { fireEvent, render, screen } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";

import { cleanUpAfterEach, fakeSession, RUNTIME, serveSteps } from "./run/testkit";

const session = vi.hoisted(() => ({ current: null as unknown }));
vi.mock("../session", () => ({ useSession: () => session.current }));

import EmitPage from "./Emit";

beforeEach(() => {
  session.current = fakeSession(["event.publish", "flow.read"]);
  window.location.hash = "#/emit";
});

cleanUpAfterEach();

function serve() {
  return serveSteps((call) => {
    if (call.url === `${RUNTIME}/events` && call.method === "POST") {
      return { status: 202, body: { event_id: "ev1", trace_id: "tr1" } };
    }
    return undefined;
  });
}

describe("emit an event", () => {
  it("lists the subscribed topics and validates the data before sending", async () => {
    const { calls } = serve();
    render(<EmitPage params={{}} />);
    const topic = (await screen.findByLabelText("Topic")) as HTMLSelectElement;
    expect([...topic.options].map((o) => o.value)).toEqual(["order.created", "order.ready"]);
    expect(screen.getByText(/checks its input/)).toBeTruthy();

    // starts from the subscriber's schema, at the least quantity it allows; 0 is not > 0
    const data = screen.getByLabelText("Data (JSON)") as HTMLTextAreaElement;
    expect(JSON.parse(data.value)).toEqual({ orderId: "", quantity: 1 });
    fireEvent.change(data, { target: { value: '{"orderId": "", "quantity": 0}' } });
    expect(screen.getByText("Does not match PriceOrder's input schema:")).toBeTruthy();
    expect(screen.getByText("must be > 0")).toBeTruthy();
    const emit = () => screen.getByRole("button", { name: /Emit/ }) as HTMLButtonElement;
    expect(emit().disabled).toBe(true);

    fireEvent.change(data, { target: { value: '{"orderId": 1, "extra": true}' } });
    const items = screen.getAllByRole("listitem").map((li) => li.textContent);
    expect(items).toEqual(["quantity is required", "orderId must be string, not integer"]);

    fireEvent.change(data, { target: { value: "{" } });
    expect(screen.getByText(/Not valid JSON/)).toBeTruthy();
    expect(emit().disabled).toBe(true);

    fireEvent.change(data, { target: { value: '{"orderId": "o1", "quantity": 2}' } });
    expect(screen.getByText(/Matches PriceOrder's input schema/)).toBeTruthy();
    fireEvent.change(screen.getByLabelText(/Event id/), { target: { value: "my-id" } });
    fireEvent.click(emit());
    await screen.findByText(/Accepted on/);
    const sent = calls.find((c) => c.url === `${RUNTIME}/events`)!;
    expect(sent.body).toEqual({ topic: "order.created", data: { orderId: "o1", quantity: 2 }, id: "my-id" });
    expect(sent.headers["x-tenant-id"]).toBe("local");
    expect(screen.getByRole("link", { name: "Open the trace" }).getAttribute("href")).toBe("#/traces/tr1");
    expect(screen.getByRole("link", { name: "Logs of this trace" }).getAttribute("href")).toBe("#/logs?trace=tr1");
  });

  it("offers a message group for fifo subscribers and sends any JSON to unchecked ones", async () => {
    const { calls } = serve();
    render(<EmitPage params={{}} />);
    fireEvent.change(await screen.findByLabelText("Topic"), { target: { value: "order.ready" } });
    expect(screen.getByText(/no input schema/)).toBeTruthy();
    fireEvent.change(screen.getByLabelText("Data (JSON)"), { target: { value: "[1, 2]" } });
    fireEvent.change(screen.getByLabelText(/Message group id/), { target: { value: "c1" } });
    fireEvent.click(screen.getByRole("button", { name: "Emit" }));
    await screen.findByText(/Accepted on/);
    expect(calls[calls.length - 1].body).toEqual({ topic: "order.ready", data: [1, 2], messageGroupId: "c1" });
  });

  it("disables Emit without event.publish", async () => {
    session.current = fakeSession(["flow.read"]);
    serve();
    render(<EmitPage params={{}} />);
    await screen.findByLabelText("Topic");
    expect(screen.getByRole("button", { name: /Emit/ }).textContent).toContain("do not include event.publish");
  });
});
