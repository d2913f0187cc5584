// Traces: the latest ones (`/traces`), and one trace's timeline (`/traces/:trace`) with every
// execution — step, status, attempt, start, duration (a bar on the trace's time axis), error.
import { useEffect } from "react";

import { Action, Empty, ErrorBox, Loading, Page, Table } from "../components/ui";
import { useApi } from "../hooks";
import { Link } from "../router";
import { StatusBadge, useRuntime } from "./run/parts";
import { clock, duration, usePaged } from "./run/runtime";
import type { Execution, Trace, TraceSummary } from "./run/runtime";

export default function TracesPage({ params }: { params: Record<string, string> }) {
  return params.trace ? <TraceTimeline id={params.trace} /> : <TraceList />;
}

function TraceList() {
  const { runtime, tenant, missing } = useRuntime();
  const traces = usePaged<TraceSummary>(runtime ? `${runtime}/traces` : null, tenant, 50);
  if (missing) return <Page title="Traces">{missing}</Page>;
  return (
    <Page
      title="Traces"
      actions={
        <Action onClick={traces.reload} busy={traces.loading}>
          Refresh
        </Action>
      }
    >
      <ErrorBox error={traces.error} />
      <Loading when={traces.loading && !traces.items.length} />
      {!traces.loading && !traces.error && !traces.items.length ? (
        <Empty>No traces yet: call an api step or emit an event.</Empty>
      ) : null}
      {traces.items.length ? (
        <Table
          label="Latest traces"
          rows={traces.items}
          rowKey={(t) => t.trace_id}
          columns={[
            {
              title: "Trace",
              cell: (t) => (
                <Link className="cell-link" to={`/traces/${encodeURIComponent(t.trace_id)}`}>
                  <code>{t.trace_id.slice(0, 16)}</code>
                </Link>
              ),
            },
            { title: "Root step", cell: (t) => t.root ?? "—" },
            { title: "Kind", cell: (t) => t.kind ?? "—" },
            { title: "Started", cell: (t) => (t.started_at ? new Date(t.started_at * 1000).toLocaleString() : "—") },
            { title: "Correlation", cell: (t) => <code className="muted">{t.correlation_id ?? "—"}</code> },
          ]}
        />
      ) : null}
      {traces.cursor ? (
        <div className="row">
          <Action onClick={traces.more} busy={traces.loading}>
            Load more
          </Action>
        </div>
      ) : null}
    </Page>
  );
}

/** The trace's time axis (its first start, its span in ms) and, for each execution, its
 * duration and a bar width proportional to it (the longest execution fills the track). */
export function timeline(executions: Execution[], now = Date.now() / 1000) {
  if (!executions.length) return { start: 0, span: 0, bars: [] as { width: number; ms: number | null }[] };
  const start = Math.min(...executions.map((e) => e.started_at));
  const end = Math.max(...executions.map((e) => e.ended_at ?? now));
  const lengths = executions.map(
    (e) => e.latency_ms ?? ((e.ended_at ?? now) - e.started_at) * 1000,
  );
  const longest = Math.max(...lengths, 0.001);
  const bars = executions.map((e, index) => ({
    width: Math.max((lengths[index] / longest) * 100, 1),
    ms: e.latency_ms ?? (e.ended_at ? (e.ended_at - e.started_at) * 1000 : null),
  }));
  return { start, span: (end - start) * 1000, bars };
}

function TraceTimeline({ id }: { id: string }) {
  const { runtime, tenant, missing } = useRuntime();
  const trace = useApi<Trace>(runtime ? `${runtime}/traces/${encodeURIComponent(id)}` : null, { tenant });
  const executions = trace.data?.executions ?? [];
  const running = executions.some((e) => e.ended_at === null || e.status === "running");

  // While something still runs, look again every two seconds.
  const { reload } = trace;
  useEffect(() => {
    if (!running) return;
    const timer = setInterval(reload, 2000);
    return () => clearInterval(timer);
  }, [running, reload]);

  if (missing) return <Page title="Trace">{missing}</Page>;
  const axis = timeline(executions);
  const rows = executions.map((e, index) => ({ e, bar: axis.bars[index] }));
  const failed = executions.filter((e) => e.status !== "ok" && e.status !== "running").length;

  return (
    <Page
      title={`Trace ${id.slice(0, 12)}…`}
      actions={
        <>
          <Link className="btn plain run-link" to="/traces">
            All traces
          </Link>
          <Link className="btn plain run-link" to={`/logs?trace=${encodeURIComponent(id)}`}>
            Logs of this trace
          </Link>
          <Action onClick={trace.reload} busy={trace.loading}>
            Refresh
          </Action>
        </>
      }
    >
      <ErrorBox error={trace.error} />
      <Loading when={trace.loading && !trace.data} />
      {trace.data ? (
        <dl className="facts">
          <div>
            <dt>Trace id</dt>
            <dd>
              <code>{trace.data.trace_id}</code>
            </dd>
          </div>
          <div>
            <dt>Root</dt>
            <dd>
              {trace.data.root ?? "—"} {trace.data.kind ? <span className="muted">({trace.data.kind})</span> : null}
            </dd>
          </div>
          <div>
            <dt>Started</dt>
            <dd>{trace.data.started_at ? new Date(trace.data.started_at * 1000).toLocaleString() : "—"}</dd>
          </div>
          <div>
            <dt>Executions</dt>
            <dd>
              {executions.length}
              {failed ? <span className="muted"> ({failed} not ok)</span> : null}
              {running ? <span className="muted"> · still running</span> : null}
            </dd>
          </div>
          <div>
            <dt>Span</dt>
            <dd>{duration(axis.span)}</dd>
          </div>
        </dl>
      ) : null}
      {trace.data && !executions.length ? <Empty>No executions recorded for this trace yet.</Empty> : null}
      {executions.length ? (
        <Table
          label="Executions of this trace"
          rows={rows}
          rowKey={(r) => r.e.id}
          columns={[
            { title: "Step", cell: (r) => <strong>{r.e.step}</strong> },
            { title: "Status", cell: (r) => <StatusBadge status={r.e.status} /> },
            { title: "Attempt", cell: (r) => r.e.attempt, className: "num" },
            {
              title: "Start",
              cell: (r) => (
                <span>
                  {clock(r.e.started_at)}{" "}
                  <span className="muted small">+{duration((r.e.started_at - axis.start) * 1000)}</span>
                </span>
              ),
            },
            { title: "Duration", cell: (r) => duration(r.bar.ms), className: "num" },
            {
              title: "Duration bar",
              cell: (r) => (
                <div
                  className="bar-track"
                  role="img"
                  aria-label={`${r.e.step}, attempt ${r.e.attempt}: ${duration(r.bar.ms)}`}
                >
                  <div
                    className={`bar bar-${r.e.status === "ok" ? "ok" : r.e.ended_at === null ? "running" : "error"}`}
                    style={{ width: `${r.bar.width}%` }}
                  />
                </div>
              ),
            },
            {
              title: "Error",
              cell: (r) => (r.e.error ? <span className="error-text">{r.e.error}</span> : <span className="muted">—</span>),
              className: "wrap",
            },
          ]}
        />
      ) : null}
    </Page>
  );
}
