import {
  GAP_X,
  NODE_HEIGHT,
  NODE_WIDTH,
  autoLayout,
  edgeKind,
  edgeStyle,
  edgeText,
  layers,
  layoutBody,
  positionsFor,
  stepTrigger,
  toEdge,
  toNodes,
  typeBadge,
} from "./graph";
import type { FlowGraph, GraphEdge, GraphNode } from "./graph";

function step(name: string, extra: Partial<GraphNode> = {}): GraphNode {
  return {
    id: name,
    name,
    type: "event",
    file: `steps/${name}.py`,
    description: null,
    subscribes: [],
    emits: [],
    virtualEmits: [],
    virtualSubscribes: [],
    path: null,
    method: null,
    cron: null,
    ...extra,
  };
}

function edge(source: string, target: string, extra: Partial<GraphEdge> = {}): GraphEdge {
  return {
    id: `${source}|t|${target}`,
    source,
    target,
    topic: `${source}.done`,
    label: null,
    conditional: false,
    virtual: false,
    ...extra,
  };
}

const link = (source: string, target: string) => ({ source, target });

// The orders example as the API answers it (abridged to what the canvas uses).
const ORDERS: FlowGraph = {
  name: "orders",
  nodes: [
    step("AppendCustomerLedger", { subscribes: ["order.ready"] }),
    step("AuditFlaggedOrder", { subscribes: ["order.flagged"] }),
    step("CreateOrder", { type: "api", path: "/orders", method: "POST" }),
    step("GetOrder", { type: "api", path: "/orders/:id", method: "GET" }),
    step("HumanReview", { type: "noop", virtualSubscribes: ["order.flagged"] }),
    step("PriceOrder", { subscribes: ["order.created"] }),
    step("SendConfirmation", { subscribes: ["order.ready"] }),
    step("TrackOrderStatus", { subscribes: ["order.priced"] }),
  ],
  edges: [
    edge("CreateOrder", "PriceOrder", { topic: "order.created" }),
    edge("HumanReview", "AppendCustomerLedger", { label: "approved", virtual: true }),
    edge("HumanReview", "SendConfirmation", { label: "approved", virtual: true }),
    edge("PriceOrder", "TrackOrderStatus", { topic: "order.priced" }),
    edge("PriceOrder", "AuditFlaggedOrder", { label: "over limit", conditional: true }),
    edge("PriceOrder", "HumanReview", { label: "over limit", conditional: true, virtual: true }),
    edge("TrackOrderStatus", "AppendCustomerLedger", { topic: "order.ready" }),
    edge("TrackOrderStatus", "SendConfirmation", { topic: "order.ready" }),
  ],
};

describe("layers", () => {
  it("puts each node one past its longest path from a source", () => {
    const got = layers(["a", "b", "c", "d"], [link("a", "b"), link("b", "c"), link("a", "c"), link("a", "d")]);
    expect(Object.fromEntries(got)).toEqual({ a: 0, b: 1, c: 2, d: 1 });
  });

  it("lays out the orders flow left to right", () => {
    const got = Object.fromEntries(layers(ORDERS.nodes.map((n) => n.id), ORDERS.edges));
    expect(got).toEqual({
      CreateOrder: 0,
      GetOrder: 0,
      PriceOrder: 1,
      TrackOrderStatus: 2,
      AuditFlaggedOrder: 2,
      HumanReview: 2,
      AppendCustomerLedger: 3,
      SendConfirmation: 3,
    });
  });

  it("breaks cycles and ignores self loops and edges to unknown nodes", () => {
    const got = layers(
      ["start", "x", "y", "z"],
      [link("start", "x"), link("x", "y"), link("y", "z"), link("z", "x"), link("y", "y"), link("y", "ghost")],
    );
    expect(Object.fromEntries(got)).toEqual({ start: 0, x: 1, y: 2, z: 3 });
  });

  it("handles a flow that is one cycle, with no source at all", () => {
    const got = layers(["a", "b", "c"], [link("a", "b"), link("b", "c"), link("c", "a")]);
    expect(new Set(got.values())).toEqual(new Set([0, 1, 2]));
  });
});

describe("autoLayout", () => {
  it("places layers in columns and never overlaps two nodes", () => {
    const positions = autoLayout(ORDERS.nodes, ORDERS.edges);
    expect(positions.CreateOrder.x).toBe(0);
    expect(positions.PriceOrder.x).toBe(NODE_WIDTH + GAP_X);
    expect(positions.SendConfirmation.x).toBe(3 * (NODE_WIDTH + GAP_X));
    const boxes = Object.values(positions);
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const apart =
          Math.abs(boxes[i].x - boxes[j].x) >= NODE_WIDTH ||
          Math.abs(boxes[i].y - boxes[j].y) >= NODE_HEIGHT;
        expect(apart).toBe(true);
      }
    }
  });

  it("is deterministic whatever the order of the input", () => {
    const reversed = autoLayout([...ORDERS.nodes].reverse(), [...ORDERS.edges].reverse());
    expect(reversed).toEqual(autoLayout(ORDERS.nodes, ORDERS.edges));
  });

  it("lays out 200 nodes quickly", () => {
    const nodes = Array.from({ length: 200 }, (_, i) => ({ id: `s${String(i).padStart(3, "0")}` }));
    const links = nodes.slice(1).map((n, i) => link(nodes[Math.floor(i / 3)].id, n.id));
    const started = performance.now();
    const positions = autoLayout(nodes, links);
    expect(performance.now() - started).toBeLessThan(500);
    expect(Object.keys(positions)).toHaveLength(200);
    expect(new Set(Object.values(positions).map((p) => `${p.x},${p.y}`)).size).toBe(200);
  });
});

describe("positionsFor", () => {
  it("uses the saved position of a step and the automatic one of the others", () => {
    const positions = positionsFor(ORDERS, { CreateOrder: { x: -500, y: 42 }, Gone: { x: 1, y: 1 } });
    expect(positions.CreateOrder).toEqual({ x: -500, y: 42 });
    expect(positions.PriceOrder).toEqual(autoLayout(ORDERS.nodes, ORDERS.edges).PriceOrder);
    expect(positions).not.toHaveProperty("Gone");
  });
});

describe("edges", () => {
  it("tells the four kinds of edges apart by dash and arrow, not colour alone", () => {
    expect(edgeStyle({ conditional: false, virtual: false })).toMatchObject({
      kind: "real",
      dash: undefined,
      marker: "arrowclosed",
    });
    expect(edgeStyle({ conditional: true, virtual: false })).toMatchObject({
      kind: "conditional",
      dash: "2 5",
      marker: "arrow",
    });
    expect(edgeStyle({ conditional: false, virtual: true })).toMatchObject({
      kind: "virtual",
      dash: "9 6",
      marker: "arrowclosed",
    });
    expect(edgeKind({ conditional: true, virtual: true })).toBe("virtual-conditional");
  });

  it("labels an edge with its label, else its topic, and says when it is conditional", () => {
    expect(edgeText(edge("a", "b", { topic: "t.x" }))).toBe("t.x");
    expect(edgeText(edge("a", "b", { label: "over limit", conditional: true }))).toBe(
      "over limit (conditional)",
    );
  });

  it("turns a graph edge into a styled React Flow edge", () => {
    const drawn = toEdge(ORDERS.edges[5]);
    expect(drawn).toMatchObject({
      id: ORDERS.edges[5].id,
      source: "PriceOrder",
      target: "HumanReview",
      label: "over limit (conditional)",
      className: "flow-edge edge-virtual-conditional",
      markerEnd: { type: "arrow" },
    });
    expect(drawn.style?.strokeDasharray).toBe("9 5 2 5");
    expect(drawn.ariaLabel).toBe("PriceOrder to HumanReview: over limit (conditional) (virtual)");
    expect(toEdge(ORDERS.edges[0]).style).not.toHaveProperty("strokeDasharray");
  });
});

describe("nodes", () => {
  it("carries the step, its kind and a label naming the type in text", () => {
    const [node] = toNodes({ ...ORDERS, nodes: [ORDERS.nodes[2]] }, { CreateOrder: { x: 5, y: 6 } });
    expect(node).toMatchObject({
      id: "CreateOrder",
      type: "step",
      position: { x: 5, y: 6 },
      data: { kind: "api" },
      ariaLabel: "API step CreateOrder, POST /orders",
    });
  });

  it("badges every type in text and describes triggers", () => {
    expect(["api", "event", "cron", "noop", "odd"].map(typeBadge)).toEqual([
      "API",
      "EVENT",
      "CRON",
      "NOOP",
      "ODD",
    ]);
    expect(stepTrigger(step("c", { type: "cron", cron: "*/5 * * * *" }))).toBe("*/5 * * * *");
    expect(stepTrigger(step("e", { subscribes: ["a", "b"] }))).toBe("on a, b");
    expect(stepTrigger(step("n", { type: "noop", virtualSubscribes: ["v"] }))).toBe("on v");
    expect(stepTrigger(step("n", { type: "noop" }))).toBe("");
  });
});

describe("layoutBody", () => {
  it("rounds positions, drops what is not finite and keeps a sane viewport", () => {
    const body = layoutBody(
      [
        { id: "a", position: { x: 1.23456, y: -7.891 } },
        { id: "b", position: { x: Number.NaN, y: 0 } },
      ],
      { x: 10.129, y: 2, zoom: 0.87654 },
    );
    expect(body).toEqual({ nodes: { a: { x: 1.23, y: -7.89 } }, viewport: { x: 10.13, y: 2, zoom: 0.877 } });
    expect(layoutBody([], { x: 0, y: 0, zoom: 0 })).toEqual({ nodes: {} });
    expect(layoutBody([])).toEqual({ nodes: {} });
  });
});
