// Project status reports: the latest of each project, the history (newest first, "More"), one
// report in the side panel (its markdown summary rendered safely), and a new report.
import { useState } from "react";

import { api } from "../api";
import { Action, Empty, ErrorBox, Field, ListState, Notice, Page, Sheet, Table, pagedState, time } from "../components/ui";
import { useApi, useSubmit } from "../hooks";
import { useSession } from "../session";
import { encode, idempotencyKey, lines, needs, projectScope, usePaged, who } from "./govern/lib";
import type { Paged } from "./govern/lib";
import { Markdown } from "./govern/markdown";
import { Form, More, NeedTenant, ProjectSelect, reportWrite, StatusBadge, Submit } from "./govern/parts";

export type Report = {
  id: string;
  project_id: string;
  status: "green" | "amber" | "red";
  period: string;
  summary: string;
  highlights: string[];
  risks: string[];
  author: string;
  created_at: string;
};

type Project = { slug: string; name: string };

const STATUSES: Report["status"][] = ["green", "amber", "red"];

export default function ReportsPage() {
  const session = useSession();
  const tenant = session.place.tenant;
  const projects = useApi<Paged<Project>>(tenant ? "/v1/projects?limit=200" : null, { tenant });
  const [project, setProject] = useState<string>(session.place.project ?? "");
  const suffix = project ? `project=${encode(project)}` : "";
  const latest = useApi<{ items: Report[] }>(tenant ? `/v1/reports/latest${suffix ? `?${suffix}` : ""}` : null, {
    tenant,
  });
  const history = usePaged<Report>(tenant ? `/v1/reports?limit=20${suffix ? `&${suffix}` : ""}` : null, tenant);
  const [open, setOpen] = useState<Report | null>(null);
  const [creating, setCreating] = useState(false);
  const [done, setDone] = useState<string | null>(null);

  if (!tenant) return <NeedTenant title="Status reports" />;
  const slugs = (projects.data?.items ?? []).map((p) => p.slug);
  if (project && !slugs.includes(project)) slugs.push(project);
  const writable = slugs.filter((slug) => session.can("report.manage", projectScope(tenant, slug)));
  const reportColumns = [
    { title: "Project", cell: (r: Report) => r.project_id },
    { title: "Status", cell: (r: Report) => <StatusBadge status={r.status} /> },
    { title: "Period", cell: (r: Report) => r.period },
    { title: "Author", cell: (r: Report) => who(r.author, session.me?.id) },
    { title: "Written", cell: (r: Report) => time(r.created_at) },
  ];

  return (
    <Page
      title="Status reports"
      actions={
        <Action
          kind="primary"
          allowed={writable.length > 0}
          why={needs("report.manage", project ? projectScope(tenant, project) : "a project")}
          onClick={() => setCreating(true)}
        >
          New report
        </Action>
      }
    >
      <div className="gv-bar">
        <ProjectSelect all projects={slugs} value={project} onChange={setProject} />
      </div>
      <Notice>{done}</Notice>

      <section className="gv-section" aria-labelledby="latest-title">
        <h2 id="latest-title">Latest per project</h2>
        <ListState
          error={latest.error}
          loading={latest.loading && !latest.data}
          empty={latest.data?.items.length === 0}
          emptyText="No reports yet."
        />
        {latest.data && latest.data.items.length > 0 ? (
          <Table label="Latest reports" rows={latest.data.items} rowKey={(r) => r.id} onRow={setOpen} columns={reportColumns} />
        ) : null}
      </section>

      <section className="gv-section" aria-labelledby="history-title">
        <h2 id="history-title">History</h2>
        <ListState {...pagedState(history)} emptyText="No reports." />
        {history.items.length ? (
          <Table
            label="Report history"
            rows={history.items}
            rowKey={(r) => r.id}
            onRow={setOpen}
            columns={[{ title: "Written", cell: (r: Report) => time(r.created_at) }, ...reportColumns.slice(0, 4)]}
          />
        ) : null}
        <More list={history} />
      </section>

      {open ? (
        <Sheet title={`${open.project_id}: ${open.period}`} onClose={() => setOpen(null)}>
          <ReportView report={open} />
        </Sheet>
      ) : null}
      {creating ? (
        <Sheet title="New status report" onClose={() => setCreating(false)}>
          <ReportForm
            tenant={tenant}
            projects={writable}
            initial={project && writable.includes(project) ? project : (writable[0] ?? "")}
            onDone={(r) => {
              setCreating(false);
              setDone(`Report for ${r.project_id} (${r.period}) saved.`);
              latest.reload();
              history.reload();
            }}
          />
        </Sheet>
      ) : null}
    </Page>
  );
}

export function ReportView({ report }: { report: Report }) {
  const session = useSession();
  return (
    <div className="gv-section">
      <dl className="gv-kv">
        <dt>Status</dt>
        <dd>
          <StatusBadge status={report.status} />
        </dd>
        <dt>Project</dt>
        <dd>{report.project_id}</dd>
        <dt>Period</dt>
        <dd>{report.period}</dd>
        <dt>Author</dt>
        <dd>{who(report.author, session.me?.id)}</dd>
        <dt>Written</dt>
        <dd>{time(report.created_at)}</dd>
      </dl>
      <h3 className="small">Summary</h3>
      {report.summary.trim() ? <Markdown source={report.summary} headingBase={4} /> : <Empty>No summary.</Empty>}
      <div className="gv-lists">
        <div>
          <h3 className="small">Highlights</h3>
          {report.highlights.length ? (
            <ul>
              {report.highlights.map((h, i) => (
                <li key={i}>{h}</li>
              ))}
            </ul>
          ) : (
            <Empty>None.</Empty>
          )}
        </div>
        <div>
          <h3 className="small">Risks</h3>
          {report.risks.length ? (
            <ul>
              {report.risks.map((r, i) => (
                <li key={i}>{r}</li>
              ))}
            </ul>
          ) : (
            <Empty>None.</Empty>
          )}
        </div>
      </div>
    </div>
  );
}

function ReportForm(props: { tenant: string; projects: string[]; initial: string; onDone: (r: Report) => void }) {
  const session = useSession();
  const [project, setProject] = useState(props.initial);
  const [status, setStatus] = useState<Report["status"]>("green");
  const [period, setPeriod] = useState("");
  const [summary, setSummary] = useState("");
  const [highlights, setHighlights] = useState("");
  const [risks, setRisks] = useState("");
  const [preview, setPreview] = useState(false);
  const { run, busy, error } = useSubmit();
  const { allowed, why } = reportWrite(session, props.tenant, project);
  const submit = () =>
    run(async () => {
      props.onDone(
        await api<Report>("/v1/reports", {
          body: {
            project_id: project,
            status,
            period: period.trim(),
            summary,
            highlights: lines(highlights),
            risks: lines(risks),
          },
          tenant: props.tenant,
          headers: idempotencyKey(),
        }),
      );
    });
  return (
    <Form label="New status report" className="gv-form stack" onSubmit={() => void submit()}>
      <ProjectSelect projects={props.projects} value={project} onChange={setProject} />
      <fieldset className="gv-scope">
        <legend>Status</legend>
        <div className="gv-actions">
          {STATUSES.map((s) => (
            <label key={s} className="gv-check">
              <input type="radio" name="report-status" value={s} checked={status === s} onChange={() => setStatus(s)} />{" "}
              <StatusBadge status={s} />
            </label>
          ))}
        </div>
      </fieldset>
      <Field label="Period" hint="What it covers: 2025-W07, January 2025">
        <input value={period} onChange={(e) => setPeriod(e.target.value)} required maxLength={100} />
      </Field>
      <Field label="Summary (markdown)">
        <textarea value={summary} onChange={(e) => setSummary(e.target.value)} maxLength={20000} rows={6} />
      </Field>
      <label className="gv-check">
        <input type="checkbox" checked={preview} onChange={(e) => setPreview(e.target.checked)} /> Preview the summary
      </label>
      {preview ? <Markdown source={summary} headingBase={4} /> : null}
      <Field label="Highlights" hint="One per line.">
        <textarea value={highlights} onChange={(e) => setHighlights(e.target.value)} rows={3} />
      </Field>
      <Field label="Risks" hint="One per line.">
        <textarea value={risks} onChange={(e) => setRisks(e.target.value)} rows={3} />
      </Field>
      <ErrorBox error={error} />
      <Submit allowed={allowed} why={why} busy={busy}>
        Save report
      </Submit>
    </Form>
  );
}
