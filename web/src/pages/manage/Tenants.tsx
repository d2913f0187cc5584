// Tenants (system administrators): list, create, rename (If-Match), suspend and resume, delete
// (soft, after a confirmation). Tenant roles see their own tenants, read-only.
import { useState } from "react";

import { api } from "../../api";
import { Action, Empty, ErrorBox, Field, Loading, Notice, Page, Sheet, Table, time } from "../../components/ui";
import { useApi, useRowActions, useSubmit } from "../../hooks";
import { useSession } from "../../session";
import { encode, idempotencyKey, ifMatch, needs } from "../govern/lib";
import type { Paged } from "../govern/lib";
import { Confirm, Form, StatusBadge, Submit, WriteError } from "../govern/parts";

type Tenant = {
  id: string;
  name: string;
  region: string;
  status: "active" | "suspended" | "deleted";
  kms_key_id: string;
  created_at: string;
  updated_at: string;
  version: number;
};

export default function TenantsPage() {
  const session = useSession();
  const tenants = useApi<Paged<Tenant>>("/v1/tenants?limit=200");
  const allowed = session.can("tenant.manage", "system");
  const why = needs("tenant.manage", "system");
  const [showDeleted, setShowDeleted] = useState(false);
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<Tenant | null>(null);
  const { act: runRow, busy, error, done, setDone } = useRowActions();

  const act = (what: string, work: () => Promise<unknown>, message: string) =>
    runRow(
      what,
      async () => {
        await work();
        return message;
      },
      tenants.reload,
    );

  const setStatus = (t: Tenant, status: "active" | "suspended") =>
    act(
      `status:${t.id}`,
      () =>
        api(`/v1/tenants/${encode(t.id)}`, {
          method: "PATCH",
          body: { status },
          headers: ifMatch(t.version),
        }),
      `Tenant ${t.id} ${status === "active" ? "resumed" : "suspended"}.`,
    );
  const remove = (t: Tenant) =>
    act(
      `delete:${t.id}`,
      () => api(`/v1/tenants/${encode(t.id)}`, { method: "DELETE", headers: ifMatch(t.version) }),
      `Tenant ${t.id} deleted.`,
    );

  const rows = (tenants.data?.items ?? []).filter((t) => showDeleted || t.status !== "deleted");
  const regions = [...new Set((tenants.data?.items ?? []).map((t) => t.region))];

  return (
    <Page
      title="Tenants"
      actions={
        <Action kind="primary" allowed={allowed} why={why} onClick={() => setCreating(true)}>
          New tenant
        </Action>
      }
    >
      {!allowed ? (
        <p className="muted">You can see the tenants you belong to; managing tenants needs a system administrator.</p>
      ) : null}
      <ErrorBox error={tenants.error} />
      <WriteError error={error} onReload={tenants.reload} />
      <Notice>{done}</Notice>
      <label className="gv-check">
        <input type="checkbox" checked={showDeleted} onChange={(e) => setShowDeleted(e.target.checked)} /> Show
        deleted tenants
      </label>
      <Loading when={tenants.loading && !tenants.data} />
      {tenants.data && rows.length === 0 ? <Empty>No tenants.</Empty> : null}
      {rows.length ? (
        <Table
          label="Tenants"
          rows={rows}
          rowKey={(t) => t.id}
          columns={[
            { title: "Id", cell: (t) => <code>{t.id}</code> },
            { title: "Name", cell: (t) => t.name },
            { title: "Region", cell: (t) => t.region },
            { title: "Status", cell: (t) => <StatusBadge status={t.status} /> },
            { title: "Updated", cell: (t) => time(t.updated_at) },
            {
              title: "Actions",
              cell: (t) =>
                t.status === "deleted" ? (
                  <span className="muted">—</span>
                ) : (
                  <span className="gv-actions">
                    <Action allowed={allowed} why={why} onClick={() => setEditing(t)}>
                      Rename
                    </Action>
                    {t.status === "active" ? (
                      <Confirm
                        kind="plain"
                        label="Suspend"
                        question={`Suspend ${t.id}? Its members are refused and its steps get no events.`}
                        allowed={allowed}
                        why={why}
                        busy={busy === `status:${t.id}`}
                        onConfirm={() => setStatus(t, "suspended")}
                      />
                    ) : (
                      <Action
                        allowed={allowed}
                        why={why}
                        busy={busy === `status:${t.id}`}
                        onClick={() => void setStatus(t, "active")}
                      >
                        Resume
                      </Action>
                    )}
                    <Confirm
                      label="Delete"
                      question={`Delete tenant ${t.id}? It answers as not found from then on.`}
                      allowed={allowed}
                      why={why}
                      busy={busy === `delete:${t.id}`}
                      onConfirm={() => remove(t)}
                    />
                  </span>
                ),
            },
          ]}
        />
      ) : null}
      {creating ? (
        <Sheet title="New tenant" onClose={() => setCreating(false)}>
          <CreateTenant
            allowed={allowed}
            why={why}
            region={regions[0] ?? ""}
            onCreated={(t) => {
              setCreating(false);
              setDone(`Tenant ${t.id} created.`);
              tenants.reload();
            }}
          />
        </Sheet>
      ) : null}
      {editing ? (
        <Sheet title={`Rename ${editing.id}`} onClose={() => setEditing(null)}>
          <RenameTenant
            tenant={editing}
            allowed={allowed}
            why={why}
            onDone={(t) => {
              setEditing(null);
              setDone(`Tenant ${t.id} renamed to ${t.name}.`);
              tenants.reload();
            }}
            onStale={() => {
              setEditing(null);
              tenants.reload();
            }}
          />
        </Sheet>
      ) : null}
    </Page>
  );
}

function CreateTenant(props: { allowed: boolean; why: string; region: string; onCreated: (t: Tenant) => void }) {
  const [id, setId] = useState("");
  const [name, setName] = useState("");
  const [region, setRegion] = useState(props.region);
  const { run, busy, error } = useSubmit();
  const submit = () =>
    run(async () => {
      const body: { name: string; region: string; id?: string } = { name: name.trim(), region: region.trim() };
      if (id.trim()) body.id = id.trim();
      props.onCreated(await api<Tenant>("/v1/tenants", { body, headers: idempotencyKey() }));
    });
  return (
    <Form label="New tenant" className="gv-form stack" onSubmit={() => void submit()}>
      <Field label="Name">
        <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
      </Field>
      <Field label="Id (optional)" hint="Lower-case letters, digits and dashes; default: from the name.">
        <input value={id} onChange={(e) => setId(e.target.value)} pattern="[a-z0-9][a-z0-9\-]{0,62}" />
      </Field>
      <Field label="Region" hint="Where its data lives, such as local or europe-west1.">
        <input value={region} onChange={(e) => setRegion(e.target.value)} required pattern="[a-z]+(-[a-z]+)*[0-9]*" />
      </Field>
      <ErrorBox error={error} />
      <Submit allowed={props.allowed} why={props.why} busy={busy}>
        Create tenant
      </Submit>
    </Form>
  );
}

function RenameTenant(props: {
  tenant: Tenant;
  allowed: boolean;
  why: string;
  onDone: (t: Tenant) => void;
  onStale: () => void;
}) {
  const [name, setName] = useState(props.tenant.name);
  const { run, busy, error } = useSubmit();
  const submit = () =>
    run(async () => {
      props.onDone(
        await api<Tenant>(`/v1/tenants/${encode(props.tenant.id)}`, {
          method: "PATCH",
          body: { name: name.trim() },
          headers: ifMatch(props.tenant.version),
        }),
      );
    });
  return (
    <Form label={`Rename ${props.tenant.id}`} className="gv-form stack" onSubmit={() => void submit()}>
      <Field label="Name">
        <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
      </Field>
      <p className="muted small">Saved only if nobody changed the tenant since version {props.tenant.version}.</p>
      <WriteError error={error} onReload={props.onStale} />
      <Submit allowed={props.allowed} why={props.why} busy={busy}>
        Save
      </Submit>
    </Form>
  );
}
