// Projects of the tenant: list, create (name, slug, team), rename and move to a team (If-Match),
// and each project's environments (list, create). The API has no route to delete a project or
// an environment, so the page offers none.
import { useState } from "react";

import { api } from "../../api";
import { Action, Empty, ErrorBox, Field, ListState, Loading, Notice, Page, Sheet, Table, time } from "../../components/ui";
import { useApi, useSubmit } from "../../hooks";
import { useSession } from "../../session";
import type { Session } from "../../session";
import { encode, idempotencyKey, ifMatch, needs, projectScope, teamScope, tenantScope } from "../govern/lib";
import type { Paged } from "../govern/lib";
import { Form, NeedTenant, Submit, WriteError } from "../govern/parts";

type Project = {
  id: string;
  slug: string;
  name: string;
  team_id: string | null;
  created_at: string;
  updated_at: string;
  version: number;
};

type Team = { id: string; name: string };
type Env = { name: string; project: string; created_at: string };

/** Whether the caller may create a project in `team` (or with no team: on the tenant). */
function mayCreateIn(session: Session, tenant: string, team: string | null): boolean {
  return session.can("project.manage", team ? teamScope(tenant, team) : tenantScope(tenant));
}

export default function ProjectsPage() {
  const session = useSession();
  const tenant = session.place.tenant;
  const projects = useApi<Paged<Project>>(tenant ? "/v1/projects?limit=200" : null, { tenant });
  const teams = useApi<Paged<Team>>(tenant ? "/v1/teams?limit=200" : null, { tenant });
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<Project | null>(null);
  const [open, setOpen] = useState<Project | null>(null);
  const [done, setDone] = useState<string | null>(null);

  if (!tenant) return <NeedTenant title="Projects" />;
  const teamList = teams.data?.items ?? null;
  const teamName = (id: string | null) => (id ? (teamList?.find((t) => t.id === id)?.name ?? id) : "—");
  const mayCreate =
    mayCreateIn(session, tenant, null) || (teamList ?? []).some((t) => mayCreateIn(session, tenant, t.id));
  const manageWhy = (p: Project) => needs("project.manage", projectScope(tenant, p.slug));

  return (
    <Page
      title="Projects"
      actions={
        <Action
          kind="primary"
          allowed={mayCreate}
          why={needs("project.manage", tenantScope(tenant))}
          onClick={() => setCreating(true)}
        >
          New project
        </Action>
      }
    >
      <ListState
        error={projects.error}
        notice={done}
        loading={projects.loading && !projects.data}
        empty={projects.data?.items.length === 0}
        emptyText="No projects yet."
      />
      {projects.data && projects.data.items.length > 0 ? (
        <Table
          label="Projects"
          rows={projects.data.items}
          rowKey={(p) => p.slug}
          onRow={(p) => setOpen(p)}
          columns={[
            { title: "Name", cell: (p) => p.name },
            { title: "Slug", cell: (p) => <code>{p.slug}</code> },
            { title: "Team", cell: (p) => teamName(p.team_id) },
            { title: "Updated", cell: (p) => time(p.updated_at) },
            {
              title: "Actions",
              cell: (p) => (
                <span className="gv-actions">
                  <Action onClick={() => setOpen(p)}>Environments</Action>
                  <Action
                    allowed={session.can("project.manage", projectScope(tenant, p.slug))}
                    why={manageWhy(p)}
                    onClick={() => setEditing(p)}
                  >
                    Edit
                  </Action>
                </span>
              ),
            },
          ]}
        />
      ) : null}
      <p className="muted small">Projects and environments cannot be deleted through the API.</p>
      {creating ? (
        <Sheet title="New project" onClose={() => setCreating(false)}>
          <ProjectForm
            tenant={tenant}
            teams={teamList}
            onDone={(p) => {
              setCreating(false);
              setDone(`Project ${p.slug} created.`);
              projects.reload();
            }}
          />
        </Sheet>
      ) : null}
      {editing ? (
        <Sheet title={`Edit ${editing.slug}`} onClose={() => setEditing(null)}>
          <ProjectForm
            tenant={tenant}
            teams={teamList}
            project={editing}
            onDone={(p) => {
              setEditing(null);
              setDone(`Project ${p.slug} saved.`);
              projects.reload();
            }}
            onStale={() => {
              setEditing(null);
              projects.reload();
            }}
          />
        </Sheet>
      ) : null}
      {open ? (
        <Sheet title={`Environments of ${open.slug}`} onClose={() => setOpen(null)}>
          <Environments
            tenant={tenant}
            project={open}
            allowed={session.can("project.manage", projectScope(tenant, open.slug))}
            why={manageWhy(open)}
          />
        </Sheet>
      ) : null}
    </Page>
  );
}

function ProjectForm(props: {
  tenant: string;
  teams: Team[] | null;
  project?: Project;
  onDone: (p: Project) => void;
  onStale?: () => void;
}) {
  const session = useSession();
  const [name, setName] = useState(props.project?.name ?? "");
  const [slug, setSlug] = useState("");
  const [team, setTeam] = useState(props.project?.team_id ?? "");
  const { run, busy, error } = useSubmit();
  const project = props.project;
  const allowed = project
    ? session.can("project.manage", projectScope(props.tenant, project.slug))
    : mayCreateIn(session, props.tenant, team || null);
  const why = project
    ? needs("project.manage", projectScope(props.tenant, project.slug))
    : needs("project.manage", team ? teamScope(props.tenant, team) : tenantScope(props.tenant));

  const submit = () =>
    run(async () => {
      let saved: Project;
      if (project) {
        const body: { name?: string; team_id?: string } = {};
        if (name.trim() !== project.name) body.name = name.trim();
        if (team && team !== project.team_id) body.team_id = team;
        saved = await api<Project>(`/v1/projects/${encode(project.slug)}`, {
          method: "PATCH",
          body,
          tenant: props.tenant,
          headers: ifMatch(project.version),
        });
      } else {
        const body: { name: string; slug?: string; team_id?: string } = { name: name.trim() };
        if (slug.trim()) body.slug = slug.trim();
        if (team) body.team_id = team;
        saved = await api<Project>("/v1/projects", { body, tenant: props.tenant, headers: idempotencyKey() });
      }
      props.onDone(saved);
    });

  return (
    <Form label={project ? "Edit project" : "New project"} className="gv-form stack" onSubmit={() => void submit()}>
      <Field label="Name">
        <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
      </Field>
      {project ? null : (
        <Field label="Slug (optional)" hint="Lower-case letters, digits and dashes; default: from the name. It cannot change later.">
          <input value={slug} onChange={(e) => setSlug(e.target.value)} pattern="[a-z0-9][a-z0-9\-]{0,62}" />
        </Field>
      )}
      {props.teams ? (
        <Field label="Team">
          <select value={team} onChange={(e) => setTeam(e.target.value)}>
            <option value="">{project?.team_id ? "Keep the current team" : "No team"}</option>
            {props.teams.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name}
              </option>
            ))}
          </select>
        </Field>
      ) : (
        <Field label="Team id (optional)">
          <input value={team} onChange={(e) => setTeam(e.target.value)} />
        </Field>
      )}
      <WriteError error={error} onReload={props.onStale} />
      <Submit allowed={allowed} why={why} busy={busy}>
        {project ? "Save" : "Create project"}
      </Submit>
    </Form>
  );
}

function Environments(props: { tenant: string; project: Project; allowed: boolean; why: string }) {
  const path = `/v1/projects/${encode(props.project.slug)}/envs?limit=100`;
  const envs = useApi<Paged<Env>>(path, { tenant: props.tenant });
  const [name, setName] = useState("");
  const { run, busy, error } = useSubmit();
  const [done, setDone] = useState<string | null>(null);
  const submit = () =>
    run(async () => {
      setDone(null);
      const env = await api<Env>(`/v1/projects/${encode(props.project.slug)}/envs`, {
        body: { name: name.trim() },
        tenant: props.tenant,
        headers: idempotencyKey(),
      });
      setDone(`Environment ${env.name} created.`);
      setName("");
      envs.reload();
    });
  return (
    <div className="gv-section">
      <ErrorBox error={envs.error} />
      <Loading when={envs.loading && !envs.data} />
      {envs.data && envs.data.items.length === 0 ? <Empty>No environments yet.</Empty> : null}
      {envs.data && envs.data.items.length > 0 ? (
        <ul>
          {envs.data.items.map((e) => (
            <li key={e.name}>
              <code>{e.name}</code> <span className="muted small">created {time(e.created_at)}</span>
            </li>
          ))}
        </ul>
      ) : null}
      <Form label="New environment" className="gv-form stack" onSubmit={() => void submit()}>
        <Field label="New environment" hint="dev, staging, prod, or any slug.">
          <input value={name} onChange={(e) => setName(e.target.value)} required pattern="[a-z0-9][a-z0-9\-]{0,62}" />
        </Field>
        <ErrorBox error={error} />
        <Notice>{done}</Notice>
        <Submit allowed={props.allowed} why={props.why} busy={busy}>
          Create environment
        </Submit>
      </Form>
    </div>
  );
}
