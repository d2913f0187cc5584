import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";

import { cleanUpAfterEach, fakeSession, routeFetch, serveSteps } from "./run/testkit";

const session = vi.hoisted(() => ({ current: null as unknown }));
vi.mock("../session", () => ({ useSession: () => session.current }));

import TesterPage, { invoke } from "./Tester";

beforeEach(() => {
  session.current = fakeSession(["step.invoke", "flow.read"]);
  window.location.hash = "#/tester";
});

cleanUpAfterEach();

function serve() {
  return serveSteps((call) => {
    if (call.url === "/p/local/orders/dev/orders" && call.method === "POST") {
      return {
        status: 201,
        body: { orderId: "ord_1", traceId: "trace123456789abc" },
        headers: { "x-trace-id": "trace123456789abc", "x-response-time-ms": "0.7" },
      };
    }
    if (call.url.startsWith("/p/local/orders/dev/orders/")) return { status: 404, body: { error: "no such order" } };
    return undefined;
  });
}

describe("the endpoint tester", () => {
  it("builds the body from the schema form and shows the answer", async () => {
    const { calls } = serve();
    render(<TesterPage params={{}} />);
    const step = (await screen.findByLabelText("API step")) as HTMLSelectElement;
    expect(step.value).toBe("CreateOrder");
    expect([...step.options].map((o) => o.textContent)).toEqual(["POST /orders (CreateOrder)", "GET /orders/:id (GetOrder)"]);

    // the form starts with one item (minItems 1) at the least quantity allowed; 0 breaks it
    expect(screen.queryByText(/does not match the step's schema/)).toBeNull();
    fireEvent.change(screen.getByLabelText(/^quantity/), { target: { value: "0" } });
    expect(screen.getByText(/does not match the step's schema/)).toBeTruthy();
    fireEvent.change(screen.getByLabelText(/^customerId/), { target: { value: "c1" } });
    fireEvent.change(screen.getByLabelText(/^sku/), { target: { value: "A-1" } });
    fireEvent.change(screen.getByLabelText(/^quantity/), { target: { value: "2" } });
    fireEvent.change(screen.getByLabelText(/^unitPrice/), { target: { value: "9.5" } });
    expect(screen.queryByText(/does not match the step's schema/)).toBeNull();
    expect(screen.getByText("/p/local/orders/dev/orders")).toBeTruthy();

    fireEvent.click(screen.getByRole("button", { name: "Send" }));
    await screen.findByRole("region", { name: "Response headers" });
    const sent = calls.find((c) => c.url === "/p/local/orders/dev/orders")!;
    expect(sent.method).toBe("POST");
    expect(sent.headers["x-tenant-id"]).toBe("local");
    expect(sent.headers["content-type"]).toBe("application/json");
    expect(sent.body).toEqual({ customerId: "c1", fail: false, items: [{ sku: "A-1", quantity: 2, unitPrice: 9.5 }] });

    expect(screen.getByText("201")).toBeTruthy();
    expect(screen.getByTestId("timing").textContent).toMatch(/ms|s$/);
    expect(screen.getByText("x-trace-id")).toBeTruthy();
    expect(screen.getByLabelText("Response body").textContent).toContain('"orderId": "ord_1"');
    expect(screen.getByRole("link", { name: /trace trace1234567/ }).getAttribute("href")).toBe("#/traces/trace123456789abc");
  });

  it("needs the path parameters and sends a GET without a body", async () => {
    const { calls } = serve();
    render(<TesterPage params={{}} />);
    fireEvent.change(await screen.findByLabelText("API step"), { target: { value: "GetOrder" } });
    const sendButton = screen.getByRole("button", { name: /Send/ });
    expect((sendButton as HTMLButtonElement).disabled).toBe(true);
    expect(screen.getByText("To send: fill in id.")).toBeTruthy();
    expect(screen.queryByRole("group", { name: "Body editor" })).toBeNull();

    fireEvent.change(screen.getByLabelText(/^id/), { target: { value: "ord 9" } });
    fireEvent.click(screen.getByRole("button", { name: "Add query parameter" }));
    fireEvent.change(screen.getByLabelText("Name 1"), { target: { value: "verbose" } });
    fireEvent.change(screen.getByLabelText("Value 1"), { target: { value: "yes" } });
    fireEvent.click(screen.getByRole("button", { name: "Send" }));
    await screen.findByText("404");
    const sent = calls[calls.length - 1];
    expect(sent.url).toBe("/p/local/orders/dev/orders/ord%209?verbose=yes");
    expect(sent.method).toBe("GET");
    expect(sent.body).toBeUndefined();
  });

  it("switches to raw JSON and back, refusing JSON that does not parse", async () => {
    const { calls } = serve();
    render(<TesterPage params={{}} />);
    await screen.findByLabelText("API step");
    fireEvent.change(screen.getByLabelText(/^customerId/), { target: { value: "c9" } });
    fireEvent.click(screen.getByRole("button", { name: "Raw JSON" }));
    const raw = screen.getByLabelText("Body (JSON)") as HTMLTextAreaElement;
    expect(JSON.parse(raw.value)).toMatchObject({ customerId: "c9" });

    fireEvent.change(raw, { target: { value: '{"customerId": ' } });
    expect(screen.getByText(/Not valid JSON/)).toBeTruthy();
    expect((screen.getByRole("button", { name: /Send/ }) as HTMLButtonElement).disabled).toBe(true);
    fireEvent.click(screen.getByRole("button", { name: "Form" }));
    expect(screen.getByText(/fix it before going back to the form/)).toBeTruthy();

    fireEvent.change(raw, { target: { value: '{"customerId": "c7", "items": [{"sku": "s", "quantity": 1, "unitPrice": 1}]}' } });
    fireEvent.click(screen.getByRole("button", { name: "Send" }));
    await screen.findByText("201");
    expect(calls[calls.length - 1].body).toEqual({ customerId: "c7", items: [{ sku: "s", quantity: 1, unitPrice: 1 }] });
    fireEvent.click(screen.getByRole("button", { name: "Form" }));
    expect((screen.getByLabelText(/^customerId/) as HTMLInputElement).value).toBe("c7");
  });

  it("times the call and reads text answers", async () => {
    routeFetch(() => ({ status: 500, body: undefined }));
    let t = 100;
    const answer = await invoke({ url: "/p/x", method: "DELETE", body: undefined }, "local", () => (t += 25));
    expect(answer).toMatchObject({ status: 500, ms: 25, json: false, text: "" });
  });

  it("disables Send for a caller without step.invoke", async () => {
    session.current = fakeSession(["flow.read"]);
    serve();
    render(<TesterPage params={{}} />);
    await screen.findByLabelText("API step");
    await waitFor(() => expect(screen.getByRole("button", { name: /Send/ }).hasAttribute("disabled")).toBe(true));
    expect(screen.getByRole("button", { name: /Send/ }).textContent).toContain("do not include step.invoke");
  });
});
