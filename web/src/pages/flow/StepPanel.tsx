// The side panel (a bottom sheet on phones) of one step: its config, its schemas and its recent
// executions.
import { useEffect, useState } from "react";
import type { ReactNode } from "react";

import { ErrorBox, Json, Loading, Sheet, Table, time } from "../../components/ui";
import { asError } from "../../hooks";
import { Link } from "../../router";
import { stepTrigger, typeBadge, typeTitle } from "./graph";
import type { EmitSpec, GraphNode } from "./graph";
import { recentExecutions } from "./steps";
import type { Execution, StepSummary } from "./steps";

function emitText(spec: EmitSpec): string {
  const parts = [spec.topic];
  if (spec.label) parts.push(`“${spec.label}”`);
  if (spec.conditional) parts.push("(conditional)");
  return parts.join(" ");
}

function Row({ term, children }: { term: string; children: ReactNode }) {
  return (
    <>
      <dt>{term}</dt>
      <dd>{children}</dd>
    </>
  );
}

function List({ items }: { items: string[] }) {
  if (!items.length) return <span className="muted">none</span>;
  return (
    <ul className="plain-list">
      {items.map((item) => (
        <li key={item}>
          <code>{item}</code>
        </li>
      ))}
    </ul>
  );
}

function statusClass(status: string): string {
  if (status === "ok") return "badge ok";
  if (status === "error" || status === "failed" || status === "dead") return "badge error";
  return "badge warn";
}

function Executions(props: { runtime: string; tenant: string | null; step: string; allowed: boolean }) {
  const [state, setState] = useState<{
    executions: Execution[] | null;
    tracesRead: number;
    error: Error | null;
    loading: boolean;
  }>({ executions: null, tracesRead: 0, error: null, loading: props.allowed });
  const [tick, setTick] = useState(0);

  useEffect(() => {
    if (!props.allowed) return;
    const controller = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    recentExecutions(props.runtime, props.tenant, props.step, controller.signal)
      .then(({ executions, tracesRead }) =>
        setState({ executions, tracesRead, error: null, loading: false }),
      )
      .catch((error: unknown) => {
        if (controller.signal.aborted) return;
        setState({
          executions: null,
          tracesRead: 0,
          error: asError(error),
          loading: false,
        });
      });
    return () => controller.abort();
  }, [props.runtime, props.tenant, props.step, props.allowed, tick]);

  if (!props.allowed) {
    return (
      <p className="muted">
        Your roles here do not include <code>execution.read</code>, which executions need.
      </p>
    );
  }
  return (
    <div className="step-executions">
      <div className="row">
        <button type="button" className="btn plain" onClick={() => setTick((n) => n + 1)}>
          Refresh executions
        </button>
      </div>
      <ErrorBox error={state.error} />
      <Loading when={state.loading} />
      {state.executions && !state.executions.length ? (
        <p className="muted">
          No executions of this step in the latest {state.tracesRead} traces.
        </p>
      ) : null}
      {state.executions?.length ? (
        <Table<Execution>
          label={`Recent executions of ${props.step}`}
          rows={state.executions}
          rowKey={(e) => e.id}
          columns={[
            { title: "Started", cell: (e) => time(e.started_at) },
            { title: "Status", cell: (e) => <span className={statusClass(e.status)}>{e.status}</span> },
            { title: "Attempt", cell: (e) => e.attempt },
            {
              title: "Duration",
              cell: (e) => (e.latency_ms === undefined ? "—" : `${Math.round(e.latency_ms)} ms`),
            },
            {
              title: "Trace",
              cell: (e) => (
                <Link to={`/traces/${encodeURIComponent(e.trace_id)}`} className="tap-link">
                  {e.trace_id.slice(0, 12)}…
                </Link>
              ),
            },
            { title: "Error", cell: (e) => e.error ?? "—", className: "wrap" },
          ]}
        />
      ) : null}
    </div>
  );
}

export function StepPanel(props: {
  step: GraphNode;
  summary: StepSummary | undefined;
  summaryError: Error | null;
  runtime: string;
  tenant: string | null;
  canReadExecutions: boolean;
  canInvoke: boolean;
  onClose: () => void;
}) {
  const { step, summary } = props;
  const responses = Object.entries(summary?.response_schemas ?? {});
  return (
    <Sheet title={`${typeBadge(step.type)} · ${step.name}`} onClose={props.onClose}>
      <div className="step-panel">
        <section aria-labelledby="step-config">
          <h3 id="step-config">Config</h3>
          <dl className="step-facts">
            <Row term="Type">{typeTitle(step.type)}</Row>
            {step.description ? <Row term="Description">{step.description}</Row> : null}
            <Row term="File">
              <code>{step.file}</code>
            </Row>
            {step.type === "api" ? (
              <Row term="Route">
                <code>{stepTrigger(step)}</code>
              </Row>
            ) : null}
            {step.cron ? (
              <Row term="Schedule">
                <code>{step.cron}</code>
              </Row>
            ) : null}
            {step.type === "event" || step.subscribes.length ? (
              <Row term="Subscribes">
                <List items={step.subscribes} />
              </Row>
            ) : null}
            <Row term="Emits">
              <List items={step.emits.map(emitText)} />
            </Row>
            {step.virtualSubscribes.length ? (
              <Row term="Virtually subscribes">
                <List items={step.virtualSubscribes} />
              </Row>
            ) : null}
            {step.virtualEmits.length ? (
              <Row term="Virtually emits">
                <List items={step.virtualEmits.map(emitText)} />
              </Row>
            ) : null}
            {summary ? (
              <>
                <Row term="Flows">
                  <List items={summary.flows} />
                </Row>
                {summary.timeout !== null ? <Row term="Timeout">{summary.timeout} s</Row> : null}
                {summary.concurrency !== null ? (
                  <Row term="Concurrency">{summary.concurrency}</Row>
                ) : null}
                {summary.queue ? (
                  <Row term="Queue">
                    <List
                      items={Object.entries(summary.queue).map(([k, v]) => `${k}: ${String(v)}`)}
                    />
                  </Row>
                ) : null}
              </>
            ) : null}
          </dl>
          {step.type === "api" && props.canInvoke ? (
            <p>
              <Link to={`/tester?step=${encodeURIComponent(step.name)}`} className="tap-link">
                Call it in the endpoint tester
              </Link>
            </p>
          ) : null}
        </section>

        <section aria-labelledby="step-schemas">
          <h3 id="step-schemas">Schemas</h3>
          <ErrorBox error={props.summaryError} />
          {summary?.body_schema ? (
            <>
              <h4>Body</h4>
              <Json value={summary.body_schema} label={`Body schema of ${step.name}`} />
            </>
          ) : null}
          {summary?.input_schema ? (
            <>
              <h4>Input</h4>
              <Json value={summary.input_schema} label={`Input schema of ${step.name}`} />
            </>
          ) : null}
          {responses.map(([status, schema]) => (
            <div key={status}>
              <h4>Response {status}</h4>
              <Json value={schema} label={`Response ${status} schema of ${step.name}`} />
            </div>
          ))}
          {summary && !summary.body_schema && !summary.input_schema && !responses.length ? (
            <p className="muted">This step declares no schema.</p>
          ) : null}
        </section>

        <section aria-labelledby="step-executions">
          <h3 id="step-executions">Recent executions</h3>
          <Executions
            runtime={props.runtime}
            tenant={props.tenant}
            step={step.name}
            allowed={props.canReadExecutions}
          />
        </section>
      </div>
    </Sheet>
  );
}
