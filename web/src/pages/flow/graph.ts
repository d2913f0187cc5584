// A flow's graph as the API answers it (`GET R/flows/{flow}`), turned into what the canvas draws:
// positions (the saved layout, else a left-to-right layered layout computed here), node data and
// edge styles. Pure functions only, and only type imports of React Flow: the canvas chunk is the
// one place that loads the library.
import type { Edge, Node } from "@xyflow/react";

export type StepType = "api" | "event" | "cron" | "noop";

export type EmitSpec = { topic: string; label: string | null; conditional: boolean };

export type GraphNode = {
  id: string;
  name: string;
  type: string;
  file: string;
  description: string | null;
  subscribes: string[];
  emits: EmitSpec[];
  virtualEmits: EmitSpec[];
  virtualSubscribes: string[];
  path: string | null;
  method: string | null;
  cron: string | null;
};

export type GraphEdge = {
  id: string;
  source: string;
  target: string;
  topic: string;
  label: string | null;
  conditional: boolean;
  virtual: boolean;
};

export type FlowGraph = { name: string; nodes: GraphNode[]; edges: GraphEdge[] };

export type FlowSummary = { name: string; steps: number; edges: number };

export type Point = { x: number; y: number };
export type Viewport = { x: number; y: number; zoom: number };

/** `GET R/flows/{flow}/layout`: version 0 while nothing is saved. */
export type FlowLayout = {
  flow: string;
  nodes: Record<string, Point>;
  viewport: Viewport | null;
  version: number;
  updated_at: string | null;
  updated_by: string | null;
};

export type LayoutBody = { nodes: Record<string, Point>; viewport?: Viewport };

export type StepNodeData = { step: GraphNode; kind: StepType | "other" };
export type StepFlowNode = Node<StepNodeData, "step">;
export type EdgeKind = "real" | "conditional" | "virtual" | "virtual-conditional";
export type StepFlowEdge = Edge<{ edge: GraphEdge; kind: EdgeKind }>;

// -- step types -------------------------------------------------------------------------------

const TYPES: Record<StepType, { badge: string; title: string }> = {
  api: { badge: "API", title: "API step: answers HTTP requests" },
  event: { badge: "EVENT", title: "Event step: runs for each event of its topics" },
  cron: { badge: "CRON", title: "Cron step: runs on a schedule" },
  noop: { badge: "NOOP", title: "Noop step: a person or system outside the platform" },
};

export function stepKind(type: string): StepType | "other" {
  return type in TYPES ? (type as StepType) : "other";
}

/** The text badge of a step type (type is never shown by colour alone). */
export function typeBadge(type: string): string {
  const kind = stepKind(type);
  return kind === "other" ? type.toUpperCase() : TYPES[kind].badge;
}

export function typeTitle(type: string): string {
  const kind = stepKind(type);
  return kind === "other" ? `${type} step` : TYPES[kind].title;
}

/** The line under a step's name: its route, schedule or topics. */
export function stepTrigger(step: GraphNode): string {
  if (step.type === "api" && step.path) return `${step.method ?? ""} ${step.path}`.trim();
  if (step.type === "cron" && step.cron) return step.cron;
  const topics = step.subscribes.length ? step.subscribes : step.virtualSubscribes;
  return topics.length ? `on ${topics.join(", ")}` : "";
}

// -- layered layout -----------------------------------------------------------------------------

export const NODE_WIDTH = 220;
export const NODE_HEIGHT = 72;
export const GAP_X = 170;
export const GAP_Y = 36;

type Link = { source: string; target: string };

/** The edges of `links` that close a cycle (found by a depth-first walk in a stable order):
 * leaving them out leaves a DAG. */
function backEdges(ids: string[], links: Link[]): Set<number> {
  const out = new Map<string, { to: string; index: number }[]>();
  for (const id of ids) out.set(id, []);
  links.forEach((l, index) => out.get(l.source)?.push({ to: l.target, index }));
  for (const list of out.values()) list.sort((a, b) => (a.to < b.to ? -1 : a.to > b.to ? 1 : 0));
  const indegree = new Map(ids.map((id) => [id, 0]));
  for (const l of links) indegree.set(l.target, (indegree.get(l.target) ?? 0) + 1);
  // roots first, so a chain is walked from its start rather than from the middle of a cycle
  const order = [...ids].sort((a, b) => {
    const da = indegree.get(a) === 0 ? 0 : 1;
    const db = indegree.get(b) === 0 ? 0 : 1;
    return da - db || (a < b ? -1 : a > b ? 1 : 0);
  });
  const state = new Map<string, 1 | 2>(); // 1: on the stack, 2: done
  const back = new Set<number>();
  for (const root of order) {
    if (state.has(root)) continue;
    // iterative DFS: 200+ node flows must not hit the call stack
    const stack: { id: string; next: number }[] = [{ id: root, next: 0 }];
    state.set(root, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const edges = out.get(top.id) ?? [];
      if (top.next >= edges.length) {
        state.set(top.id, 2);
        stack.pop();
        continue;
      }
      const { to, index } = edges[top.next++];
      const seen = state.get(to);
      if (seen === 1) back.add(index);
      else if (seen === undefined) {
        state.set(to, 1);
        stack.push({ id: to, next: 0 });
      }
    }
  }
  return back;
}

/** Each node's layer: the longest path to it from a node nothing leads to (cycles broken),
 * computed in topological order. Nodes without edges are in layer 0. */
export function layers(ids: string[], links: Link[]): Map<string, number> {
  const known = new Set(ids);
  const usable = links.filter(
    (l) => known.has(l.source) && known.has(l.target) && l.source !== l.target,
  );
  const back = backEdges(ids, usable);
  const dag = usable.filter((_, index) => !back.has(index));
  const out = new Map<string, string[]>(ids.map((id) => [id, []]));
  const indegree = new Map(ids.map((id) => [id, 0]));
  for (const l of dag) {
    out.get(l.source)!.push(l.target);
    indegree.set(l.target, indegree.get(l.target)! + 1);
  }
  const layer = new Map(ids.map((id) => [id, 0]));
  const ready = ids.filter((id) => indegree.get(id) === 0).sort();
  while (ready.length) {
    const id = ready.shift()!;
    for (const next of out.get(id)!) {
      layer.set(next, Math.max(layer.get(next)!, layer.get(id)! + 1));
      const left = indegree.get(next)! - 1;
      indegree.set(next, left);
      if (left === 0) ready.push(next);
    }
  }
  return layer;
}

/** A left-to-right layered layout: a column per layer, each column ordered by where its nodes'
 * predecessors are (fewer crossings), and centred on the tallest column. */
export function autoLayout(
  nodes: { id: string }[],
  links: Link[],
): Record<string, Point> {
  const ids = nodes.map((n) => n.id);
  const layer = layers(ids, links);
  const columns: string[][] = [];
  for (const id of [...ids].sort()) {
    const l = layer.get(id) ?? 0;
    (columns[l] ??= []).push(id);
  }
  const preds = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const l of links) if (preds.has(l.target) && layer.has(l.source)) preds.get(l.target)!.push(l.source);
  const rank = new Map<string, number>();
  columns.forEach((column, l) => {
    if (l > 0) {
      const centre = (id: string): number => {
        const ranked = preds.get(id)!.filter((p) => rank.has(p) && (layer.get(p) ?? 0) < l);
        return ranked.length
          ? ranked.reduce((sum, p) => sum + rank.get(p)!, 0) / ranked.length
          : Number.POSITIVE_INFINITY;
      };
      const keys = new Map(column.map((id) => [id, centre(id)]));
      column.sort((a, b) => keys.get(a)! - keys.get(b)! || (a < b ? -1 : a > b ? 1 : 0));
    }
    column.forEach((id, index) => rank.set(id, index));
  });
  const tallest = Math.max(0, ...columns.map((c) => c?.length ?? 0));
  const positions: Record<string, Point> = {};
  columns.forEach((column, l) => {
    const offset = ((tallest - column.length) * (NODE_HEIGHT + GAP_Y)) / 2;
    column.forEach((id, index) => {
      positions[id] = { x: l * (NODE_WIDTH + GAP_X), y: offset + index * (NODE_HEIGHT + GAP_Y) };
    });
  });
  return positions;
}

/** Where each step is drawn: its saved position, else where the automatic layout puts it. */
export function positionsFor(graph: FlowGraph, saved: Record<string, Point> | null): Record<string, Point> {
  const auto = autoLayout(graph.nodes, graph.edges);
  const out: Record<string, Point> = {};
  for (const node of graph.nodes) out[node.id] = saved?.[node.id] ?? auto[node.id] ?? { x: 0, y: 0 };
  return out;
}

// -- edges ----------------------------------------------------------------------------------------

export function edgeKind(edge: Pick<GraphEdge, "conditional" | "virtual">): EdgeKind {
  if (edge.virtual) return edge.conditional ? "virtual-conditional" : "virtual";
  return edge.conditional ? "conditional" : "real";
}

export function edgeText(edge: GraphEdge): string {
  const text = edge.label ?? edge.topic;
  return edge.conditional ? `${text} (conditional)` : text;
}

const DASH: Record<EdgeKind, string | undefined> = {
  real: undefined,
  conditional: "2 5", // dotted
  virtual: "9 6", // dashed
  "virtual-conditional": "9 5 2 5", // dash-dot: both
};

const STROKE: Record<EdgeKind, string> = {
  real: "#3b4658",
  conditional: "#8a5a00",
  virtual: "#6b7385",
  "virtual-conditional": "#8a5a00",
};

/** How an edge is drawn: solid with a closed arrow; conditional dotted with an open arrow and
 * "(conditional)" in its label; virtual dashed. */
export function edgeStyle(edge: Pick<GraphEdge, "conditional" | "virtual">): {
  kind: EdgeKind;
  stroke: string;
  dash: string | undefined;
  marker: "arrow" | "arrowclosed";
} {
  const kind = edgeKind(edge);
  return {
    kind,
    stroke: STROKE[kind],
    dash: DASH[kind],
    marker: edge.conditional ? "arrow" : "arrowclosed",
  };
}

export function toEdge(edge: GraphEdge): StepFlowEdge {
  const style = edgeStyle(edge);
  const text = edgeText(edge);
  return {
    id: edge.id,
    source: edge.source,
    target: edge.target,
    label: text,
    ariaLabel: `${edge.source} to ${edge.target}: ${text}${edge.virtual ? " (virtual)" : ""}`,
    className: `flow-edge edge-${style.kind}`,
    style: {
      stroke: style.stroke,
      strokeWidth: 1.6,
      ...(style.dash ? { strokeDasharray: style.dash } : {}),
    },
    markerEnd: { type: style.marker, color: style.stroke, width: 18, height: 18 },
    labelStyle: { fill: style.stroke, fontSize: 12, fontWeight: 600 },
    labelBgStyle: { fill: "#ffffff", fillOpacity: 0.9 },
    labelBgPadding: [4, 2],
    labelBgBorderRadius: 4,
    focusable: false,
    data: { edge, kind: style.kind },
  };
}

// -- nodes ---------------------------------------------------------------------------------------

export function toNodes(graph: FlowGraph, positions: Record<string, Point>): StepFlowNode[] {
  return graph.nodes.map((step) => ({
    id: step.id,
    type: "step",
    position: positions[step.id] ?? { x: 0, y: 0 },
    data: { step, kind: stepKind(step.type) },
    ariaLabel: `${typeBadge(step.type)} step ${step.name}${stepTrigger(step) ? `, ${stepTrigger(step)}` : ""}`,
    width: NODE_WIDTH,
    height: NODE_HEIGHT,
  }));
}

/** The body of `PUT R/flows/{flow}/layout` for the nodes as they are drawn now. */
export function layoutBody(
  nodes: { id: string; position: Point }[],
  viewport?: Viewport | null,
): LayoutBody {
  const round = (n: number) => Math.round(n * 100) / 100;
  const body: LayoutBody = {
    nodes: Object.fromEntries(
      nodes
        .filter((n) => Number.isFinite(n.position.x) && Number.isFinite(n.position.y))
        .map((n) => [n.id, { x: round(n.position.x), y: round(n.position.y) }]),
    ),
  };
  if (viewport && [viewport.x, viewport.y, viewport.zoom].every(Number.isFinite) && viewport.zoom > 0) {
    body.viewport = { x: round(viewport.x), y: round(viewport.y), zoom: Math.round(viewport.zoom * 1000) / 1000 };
  }
  return body;
}
