// The executive report of a window: executions and error rate per flow (the API gives per-flow
// totals for the window, not a time series), contracts by status with exact totals per
// currency, projects by the status of their latest report — as inline SVG bar charts, each with
// a text alternative — and the same report as CSV.
import { useState } from "react";

import { query } from "../api";
import { Action, Empty, ErrorBox, Field, Loading, Page, Table, time } from "../components/ui";
import { asError, useApi } from "../hooks";
import { useSession } from "../session";
import { BarChart, percent, TimeChart } from "./govern/charts";
import type { TimePoint } from "./govern/charts";
import { download, needs, tenantScope } from "./govern/lib";
import { Form, NeedTenant, StatusBadge, Submit } from "./govern/parts";

type CurrencyTotal = { currency: string; count: number; total: string };
type ContractSummary = { status: string; count: number; totals: CurrencyTotal[] };
type ProjectStatus = {
  project_id: string;
  status: "green" | "amber" | "red" | null;
  period: string | null;
  report_id: string | null;
  reported_at: string | null;
};
type FlowStats = {
  project: string;
  env: string;
  flow: string | null;
  executions: number;
  errors: number;
  error_rate: number;
  p95_latency_ms: number | null;
};
export type ExecutiveReport = {
  window: { from: string; to: string };
  contracts: ContractSummary[];
  projects: { counts: Record<string, number>; items: ProjectStatus[] };
  flows: FlowStats[];
  series?: (TimePoint & { error_rate: number })[];
};

/** A period's label: its day, or its hour when the periods are hours. */
export function periodLabel(point: TimePoint): string {
  const start = new Date(point.start);
  const hours = (new Date(point.end).getTime() - start.getTime()) / 3_600_000;
  return hours <= 1
    ? `${start.toISOString().slice(11, 13)}:00`
    : start.toISOString().slice(5, 10);
}

/** A date `days` before `date` as YYYY-MM-DD (UTC, as the API reads dates). */
export function isoDate(date: Date, days = 0): string {
  const shifted = new Date(date.getTime() - days * 86_400_000);
  return shifted.toISOString().slice(0, 10);
}

/** Short labels for flows: just the flow when every row is of one project and environment. */
export function flowLabels(flows: FlowStats[]): string[] {
  const places = new Set(flows.map((f) => `${f.project}/${f.env}`));
  return flows.map((f) => {
    const name = f.flow ?? "(steps in no flow)";
    return places.size > 1 ? `${f.project}/${f.env} · ${name}` : name;
  });
}

export default function ExecutivePage() {
  const session = useSession();
  const tenant = session.place.tenant;
  const today = new Date();
  const [draft, setDraft] = useState({ from: isoDate(today, 29), to: isoDate(today) });
  const [applied, setApplied] = useState(draft);
  const path = `/v1/executive-report${query({ from: applied.from, to: applied.to })}`;
  const report = useApi<ExecutiveReport>(tenant ? path : null, { tenant });
  const [busy, setBusy] = useState(false);
  const [csvError, setCsvError] = useState<Error | null>(null);

  if (!tenant) return <NeedTenant title="Executive report" />;
  const mayRead = session.can("report.read", tenantScope(tenant));

  const csv = async () => {
    setBusy(true);
    setCsvError(null);
    try {
      await download(path, {
        tenant,
        accept: "text/csv",
        fallbackName: "executive-report.csv",
        name: `executive-report-${tenant}-${applied.from || "default"}-${applied.to || "default"}.csv`,
      });
    } catch (reason) {
      setCsvError(asError(reason));
    } finally {
      setBusy(false);
    }
  };

  const data = report.data;
  const flows = data ? [...data.flows].sort((a, b) => b.executions - a.executions) : [];
  const labels = flowLabels(flows);
  const executions = flows.reduce((n, f) => n + f.executions, 0);
  const errors = flows.reduce((n, f) => n + f.errors, 0);
  const contractCount = data ? data.contracts.reduce((n, c) => n + c.count, 0) : 0;
  const counts = data?.projects.counts ?? {};

  return (
    <Page
      title="Executive report"
      actions={
        <Action allowed={mayRead} why={needs("report.read", tenantScope(tenant))} busy={busy} onClick={() => void csv()}>
          Download CSV
        </Action>
      }
    >
      <Form label="Report window" onSubmit={() => setApplied({ ...draft })}>
        <Field label="From (inclusive)">
          <input type="date" value={draft.from} onChange={(e) => setDraft((d) => ({ ...d, from: e.target.value }))} />
        </Field>
        <Field label="To (through the end of)">
          <input type="date" value={draft.to} onChange={(e) => setDraft((d) => ({ ...d, to: e.target.value }))} />
        </Field>
        <Submit>Show</Submit>
      </Form>
      <ErrorBox error={report.error} />
      <ErrorBox error={csvError} />
      <Loading when={report.loading && !data} />
      {data ? (
        <>
          <p className="muted small" style={{ margin: 0 }}>
            Window: {time(data.window.from)} to {time(data.window.to)} (executions that started in it; contracts
            and project statuses as they are now).
          </p>
          <div className="gv-stats">
            <div className="gv-stat">
              <b>{executions}</b> executions
            </div>
            <div className="gv-stat">
              <b>{errors}</b> errors
            </div>
            <div className="gv-stat">
              <b>{executions ? percent(errors / executions) : "—"}</b> error rate
            </div>
            <div className="gv-stat">
              <b>{contractCount}</b> contracts
            </div>
            <div className="gv-stat">
              <b>{data.projects.items.length}</b> projects
            </div>
          </div>
          <div className="gv-charts">
            <TimeChart
              title="Executions and error rate over time"
              points={data.series ?? []}
              label={periodLabel}
            />
            <BarChart
              title="Executions per flow"
              valueTitle="Executions"
              integer
              bars={flows.map((f, i) => ({
                label: labels[i],
                value: f.executions,
                note: f.p95_latency_ms !== null ? `p95 ${Math.round(f.p95_latency_ms)} ms` : undefined,
              }))}
              empty="No executions started in this window."
            />
            <BarChart
              title="Error rate per flow"
              valueTitle="Error rate"
              format={percent}
              bars={flows.map((f, i) => ({
                label: labels[i],
                value: f.error_rate,
                tone: f.error_rate > 0 ? "error" : "green",
                note: `${f.errors} of ${f.executions}`,
              }))}
              empty="No executions started in this window."
            />
            <BarChart
              title="Contracts by status"
              valueTitle="Contracts"
              integer
              bars={data.contracts.map((c) => ({ label: c.status, value: c.count, tone: c.status }))}
            >
              <ContractTotals contracts={data.contracts} />
            </BarChart>
            <BarChart
              title="Projects by latest status"
              valueTitle="Projects"
              integer
              bars={["green", "amber", "red", "none"].map((s) => ({
                label: s === "none" ? "no report" : s,
                value: counts[s] ?? 0,
                tone: s,
              }))}
            />
          </div>
          <section className="gv-section" aria-labelledby="projects-title">
            <h2 id="projects-title">Projects</h2>
            {data.projects.items.length ? (
              <Table
                label="Projects by latest status"
                rows={data.projects.items}
                rowKey={(p) => p.project_id}
                columns={[
                  { title: "Project", cell: (p) => p.project_id },
                  { title: "Status", cell: (p) => <StatusBadge status={p.status ?? "none"} /> },
                  { title: "Period", cell: (p) => p.period ?? "—" },
                  { title: "Reported", cell: (p) => time(p.reported_at) },
                ]}
              />
            ) : (
              <Empty>No projects.</Empty>
            )}
          </section>
          {flows.length ? (
            <section className="gv-section" aria-labelledby="flows-title">
              <h2 id="flows-title">Flows</h2>
              <Table
                label="Flows in the window"
                rows={flows}
                rowKey={(f) => `${f.project}/${f.env}/${f.flow ?? ""}`}
                columns={[
                  { title: "Project", cell: (f) => f.project },
                  { title: "Env", cell: (f) => f.env },
                  { title: "Flow", cell: (f) => f.flow ?? "(no flow)" },
                  { title: "Executions", cell: (f) => f.executions },
                  { title: "Errors", cell: (f) => f.errors },
                  { title: "Error rate", cell: (f) => percent(f.error_rate) },
                  { title: "p95", cell: (f) => (f.p95_latency_ms !== null ? `${Math.round(f.p95_latency_ms)} ms` : "—") },
                ]}
              />
            </section>
          ) : null}
        </>
      ) : null}
    </Page>
  );
}

function ContractTotals({ contracts }: { contracts: ContractSummary[] }) {
  const rows = contracts.flatMap((c) => c.totals.map((t) => ({ status: c.status, ...t })));
  if (!rows.length) return <p className="muted small">No contract values to total.</p>;
  return (
    <div className="table-box" role="region" aria-label="Contract totals per currency" tabIndex={0}>
      <table>
        <caption className="visually-hidden">Contract totals per status and currency</caption>
        <thead>
          <tr>
            <th scope="col">Status</th>
            <th scope="col">Currency</th>
            <th scope="col">Contracts</th>
            <th scope="col">Total</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={`${r.status}-${r.currency}`}>
              <td>{r.status}</td>
              <td>{r.currency}</td>
              <td>{r.count}</td>
              <td className="gv-mono">{r.total}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
