// Contracts of the tenant: list (status filter, "More"), create, and in the side panel one
// contract: its facts, status changes offered only for the allowed next states (draft → active
// → expired | terminated), an edit with If-Match, and its documents (upload, download).
import { useRef, useState } from "react";

import { api, send } from "../api";
import { Action, Empty, ErrorBox, Field, Loading, Notice, Page, Sheet, Table, time } from "../components/ui";
import { useApi, useRowActions, useSubmit } from "../hooks";
import { useSession } from "../session";
import { CONTRACT_STATUSES, contractProblems, Transitions } from "./govern/contracts";
import type { ContractForm, ContractStatus } from "./govern/contracts";
import { download, encode, failure, idempotencyKey, ifMatch, needs, tenantScope, usePaged, who } from "./govern/lib";
import { Form, More, NeedTenant, StatusBadge, Submit, WriteError } from "./govern/parts";

type ContractDocument = {
  id: string;
  name: string;
  content_type: string;
  size: number;
  sha256: string;
  uploaded_at: string;
  uploaded_by: string;
};

type Contract = {
  id: string;
  title: string;
  counterparty: string;
  status: ContractStatus;
  value: string;
  currency: string;
  start_date: string;
  end_date: string | null;
  documents: ContractDocument[];
  created_at: string;
  created_by: string;
  updated_at: string;
  version: number;
};

const EMPTY: ContractForm = { title: "", counterparty: "", value: "", currency: "EUR", start_date: "", end_date: "" };

function bytes(size: number): string {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KB`;
  return `${(size / 1024 / 1024).toFixed(1)} MB`;
}

export default function ContractsPage() {
  const session = useSession();
  const tenant = session.place.tenant;
  const [status, setStatus] = useState("");
  const list = usePaged<Contract>(
    tenant ? `/v1/contracts?limit=50${status ? `&status=${encode(status)}` : ""}` : null,
    tenant,
  );
  const [panel, setPanel] = useState<{ kind: "new" } | { kind: "detail"; id: string } | null>(null);

  if (!tenant) return <NeedTenant title="Contracts" />;
  const scope = tenantScope(tenant);
  const mayManage = session.can("report.manage", scope);
  const why = needs("report.manage", scope);

  return (
    <Page
      title="Contracts"
      actions={
        <Action kind="primary" allowed={mayManage} why={why} onClick={() => setPanel({ kind: "new" })}>
          New contract
        </Action>
      }
    >
      <div className="gv-bar">
        <Field label="Status">
          <select value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">All statuses</option>
            {CONTRACT_STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </Field>
      </div>
      <ErrorBox error={list.error} />
      <Loading when={list.loading && list.items.length === 0} />
      {!list.loading && !list.error && list.items.length === 0 ? <Empty>No contracts.</Empty> : null}
      {list.items.length ? (
        <Table
          label="Contracts"
          rows={list.items}
          rowKey={(c) => c.id}
          onRow={(c) => setPanel({ kind: "detail", id: c.id })}
          columns={[
            { title: "Title", cell: (c) => c.title },
            { title: "Counterparty", cell: (c) => c.counterparty },
            { title: "Status", cell: (c) => <StatusBadge status={c.status} /> },
            { title: "Value", className: "num", cell: (c) => `${c.value} ${c.currency}` },
            { title: "Start", cell: (c) => c.start_date },
            { title: "End", cell: (c) => c.end_date ?? "open-ended" },
            { title: "Documents", cell: (c) => c.documents.length },
            { title: "Updated", cell: (c) => time(c.updated_at) },
          ]}
        />
      ) : null}
      <More list={list} />
      {panel?.kind === "new" ? (
        <Sheet title="New contract" onClose={() => setPanel(null)}>
          <CreateContract
            tenant={tenant}
            allowed={mayManage}
            why={why}
            onDone={(c) => {
              list.reload();
              setPanel({ kind: "detail", id: c.id });
            }}
          />
        </Sheet>
      ) : null}
      {panel?.kind === "detail" ? (
        <Sheet title="Contract" onClose={() => setPanel(null)}>
          <ContractDetail key={panel.id} tenant={tenant} id={panel.id} allowed={mayManage} why={why} onChanged={list.reload} />
        </Sheet>
      ) : null}
    </Page>
  );
}

function ContractFields(props: {
  form: ContractForm;
  onChange: (form: ContractForm) => void;
  problems: Partial<Record<keyof ContractForm, string>>;
}) {
  const { form } = props;
  const field = (key: keyof ContractForm) => ({
    value: form[key],
    onChange: (e: { target: { value: string } }) =>
      props.onChange({ ...form, [key]: key === "currency" ? e.target.value.toUpperCase() : e.target.value }),
    "aria-invalid": props.problems[key] ? true : undefined,
  });
  const problem = (key: keyof ContractForm) =>
    props.problems[key] ? <small className="gv-hint">{props.problems[key]}</small> : null;
  return (
    <>
      <Field label="Title">
        <input {...field("title")} maxLength={200} />
        {problem("title")}
      </Field>
      <Field label="Counterparty">
        <input {...field("counterparty")} maxLength={200} />
        {problem("counterparty")}
      </Field>
      <Field label="Value" hint="A decimal as text, kept exactly: 12500.00">
        <input {...field("value")} inputMode="decimal" autoComplete="off" />
        {problem("value")}
      </Field>
      <Field label="Currency" hint="ISO 4217: EUR, USD">
        <input {...field("currency")} maxLength={3} autoComplete="off" />
        {problem("currency")}
      </Field>
      <Field label="Start date">
        <input type="date" {...field("start_date")} />
        {problem("start_date")}
      </Field>
      <Field label="End date (empty: open-ended)">
        <input type="date" {...field("end_date")} />
        {problem("end_date")}
      </Field>
    </>
  );
}

function CreateContract(props: { tenant: string; allowed: boolean; why: string; onDone: (c: Contract) => void }) {
  const [form, setForm] = useState<ContractForm>(EMPTY);
  const [status, setStatus] = useState<"draft" | "active">("draft");
  const [tried, setTried] = useState(false);
  const { run, busy, error } = useSubmit();
  const problems = tried ? contractProblems(form) : {};
  const submit = async () => {
    setTried(true);
    if (Object.keys(contractProblems(form)).length) return;
    await run(async () => {
      const made = await api<Contract>("/v1/contracts", {
        body: {
          title: form.title.trim(),
          counterparty: form.counterparty.trim(),
          value: form.value.trim(),
          currency: form.currency.trim(),
          start_date: form.start_date,
          end_date: form.end_date || null,
          status,
        },
        tenant: props.tenant,
        headers: idempotencyKey(),
      });
      props.onDone(made);
    });
  };
  return (
    <Form label="New contract" className="gv-form stack" onSubmit={() => void submit()}>
      <ContractFields form={form} onChange={setForm} problems={problems} />
      <Field label="Status">
        <select value={status} onChange={(e) => setStatus(e.target.value as "draft" | "active")}>
          <option value="draft">draft</option>
          <option value="active">active (already running)</option>
        </select>
      </Field>
      <ErrorBox error={error} />
      <Submit allowed={props.allowed} why={props.why} busy={busy}>
        Create contract
      </Submit>
    </Form>
  );
}

function formOf(c: Contract): ContractForm {
  return {
    title: c.title,
    counterparty: c.counterparty,
    value: c.value,
    currency: c.currency,
    start_date: c.start_date,
    end_date: c.end_date ?? "",
  };
}

function ContractDetail(props: { tenant: string; id: string; allowed: boolean; why: string; onChanged: () => void }) {
  const session = useSession();
  const path = `/v1/contracts/${encode(props.id)}`;
  const contract = useApi<Contract>(path, { tenant: props.tenant });
  const [editing, setEditing] = useState<ContractForm | null>(null);
  const { act: runRow, busy, error, setError, done } = useRowActions();
  const file = useRef<HTMLInputElement | null>(null);
  const [chosen, setChosen] = useState<File | null>(null);

  const act = (what: string, work: () => Promise<string>) =>
    runRow(
      what,
      async () => {
        const message = await work();
        props.onChanged();
        return message;
      },
      contract.reload,
    );

  const c = contract.data;
  if (!c) {
    return (
      <>
        <ErrorBox error={contract.error} />
        <Loading when={contract.loading} />
      </>
    );
  }

  const move = (to: ContractStatus) =>
    act("status", async () => {
      await api<Contract>(path, { method: "PATCH", body: { status: to }, tenant: props.tenant, headers: ifMatch(c.version) });
      return `Status changed from ${c.status} to ${to}.`;
    });

  const save = (form: ContractForm) =>
    act("edit", async () => {
      const before = formOf(c);
      const body: Record<string, string | null> = {};
      for (const key of Object.keys(form) as (keyof ContractForm)[]) {
        const value = form[key].trim();
        if (value !== before[key]) body[key] = key === "end_date" && !value ? null : value;
      }
      if (!Object.keys(body).length) {
        setEditing(null);
        return "Nothing changed.";
      }
      await api<Contract>(path, { method: "PATCH", body, tenant: props.tenant, headers: ifMatch(c.version) });
      setEditing(null);
      return "Saved.";
    });

  const upload = (f: File) =>
    act("upload", async () => {
      const response = await send(`${path}/documents?name=${encode(f.name)}`, {
        method: "POST",
        raw: f,
        tenant: props.tenant,
        headers: { "content-type": f.type || "application/octet-stream", ...idempotencyKey() },
      });
      if (!response.ok) throw await failure(response);
      setChosen(null);
      if (file.current) file.current.value = "";
      return `Uploaded ${f.name}.`;
    });

  const fetchDocument = (d: ContractDocument) =>
    act(`doc:${d.id}`, async () => {
      await download(`${path}/documents/${encode(d.id)}`, { tenant: props.tenant, fallbackName: d.name });
      return `Downloaded ${d.name}.`;
    });

  const problems = editing ? contractProblems(editing) : {};

  return (
    <div className="gv-section">
      <h3 style={{ margin: 0 }}>{c.title}</h3>
      <dl className="gv-kv">
        <dt>Status</dt>
        <dd>
          <StatusBadge status={c.status} />
        </dd>
        <dt>Counterparty</dt>
        <dd>{c.counterparty}</dd>
        <dt>Value</dt>
        <dd>
          {c.value} {c.currency}
        </dd>
        <dt>Runs</dt>
        <dd>
          {c.start_date} to {c.end_date ?? "open-ended"}
        </dd>
        <dt>Created</dt>
        <dd>
          {time(c.created_at)} by {who(c.created_by, session.me?.id)}
        </dd>
        <dt>Version</dt>
        <dd>
          {c.version} (updated {time(c.updated_at)})
        </dd>
      </dl>
      <WriteError
        error={error}
        onReload={() => {
          setError(null);
          contract.reload();
        }}
      />
      <Notice>{done}</Notice>

      <h3 className="small">Status</h3>
      <Transitions status={c.status} allowed={props.allowed} why={props.why} busy={busy === "status"} onMove={(to) => void move(to)} />

      <h3 className="small">Details</h3>
      {editing ? (
        <Form
          label="Edit the contract"
          className="gv-form stack"
          onSubmit={() => {
            if (!Object.keys(contractProblems(editing)).length) void save(editing);
          }}
        >
          <ContractFields form={editing} onChange={setEditing} problems={problems} />
          <p className="muted small">Saved only if the contract is still at version {c.version}.</p>
          <div className="gv-actions">
            <Submit
              allowed={props.allowed && !Object.keys(problems).length}
              why={Object.keys(problems).length ? "fix the fields above" : props.why}
              busy={busy === "edit"}
            >
              Save
            </Submit>
            <Action onClick={() => setEditing(null)}>Cancel</Action>
          </div>
        </Form>
      ) : (
        <div className="gv-actions">
          <Action allowed={props.allowed} why={props.why} onClick={() => setEditing(formOf(c))}>
            Edit
          </Action>
        </div>
      )}

      <h3 className="small">Documents</h3>
      {c.documents.length === 0 ? <Empty>No documents.</Empty> : null}
      {c.documents.length ? (
        <ul className="gv-docs">
          {c.documents.map((d) => (
            <li key={d.id}>
              <Action busy={busy === `doc:${d.id}`} onClick={() => void fetchDocument(d)}>
                <span aria-hidden="true">⬇ </span>
                {d.name}
              </Action>
              <span className="muted small">
                {" "}
                {bytes(d.size)} · {d.content_type} · {time(d.uploaded_at)}
              </span>
            </li>
          ))}
        </ul>
      ) : null}
      <Form
        label="Upload a document"
        className="gv-form stack"
        onSubmit={() => {
          if (chosen) void upload(chosen);
        }}
      >
        <Field label="Upload a document" hint="Any file up to the server's body limit (1 MiB by default).">
          <input ref={file} type="file" onChange={(e) => setChosen(e.target.files?.[0] ?? null)} />
        </Field>
        <Submit
          allowed={props.allowed && chosen !== null}
          why={chosen ? props.why : "choose a file"}
          busy={busy === "upload"}
        >
          Upload
        </Submit>
      </Form>
    </div>
  );
}
