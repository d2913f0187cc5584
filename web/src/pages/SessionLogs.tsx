// Session logs: the logs the caller may see (newest first, "More", a project filter), one log
// read in the side panel with its markdown rendered safely (React elements, never HTML), and a
// new log with its visibility.
import { useState } from "react";

import { api } from "../api";
import { Action, Empty, ErrorBox, Field, ListState, Loading, Page, Sheet, Table, pagedState, time } from "../components/ui";
import { useApi, useSubmit } from "../hooks";
import { useSession } from "../session";
import { encode, idempotencyKey, needs, projectScope, usePaged, who } from "./govern/lib";
import type { Paged } from "./govern/lib";
import { Markdown } from "./govern/markdown";
import { Form, More, NeedTenant, ProjectSelect, reportWrite, Submit } from "./govern/parts";

type Visibility = "private" | "team" | "project" | "tenant";

type SessionLog = {
  id: string;
  project_id: string;
  visibility: Visibility;
  content: string;
  author: string;
  created_at: string;
};

type Project = { slug: string; name: string };

const VISIBILITY: { value: Visibility; label: string }[] = [
  { value: "private", label: "Private: only you" },
  { value: "team", label: "Team: readers through the project's team, the tenant or the system" },
  { value: "project", label: "Project: everyone who reads the project's reports" },
  { value: "tenant", label: "Tenant: everyone who reads reports anywhere in the tenant" },
];

/** A log's first line of text, for the list. */
export function firstLine(content: string): string {
  const line = content
    .split(/\r?\n/)
    .map((l) => l.replace(/^\s*(#{1,6}|[-*+>]|\d+[.)])\s*/, "").trim())
    .find((l) => l && !/^(```|~~~)/.test(l));
  if (!line) return "—";
  return line.length > 80 ? `${line.slice(0, 79)}…` : line;
}

export default function SessionLogsPage() {
  const session = useSession();
  const tenant = session.place.tenant;
  const projects = useApi<Paged<Project>>(tenant ? "/v1/projects?limit=200" : null, { tenant });
  const [project, setProject] = useState(session.place.project ?? "");
  const logs = usePaged<SessionLog>(
    tenant ? `/v1/session-logs?limit=20${project ? `&project=${encode(project)}` : ""}` : null,
    tenant,
  );
  const [open, setOpen] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);

  if (!tenant) return <NeedTenant title="Session logs" />;
  const slugs = (projects.data?.items ?? []).map((p) => p.slug);
  if (project && !slugs.includes(project)) slugs.push(project);
  const writable = slugs.filter((slug) => session.can("report.manage", projectScope(tenant, slug)));

  return (
    <Page
      title="Session logs"
      actions={
        <Action
          kind="primary"
          allowed={writable.length > 0}
          why={needs("report.manage", project ? projectScope(tenant, project) : "a project")}
          onClick={() => setCreating(true)}
        >
          New session log
        </Action>
      }
    >
      <div className="gv-bar">
        <ProjectSelect all projects={slugs} value={project} onChange={setProject} />
      </div>
      <ListState {...pagedState(logs)} emptyText="No session logs you may see." />
      {logs.items.length ? (
        <Table
          label="Session logs"
          rows={logs.items}
          rowKey={(l) => l.id}
          onRow={(l) => setOpen(l.id)}
          columns={[
            { title: "Log", cell: (l) => firstLine(l.content) },
            { title: "Project", cell: (l) => l.project_id },
            { title: "Visibility", cell: (l) => <span className="badge">{l.visibility}</span> },
            { title: "Author", cell: (l) => who(l.author, session.me?.id) },
            { title: "Written", cell: (l) => time(l.created_at) },
          ]}
        />
      ) : null}
      <More list={logs} />
      {open ? (
        <Sheet title="Session log" onClose={() => setOpen(null)}>
          <LogView tenant={tenant} id={open} />
        </Sheet>
      ) : null}
      {creating ? (
        <Sheet title="New session log" onClose={() => setCreating(false)}>
          <LogForm
            tenant={tenant}
            projects={writable}
            initial={project && writable.includes(project) ? project : (writable[0] ?? "")}
            onDone={(log) => {
              setCreating(false);
              logs.reload();
              setOpen(log.id);
            }}
          />
        </Sheet>
      ) : null}
    </Page>
  );
}

function LogView({ tenant, id }: { tenant: string; id: string }) {
  const session = useSession();
  const log = useApi<SessionLog>(`/v1/session-logs/${encode(id)}`, { tenant });
  if (!log.data) {
    return (
      <>
        <ErrorBox error={log.error} />
        <Loading when={log.loading} />
      </>
    );
  }
  const l = log.data;
  return (
    <div className="gv-section">
      <dl className="gv-kv">
        <dt>Project</dt>
        <dd>{l.project_id}</dd>
        <dt>Visibility</dt>
        <dd>{l.visibility}</dd>
        <dt>Author</dt>
        <dd>{who(l.author, session.me?.id)}</dd>
        <dt>Written</dt>
        <dd>{time(l.created_at)}</dd>
      </dl>
      <Markdown source={l.content} />
    </div>
  );
}

function LogForm(props: {
  tenant: string;
  projects: string[];
  initial: string;
  onDone: (log: SessionLog) => void;
}) {
  const session = useSession();
  const [project, setProject] = useState(props.initial);
  const [visibility, setVisibility] = useState<Visibility>("project");
  const [content, setContent] = useState("");
  const [preview, setPreview] = useState(false);
  const { run, busy, error } = useSubmit();
  const { allowed, why } = reportWrite(session, props.tenant, project);
  const submit = () =>
    run(async () => {
      props.onDone(
        await api<SessionLog>("/v1/session-logs", {
          body: { project_id: project, visibility, content },
          tenant: props.tenant,
          headers: idempotencyKey(),
        }),
      );
    });
  return (
    <Form label="New session log" className="gv-form stack" onSubmit={() => void submit()}>
      <ProjectSelect projects={props.projects} value={project} onChange={setProject} />
      <Field label="Visibility">
        <select value={visibility} onChange={(e) => setVisibility(e.target.value as Visibility)}>
          {VISIBILITY.map((v) => (
            <option key={v.value} value={v.value}>
              {v.label}
            </option>
          ))}
        </select>
      </Field>
      <Field label="Content (markdown)">
        <textarea value={content} onChange={(e) => setContent(e.target.value)} required maxLength={200000} rows={10} />
      </Field>
      <label className="gv-check">
        <input type="checkbox" checked={preview} onChange={(e) => setPreview(e.target.checked)} /> Preview
      </label>
      {preview ? content.trim() ? <Markdown source={content} /> : <Empty>Nothing to preview.</Empty> : null}
      <ErrorBox error={error} />
      <Submit
        allowed={allowed && content.trim().length > 0}
        why={!content.trim() ? "write something first" : why}
        busy={busy}
      >
        Save log
      </Submit>
    </Form>
  );
}
