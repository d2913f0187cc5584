import { act, cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";

import type { FlowGraph, FlowLayout } from "./graph";

const R = "/v1/projects/orders/envs/dev";
let allowed = new Set<string>();

vi.mock("../../session", () => ({
  useSession: () => ({
    state: "signed-in",
    place: { tenant: "local", project: "orders", env: "dev" },
    runtime: R,
    can: (action: string) => allowed.has(action),
  }),
}));

// React Flow measures the DOM; jsdom does not lay anything out.
class ResizeObserverStub {
  observe() {}
  unobserve() {}
  disconnect() {}
}

class DOMMatrixReadOnlyStub {
  m22: number;
  constructor(transform?: string) {
    const scale = transform?.match(/scale\(([\d.]+)\)/)?.[1];
    this.m22 = scale === undefined ? 1 : Number(scale);
  }
}

const GRAPH: FlowGraph = {
  name: "orders",
  nodes: [
    {
      id: "CreateOrder",
      name: "CreateOrder",
      type: "api",
      file: "steps/create_order_step.py",
      description: "Accepts an order",
      subscribes: [],
      emits: [{ topic: "order.created", label: null, conditional: false }],
      virtualEmits: [],
      virtualSubscribes: [],
      path: "/orders",
      method: "POST",
      cron: null,
    },
    {
      id: "PriceOrder",
      name: "PriceOrder",
      type: "event",
      file: "steps/price_order_step.py",
      description: null,
      subscribes: ["order.created"],
      emits: [{ topic: "order.flagged", label: "over limit", conditional: true }],
      virtualEmits: [],
      virtualSubscribes: [],
      path: null,
      method: null,
      cron: null,
    },
    {
      id: "Review",
      name: "Review",
      type: "noop",
      file: "steps/review_step.py",
      description: null,
      subscribes: [],
      emits: [],
      virtualEmits: [],
      virtualSubscribes: ["order.flagged"],
      path: null,
      method: null,
      cron: null,
    },
  ],
  edges: [
    {
      id: "CreateOrder|order.created|PriceOrder",
      source: "CreateOrder",
      target: "PriceOrder",
      topic: "order.created",
      label: null,
      conditional: false,
      virtual: false,
    },
    {
      id: "PriceOrder|order.flagged|Review|virtual",
      source: "PriceOrder",
      target: "Review",
      topic: "order.flagged",
      label: "over limit",
      conditional: true,
      virtual: true,
    },
  ],
};

const NO_LAYOUT: FlowLayout = {
  flow: "orders",
  nodes: {},
  viewport: null,
  version: 0,
  updated_at: null,
  updated_by: null,
};

type Call = { url: string; method: string; headers: Record<string, string>; body: unknown };

function serve(put: (call: Call) => Response = () => Response.json({ ...NO_LAYOUT, version: 1 })) {
  const calls: Call[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string, init: RequestInit) => {
      const call = {
        url,
        method: init.method ?? "GET",
        headers: init.headers as Record<string, string>,
        body: init.body ? JSON.parse(String(init.body)) : undefined,
      };
      calls.push(call);
      if (call.method === "PUT") return put(call);
      if (url === `${R}/flows/orders`) return Response.json(GRAPH);
      if (url === `${R}/flows/orders/layout`) return Response.json(NO_LAYOUT);
      if (url.startsWith(`${R}/steps`)) {
        return Response.json({
          items: [
            {
              name: "CreateOrder",
              type: "api",
              flows: ["orders"],
              body_schema: { type: "object", title: "NewOrder" },
              input_schema: null,
              response_schemas: {},
              timeout: 30,
              concurrency: 10,
              queue: null,
            },
          ],
          next_cursor: null,
        });
      }
      if (url.startsWith(`${R}/traces?`)) return Response.json({ items: [], next_cursor: null });
      return Response.json({ error: { code: "not_found", message: url, details: null, correlation_id: "c" } }, { status: 404 });
    }),
  );
  return calls;
}

async function renderCanvas() {
  const { default: FlowCanvasPage } = await import("../FlowCanvas");
  const view = render(<FlowCanvasPage params={{ flow: "orders" }} />);
  await screen.findByText("CreateOrder", { selector: ".step-name" });
  return view;
}

beforeEach(() => {
  vi.stubGlobal("ResizeObserver", ResizeObserverStub);
  vi.stubGlobal("DOMMatrixReadOnly", DOMMatrixReadOnlyStub);
  allowed = new Set(["flow.read", "flow.edit", "execution.read"]);
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("FlowCanvas", () => {
  it("draws every step with its type badge, and every edge", async () => {
    serve();
    const { container } = await renderCanvas();

    for (const [name, badge] of [
      ["CreateOrder", "API"],
      ["PriceOrder", "EVENT"],
      ["Review", "NOOP"],
    ]) {
      const node = screen.getByText(name, { selector: ".step-name" }).closest(".step-node")!;
      expect(within(node as HTMLElement).getByText(badge)).toBeTruthy();
    }
    expect(container.querySelector(".step-node.step-api")).not.toBeNull();
    // jsdom measures no handle, so React Flow draws no edge path here (the browser run does);
    // the edges' arrow markers show both kinds reached the canvas
    await waitFor(() => {
      const markers = Array.from(container.querySelectorAll("marker"), (m) => m.id);
      expect(markers.some((id) => id.includes("type=arrowclosed"))).toBe(true);
      expect(markers.some((id) => id.includes("type=arrow&"))).toBe(true);
    });
    expect(screen.getByText("Automatic layout (none saved yet).")).toBeTruthy();
  });

  it("saves the layout with If-Match and the position of every step", async () => {
    const calls = serve();
    await renderCanvas();

    await act(async () => fireEvent.click(screen.getByRole("button", { name: "Save layout" })));

    const put = calls.find((c) => c.method === "PUT")!;
    expect(put.url).toBe(`${R}/flows/orders/layout`);
    expect(put.headers["if-match"]).toBe('"0"');
    expect(put.headers["x-tenant-id"]).toBe("local");
    expect(Object.keys((put.body as { nodes: object }).nodes).sort()).toEqual([
      "CreateOrder",
      "PriceOrder",
      "Review",
    ]);
    await screen.findByText(/Layout saved for everyone in this project \(version 1\)/);
  });

  it("offers to save over a layout someone else saved meanwhile", async () => {
    let first = true;
    const calls = serve(() => {
      if (first) {
        first = false;
        return Response.json(
          { error: { code: "precondition_failed", message: "changed", details: { version: 3 }, correlation_id: "c" } },
          { status: 412 },
        );
      }
      return Response.json({ ...NO_LAYOUT, version: 4 });
    });
    await renderCanvas();

    await act(async () => fireEvent.click(screen.getByRole("button", { name: "Save layout" })));
    await screen.findByText(/412 precondition_failed/);
    await act(async () => fireEvent.click(screen.getByRole("button", { name: "Save mine over it" })));

    const puts = calls.filter((c) => c.method === "PUT");
    expect(puts).toHaveLength(2);
    expect(puts[1].headers).not.toHaveProperty("if-match");
    await screen.findByText(/version 4/);
  });

  it("disables saving, with the reason, for a role without flow.edit", async () => {
    allowed = new Set(["flow.read"]);
    serve();
    await renderCanvas();

    const button = screen.getByRole("button", { name: /Save layout/ }) as HTMLButtonElement;
    expect(button.disabled).toBe(true);
    expect(button.textContent).toContain("do not include flow.edit");
  });

  it("opens a step's panel with its config and schemas when the step is clicked", async () => {
    serve();
    const { container } = await renderCanvas();

    const node = container.querySelector('.react-flow__node[data-id="CreateOrder"]')!;
    await act(async () => fireEvent.click(node));

    const panel = await screen.findByRole("dialog", { name: "API · CreateOrder" });
    expect(within(panel).getByText("POST /orders")).toBeTruthy();
    expect(within(panel).getByText("order.created")).toBeTruthy();
    await within(panel).findByText("Body");
    expect(within(panel).getByLabelText("Body schema of CreateOrder").textContent).toContain("NewOrder");
    await within(panel).findByText(/No executions of this step in the latest 0 traces/);

    await act(async () => fireEvent.click(within(panel).getByRole("button", { name: "Close" })));
    expect(screen.queryByRole("dialog")).toBeNull();
  });

  it("opens a step from the step picker too (keyboard and phone friendly)", async () => {
    serve();
    await renderCanvas();

    await act(async () => fireEvent.change(screen.getByLabelText("Step"), { target: { value: "Review" } }));

    const panel = await screen.findByRole("dialog", { name: "NOOP · Review" });
    expect(within(panel).getByText("Virtually subscribes")).toBeTruthy();
  });
});
