// Teams of the tenant: list, create, rename and set the lead (If-Match). The API has no route to
// delete a team, so the page offers none.
import { useState } from "react";

import { api } from "../../api";
import { Action, Field, ListState, Page, Sheet, Table, time } from "../../components/ui";
import { useApi, useSubmit } from "../../hooks";
import { useSession } from "../../session";
import { encode, idempotencyKey, ifMatch, needs, teamScope, tenantScope } from "../govern/lib";
import type { Paged } from "../govern/lib";
import { Form, NeedTenant, Submit, WriteError } from "../govern/parts";

type Team = {
  id: string;
  name: string;
  lead_user_id: string | null;
  created_at: string;
  updated_at: string;
  version: number;
};

type Member = { id: string; kind: string; email: string | null; display_name: string; status: string };

function LeadPicker(props: { people: Member[] | null; value: string; onChange: (id: string) => void }) {
  if (!props.people) {
    return (
      <Field label="Lead (user id, optional)" hint="The member list is not readable with your roles: type the id.">
        <input value={props.value} onChange={(e) => props.onChange(e.target.value)} />
      </Field>
    );
  }
  return (
    <Field label="Lead (optional)">
      <select value={props.value} onChange={(e) => props.onChange(e.target.value)}>
        <option value="">No lead</option>
        {props.people.map((m) => (
          <option key={m.id} value={m.id}>
            {m.display_name}
            {m.email ? ` <${m.email}>` : ""}
          </option>
        ))}
      </select>
    </Field>
  );
}

export default function TeamsPage() {
  const session = useSession();
  const tenant = session.place.tenant;
  const teams = useApi<Paged<Team>>(tenant ? "/v1/teams?limit=200" : null, { tenant });
  const mayReadUsers = tenant ? session.can("user.read", tenantScope(tenant)) : false;
  const members = useApi<Paged<Member>>(tenant && mayReadUsers ? "/v1/users?limit=200" : null, { tenant });
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<Team | null>(null);
  const [done, setDone] = useState<string | null>(null);

  if (!tenant) return <NeedTenant title="Teams" />;
  const mayCreate = session.can("team.manage", tenantScope(tenant));
  const people = members.data ? members.data.items.filter((m) => m.kind === "user") : null;
  const nameOf = (id: string | null) => {
    if (!id) return "—";
    const found = members.data?.items.find((m) => m.id === id);
    return found ? (found.email ?? found.display_name) : id;
  };

  return (
    <Page
      title="Teams"
      actions={
        <Action
          kind="primary"
          allowed={mayCreate}
          why={needs("team.manage", tenantScope(tenant))}
          onClick={() => setCreating(true)}
        >
          New team
        </Action>
      }
    >
      <ListState
        error={teams.error}
        notice={done}
        loading={teams.loading && !teams.data}
        empty={teams.data?.items.length === 0}
        emptyText="No teams yet."
      />
      {teams.data && teams.data.items.length > 0 ? (
        <Table
          label="Teams"
          rows={teams.data.items}
          rowKey={(t) => t.id}
          columns={[
            { title: "Name", cell: (t) => t.name },
            { title: "Id", cell: (t) => <code>{t.id}</code> },
            { title: "Lead", cell: (t) => nameOf(t.lead_user_id) },
            { title: "Updated", cell: (t) => time(t.updated_at) },
            {
              title: "Actions",
              cell: (t) => (
                <Action
                  allowed={session.can("team.manage", teamScope(tenant, t.id))}
                  why={needs("team.manage", teamScope(tenant, t.id))}
                  onClick={() => setEditing(t)}
                >
                  Rename or set lead
                </Action>
              ),
            },
          ]}
        />
      ) : null}
      <p className="muted small">Teams cannot be deleted through the API.</p>
      {creating ? (
        <Sheet title="New team" onClose={() => setCreating(false)}>
          <TeamForm
            tenant={tenant}
            people={people}
            allowed={mayCreate}
            why={needs("team.manage", tenantScope(tenant))}
            onDone={(t) => {
              setCreating(false);
              setDone(`Team ${t.name} created.`);
              teams.reload();
            }}
          />
        </Sheet>
      ) : null}
      {editing ? (
        <Sheet title={`Team ${editing.name}`} onClose={() => setEditing(null)}>
          <TeamForm
            tenant={tenant}
            team={editing}
            people={people}
            allowed={session.can("team.manage", teamScope(tenant, editing.id))}
            why={needs("team.manage", teamScope(tenant, editing.id))}
            onDone={(t) => {
              setEditing(null);
              setDone(`Team ${t.name} saved.`);
              teams.reload();
            }}
            onStale={() => {
              setEditing(null);
              teams.reload();
            }}
          />
        </Sheet>
      ) : null}
    </Page>
  );
}

function TeamForm(props: {
  tenant: string;
  team?: Team;
  people: Member[] | null;
  allowed: boolean;
  why: string;
  onDone: (team: Team) => void;
  onStale?: () => void;
}) {
  const [name, setName] = useState(props.team?.name ?? "");
  const [lead, setLead] = useState(props.team?.lead_user_id ?? "");
  const { run, busy, error } = useSubmit();
  const submit = () =>
    run(async () => {
      const team = props.team;
      let saved: Team;
      if (team) {
        const body: { name?: string; lead_user_id?: string } = {};
        if (name.trim() !== team.name) body.name = name.trim();
        if (lead && lead !== team.lead_user_id) body.lead_user_id = lead;
        saved = await api<Team>(`/v1/teams/${encode(team.id)}`, {
          method: "PATCH",
          body,
          tenant: props.tenant,
          headers: ifMatch(team.version),
        });
      } else {
        saved = await api<Team>("/v1/teams", {
          body: { name: name.trim(), lead_user_id: lead || null },
          tenant: props.tenant,
          headers: idempotencyKey(),
        });
      }
      props.onDone(saved);
    });
  return (
    <Form label={props.team ? "Edit team" : "New team"} className="gv-form stack" onSubmit={() => void submit()}>
      <Field label="Name">
        <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
      </Field>
      <LeadPicker people={props.people} value={lead} onChange={setLead} />
      {props.team?.lead_user_id ? (
        <p className="muted small">A lead can be changed to another member, not removed.</p>
      ) : null}
      <WriteError error={error} onReload={props.onStale} />
      <Submit allowed={props.allowed} why={props.why} busy={busy}>
        {props.team ? "Save" : "Create team"}
      </Submit>
    </Form>
  );
}
