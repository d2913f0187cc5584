// One flow on a canvas (`/flows/:flow`): steps as nodes styled by type, edges from emits to
// subscribes (conditional dotted with an open arrow, virtual dashed), zoom, pan (touch too), fit
// view and a minimap. Positions come from the saved layout, else a layered layout; dragged nodes
// are saved for every user of the project with "Save layout". A step opens its side panel.
// This page is the only importer of React Flow, so the library stays out of the shell's bundle.
import "@xyflow/react/dist/style.css";
import "./flow/flows.css";

import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Background, Controls, MiniMap, ReactFlow, applyNodeChanges } from "@xyflow/react";
import type { NodeChange, NodeTypes, OnSelectionChangeParams, ReactFlowInstance } from "@xyflow/react";

import { api, ApiError } from "../api";
import type { Page as Listing } from "../api";
import { Action, Empty, ErrorBox, Loading, Page, time } from "../components/ui";
import { asError, useApi } from "../hooks";
import { Link } from "../router";
import { useSession } from "../session";
import {
  NODE_HEIGHT,
  NODE_WIDTH,
  autoLayout,
  layoutBody,
  positionsFor,
  toEdge,
  toNodes,
  typeBadge,
} from "./flow/graph";
import type { FlowGraph, FlowLayout, StepFlowEdge, StepFlowNode } from "./flow/graph";
import { StepNode } from "./flow/StepNode";
import { StepPanel } from "./flow/StepPanel";
import type { StepSummary } from "./flow/steps";

const NODE_TYPES: NodeTypes = { step: StepNode };

const MINIMAP_COLOURS: Record<string, string> = {
  api: "#1f5fbf",
  event: "#7a3db8",
  cron: "#a15c00",
  noop: "#5a6272",
  other: "#5a6272",
};

type Flow = ReactFlowInstance<StepFlowNode, StepFlowEdge>;

function Legend() {
  return (
    <div className="flow-legend" aria-label="Legend">
      <ul>
        {["api", "event", "cron", "noop"].map((type) => (
          <li key={type}>
            <span className={`step-badge step-badge-${type}`}>{typeBadge(type)}</span>
          </li>
        ))}
      </ul>
      <ul>
        <li>
          <svg width="34" height="10" aria-hidden="true">
            <line x1="0" y1="5" x2="34" y2="5" className="legend-line edge-real" />
          </svg>
          emits → subscribes
        </li>
        <li>
          <svg width="34" height="10" aria-hidden="true">
            <line x1="0" y1="5" x2="34" y2="5" className="legend-line edge-conditional" />
          </svg>
          conditional (open arrow)
        </li>
        <li>
          <svg width="34" height="10" aria-hidden="true">
            <line x1="0" y1="5" x2="34" y2="5" className="legend-line edge-virtual" />
          </svg>
          virtual
        </li>
      </ul>
    </div>
  );
}

function Canvas(props: {
  graph: FlowGraph;
  saved: FlowLayout | null;
  base: string;
  tenant: string | null;
  runtime: string;
  steps: StepSummary[];
  stepsError: Error | null;
}) {
  const session = useSession();
  const { graph, saved } = props;
  const canEdit = session.can("flow.edit");
  const [nodes, setNodes] = useState<StepFlowNode[]>(() =>
    toNodes(graph, positionsFor(graph, saved?.nodes ?? null)),
  );
  const edges = useMemo(() => graph.edges.map(toEdge), [graph]);
  const [version, setVersion] = useState(saved?.version ?? 0);
  const [savedAt, setSavedAt] = useState(saved?.updated_at ?? null);
  const [dirty, setDirty] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const [stale, setStale] = useState(false);
  const [message, setMessage] = useState("");
  const [open, setOpen] = useState<string | null>(null);
  const flow = useRef<Flow | null>(null);

  // The canvas opens fitted to the flow whatever the screen; the view saved with the layout (a
  // desktop's view would show a phone a corner of the flow) is one button away.
  const [savedView, setSavedView] = useState(saved?.viewport ?? null);

  const onNodesChange = useCallback((changes: NodeChange<StepFlowNode>[]) => {
    setNodes((current) => applyNodeChanges(changes, current));
    if (changes.some((c) => c.type === "position" && c.position)) {
      setDirty(true);
      setMessage("");
    }
  }, []);

  const onNodeClick = useCallback((_: unknown, node: StepFlowNode) => setOpen(node.id), []);

  const onSelectionChange = useCallback(({ nodes: picked }: OnSelectionChangeParams) => {
    // a node chosen with the keyboard (Enter on a focused node) opens it as a click does
    if (picked.length === 1) setOpen(picked[0].id);
  }, []);

  const close = useCallback(() => {
    setOpen(null);
    setNodes((current) => current.map((n) => (n.selected ? { ...n, selected: false } : n)));
  }, []);

  const focusStep = useCallback(
    (id: string) => {
      setOpen(id || null);
      const node = nodes.find((n) => n.id === id);
      const instance = flow.current;
      if (!node || !instance) return;
      const zoom = Math.max(instance.getZoom(), 1);
      void instance.setCenter(node.position.x + NODE_WIDTH / 2, node.position.y + NODE_HEIGHT / 2, {
        zoom,
        duration: 300,
      });
    },
    [nodes],
  );

  const relayout = useCallback(() => {
    const positions = autoLayout(graph.nodes, graph.edges);
    setNodes((current) => current.map((n) => ({ ...n, position: positions[n.id] ?? n.position })));
    setDirty(true);
    setMessage("Laid out automatically; save to keep it.");
    requestAnimationFrame(() => void flow.current?.fitView({ padding: 0.15, duration: 300 }));
  }, [graph]);

  const save = useCallback(
    async (overwrite = false) => {
      setBusy(true);
      setError(null);
      setMessage("");
      try {
        const body = layoutBody(nodes, flow.current?.getViewport());
        const answer = await api<FlowLayout>(`${props.base}/layout`, {
          method: "PUT",
          body,
          tenant: props.tenant,
          headers: overwrite ? {} : { "if-match": `"${version}"` },
        });
        setVersion(answer.version);
        setSavedAt(answer.updated_at);
        setSavedView(answer.viewport);
        setDirty(false);
        setStale(false);
        setMessage(`Layout saved for everyone in this project (version ${answer.version}).`);
      } catch (reason) {
        const failure = asError(reason);
        setStale(failure instanceof ApiError && failure.status === 412);
        setError(failure);
      } finally {
        setBusy(false);
      }
    },
    [nodes, props.base, props.tenant, version],
  );

  const openStep = open ? graph.nodes.find((n) => n.id === open) : undefined;
  const sorted = useMemo(
    () => [...graph.nodes].sort((a, b) => a.name.localeCompare(b.name)),
    [graph.nodes],
  );

  return (
    <>
      <div className="flow-toolbar">
        <label className="field flow-find">
          <span>Step</span>
          <select value={open ?? ""} onChange={(e) => focusStep(e.target.value)}>
            <option value="">Choose a step to open…</option>
            {sorted.map((n) => (
              <option key={n.id} value={n.id}>
                {n.name} ({typeBadge(n.type).toLowerCase()})
              </option>
            ))}
          </select>
        </label>
        <div className="row flow-actions">
          {savedView ? (
            <button
              type="button"
              className="btn plain"
              onClick={() => void flow.current?.setViewport(savedView, { duration: 300 })}
            >
              Saved view
            </button>
          ) : null}
          <button type="button" className="btn plain" onClick={relayout}>
            Auto layout
          </button>
          <Action
            kind="primary"
            onClick={() => void save()}
            allowed={canEdit}
            why="Your roles here do not include flow.edit, which saving a layout needs"
            busy={busy}
          >
            Save layout
          </Action>
        </div>
      </div>
      <p className="muted small flow-status" role="status">
        {dirty ? "Unsaved changes. " : ""}
        {message ||
          (version > 0
            ? `Saved layout, version ${version}${savedAt ? `, ${time(savedAt)}` : ""}.`
            : "Automatic layout (none saved yet).")}
      </p>
      <ErrorBox error={error} />
      {stale ? (
        <div className="notice">
          Someone saved this flow&apos;s layout after you opened it.{" "}
          <Action kind="danger" onClick={() => void save(true)} allowed={canEdit} busy={busy}>
            Save mine over it
          </Action>
        </div>
      ) : null}
      <div className="flow-canvas" data-testid="flow-canvas">
        <ReactFlow<StepFlowNode, StepFlowEdge>
          nodes={nodes}
          edges={edges}
          nodeTypes={NODE_TYPES}
          onNodesChange={onNodesChange}
          onNodeClick={onNodeClick}
          onSelectionChange={onSelectionChange}
          onInit={(instance) => {
            flow.current = instance;
          }}
          onlyRenderVisibleElements
          nodesConnectable={false}
          edgesFocusable={false}
          selectNodesOnDrag={false}
          deleteKeyCode={null}
          panOnDrag
          zoomOnPinch
          zoomOnScroll
          zoomOnDoubleClick
          panOnScroll={false}
          minZoom={0.05}
          maxZoom={2.5}
          fitView
          fitViewOptions={{ padding: 0.15 }}
          aria-label={`Canvas of flow ${graph.name}`}
        >
          <Background gap={24} />
          <MiniMap<StepFlowNode>
            pannable
            zoomable
            ariaLabel={`Minimap of flow ${graph.name}`}
            nodeColor={(n) => MINIMAP_COLOURS[n.data.kind] ?? MINIMAP_COLOURS.other}
            nodeStrokeWidth={3}
          />
          <Controls showInteractive={false} aria-label="Zoom and fit" />
        </ReactFlow>
      </div>
      <Legend />
      {openStep ? (
        <StepPanel
          step={openStep}
          summary={props.steps.find((s) => s.name === openStep.name)}
          summaryError={props.stepsError}
          runtime={props.runtime}
          tenant={props.tenant}
          canReadExecutions={session.can("execution.read")}
          canInvoke={session.can("step.invoke")}
          onClose={close}
        />
      ) : null}
    </>
  );
}

export default function FlowCanvasPage({ params }: { params: Record<string, string> }) {
  const { runtime, place } = useSession();
  const name = params.flow ?? "";
  const base = runtime ? `${runtime}/flows/${encodeURIComponent(name)}` : null;
  const tenant = place.tenant;
  const graph = useApi<FlowGraph>(base, { tenant });
  const layout = useApi<FlowLayout>(base ? `${base}/layout` : null, { tenant });
  const steps = useApi<Listing<StepSummary>>(runtime ? `${runtime}/steps?limit=500` : null, {
    tenant,
  });

  useEffect(() => {
    document.title = `${name} · Flows · CFP Workbench`;
  }, [name]);

  const back = (
    <Link to="/flows" className="btn plain">
      All flows
    </Link>
  );
  if (!runtime || !base) {
    return (
      <Page title={`Flow ${name}`} actions={back}>
        <Empty>Choose a project and an environment to see its flows.</Empty>
      </Page>
    );
  }
  const ready = graph.data && !layout.loading && (layout.data || layout.error);
  return (
    <Page title={`Flow ${name}`} actions={back}>
      <ErrorBox error={graph.error} />
      {graph.data && layout.error && !(layout.error instanceof ApiError && layout.error.status === 404) ? (
        <ErrorBox error={layout.error} />
      ) : null}
      <Loading when={graph.loading || layout.loading} />
      {ready && graph.data ? (
        <Canvas
          key={`${graph.data.name}@${layout.data?.version ?? 0}`}
          graph={graph.data}
          saved={layout.data}
          base={base}
          tenant={tenant}
          runtime={runtime}
          steps={steps.data?.items ?? []}
          stepsError={steps.error}
        />
      ) : null}
    </Page>
  );
}
