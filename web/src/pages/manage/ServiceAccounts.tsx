// Service accounts of the tenant: list, create, and per account its API keys (create, rotate,
// revoke). A key's secret is shown once, when it is made, and never again.
import { useState } from "react";

import { api } from "../../api";
import { Action, ErrorBox, Field, ListState, pagedState, Page, Sheet, Table, time } from "../../components/ui";
import { useSubmit } from "../../hooks";
import { useSession } from "../../session";
import { KeyPanel } from "../govern/Keys";
import { idempotencyKey, needs, tenantScope, usePaged } from "../govern/lib";
import { Form, More, NeedTenant, StatusBadge, Submit } from "../govern/parts";

type ServiceAccount = {
  id: string;
  name: string;
  description: string | null;
  status: "active" | "disabled";
  created_at: string;
  created_by: string | null;
};

export default function ServiceAccountsPage() {
  const session = useSession();
  const tenant = session.place.tenant;
  const accounts = usePaged<ServiceAccount>(tenant ? "/v1/service-accounts?limit=100" : null, tenant);
  const [creating, setCreating] = useState(false);
  const [open, setOpen] = useState<ServiceAccount | null>(null);
  const [done, setDone] = useState<string | null>(null);

  if (!tenant) return <NeedTenant title="Service accounts" />;
  const scope = tenantScope(tenant);
  const mayManage = session.can("user.manage", scope);
  const why = needs("user.manage", scope);

  return (
    <Page
      title="Service accounts"
      actions={
        <Action kind="primary" allowed={mayManage} why={why} onClick={() => setCreating(true)}>
          New service account
        </Action>
      }
    >
      <p className="muted small">
        Service accounts act through API keys. Give one roles on the Role bindings page; disable or
        remove it on the Users page.
      </p>
      <ListState {...pagedState(accounts)} notice={done} emptyText="No service accounts." />
      {accounts.items.length ? (
        <Table
          label="Service accounts"
          rows={accounts.items}
          rowKey={(a) => a.id}
          onRow={(a) => setOpen(a)}
          columns={[
            { title: "Name", cell: (a) => a.name },
            { title: "Id", cell: (a) => <code>{a.id}</code> },
            { title: "Status", cell: (a) => <StatusBadge status={a.status} /> },
            { title: "Description", className: "wrap", cell: (a) => a.description ?? "—" },
            { title: "Created", cell: (a) => time(a.created_at) },
            { title: "Keys", cell: (a) => <Action onClick={() => setOpen(a)}>API keys</Action> },
          ]}
        />
      ) : null}
      <More list={accounts} />
      {creating ? (
        <Sheet title="New service account" onClose={() => setCreating(false)}>
          <CreateAccount
            tenant={tenant}
            allowed={mayManage}
            why={why}
            onDone={(a) => {
              setCreating(false);
              setDone(`Service account ${a.name} created. Create an API key for it, and bind it a role.`);
              accounts.reload();
              setOpen(a);
            }}
          />
        </Sheet>
      ) : null}
      {open ? (
        <Sheet title={`API keys of ${open.name}`} onClose={() => setOpen(null)}>
          <KeyPanel tenant={tenant} account={open} allowed={mayManage} why={why} />
        </Sheet>
      ) : null}
    </Page>
  );
}

function CreateAccount(props: {
  tenant: string;
  allowed: boolean;
  why: string;
  onDone: (a: ServiceAccount) => void;
}) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const { run, busy, error } = useSubmit();
  const submit = () =>
    run(async () => {
      props.onDone(
        await api<ServiceAccount>("/v1/service-accounts", {
          body: { name: name.trim(), description: description.trim() || null },
          tenant: props.tenant,
          headers: idempotencyKey(),
        }),
      );
    });
  return (
    <Form label="New service account" className="gv-form stack" onSubmit={() => void submit()}>
      <Field label="Name">
        <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
      </Field>
      <Field label="Description (optional)">
        <input value={description} onChange={(e) => setDescription(e.target.value)} maxLength={500} />
      </Field>
      <ErrorBox error={error} />
      <Submit allowed={props.allowed} why={props.why} busy={busy}>
        Create service account
      </Submit>
    </Form>
  );
}
