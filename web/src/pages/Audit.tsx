// The audit trail: records (filters actor, action, target, since, until; "More" pages on),
// Verify (the chain, its checkpoints and anchors), the signed checkpoints, and Export (the
// offline-verifiable zip bundle). The tenant's chain, or the system chain for system-wide roles.
import { useMemo, useState } from "react";

import { send } from "../api";
import { Action, Empty, ErrorBox, Field, Json, Loading, Notice, Page, Sheet, Table, time } from "../components/ui";
import { asError, useApi } from "../hooks";
import { useSession } from "../session";
import { failure, needs, saveBlob, short, tenantScope, usePaged } from "./govern/lib";
import type { Paged } from "./govern/lib";
import { Form, More, StatusBadge, Submit } from "./govern/parts";
import { anchoring, CheckpointFacts, VerifyPanel } from "./govern/Verify";
import type { Checkpoint } from "./govern/Verify";

type AuditRecord = {
  seq: number;
  chain: string;
  time: string;
  actor: { id?: string; kind?: string; email?: string; [key: string]: unknown };
  action: string;
  target: { type?: string; id?: string; [key: string]: unknown };
  scope: string;
  outcome: string;
  hash: string;
  prev_hash: string;
  leaf_hash?: string | null;
  correlation_id?: string | null;
  trace_id?: string | null;
  client_address?: string | null;
  user_agent?: string | null;
  details?: Record<string, unknown> | null;
  payload_hash?: string | null;
  payload_ref?: string | null;
};

type Filters = { actor: string; action: string; target: string; since: string; until: string };

const NO_FILTERS: Filters = { actor: "", action: "", target: "", since: "", until: "" };

/** A `datetime-local` value (local time) as RFC 3339 in UTC; empty stays empty. */
export function rfc3339(local: string): string {
  if (!local) return "";
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

export function recordsPath(filters: Filters): string {
  const search = new URLSearchParams({ limit: "50" });
  for (const key of ["actor", "action", "target"] as const) {
    if (filters[key].trim()) search.set(key, filters[key].trim());
  }
  const since = rfc3339(filters.since);
  const until = rfc3339(filters.until);
  if (since) search.set("since", since);
  if (until) search.set("until", until);
  return `/v1/audit/records?${search.toString()}`;
}

function actorText(actor: AuditRecord["actor"], names?: Map<string, string>): string {
  const who = actor.email ?? (actor.id ? (names?.get(actor.id) ?? actor.id) : "—");
  return actor.kind && actor.kind !== "user" ? `${who} (${actor.kind.replace("_", " ")})` : String(who);
}

/** Whether the screen is wide enough to show the filters open from the start. */
function wide(): boolean {
  return typeof window.matchMedia === "function" && window.matchMedia("(min-width: 900px)").matches;
}

function targetText(target: AuditRecord["target"]): string {
  return [target.type, target.id].filter(Boolean).join("/") || "—";
}

export default function AuditPage() {
  const session = useSession();
  const tenant = session.place.tenant;
  const systemWide = session.can("audit.read", "system");
  const [wantSystem, setWantSystem] = useState(false);
  const onTenant = tenant !== null && !(wantSystem && systemWide);
  const header = onTenant ? tenant : null;
  const scope = onTenant ? tenantScope(tenant) : "system";
  const mayRead = session.can("audit.read", scope);
  const mayExport = session.can("audit.export", scope);

  const [draft, setDraft] = useState<Filters>(NO_FILTERS);
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const usable = mayRead && (onTenant || systemWide);
  const records = usePaged<AuditRecord>(usable ? recordsPath(filters) : null, header);
  const checkpoints = usePaged<Checkpoint>(usable ? "/v1/audit/checkpoints?limit=10" : null, header);
  const [open, setOpen] = useState<AuditRecord | null>(null);
  const [filtersOpen] = useState(wide);
  // names for actor ids, where the caller may read the tenant's members (auditors may)
  const members = useApi<Paged<{ id: string; email: string | null; display_name: string }>>(
    onTenant && session.can("user.read", scope) ? "/v1/users?limit=200" : null,
    { tenant: header },
  );
  const names = useMemo(
    () => new Map((members.data?.items ?? []).map((m) => [m.id, m.email ?? m.display_name])),
    [members.data],
  );
  const [exporting, setExporting] = useState(false);
  const [exportError, setExportError] = useState<Error | null>(null);
  const [exported, setExported] = useState<string | null>(null);

  const exportBundle = async () => {
    setExporting(true);
    setExportError(null);
    setExported(null);
    try {
      const response = await send("/v1/audit/export", {
        method: "POST",
        tenant: header,
        accept: "application/zip",
      });
      if (!response.ok) throw await failure(response);
      const blob = await response.blob();
      const id = response.headers.get("x-export-id") ?? new Date().toISOString().replace(/[:.]/g, "-");
      const name = `cfp-audit-${id}.zip`;
      saveBlob(blob, name);
      const sha = response.headers.get("x-content-sha256");
      setExported(
        `Exported ${name} (${Math.max(1, Math.round(blob.size / 1024))} KB${sha ? `, SHA-256 ${sha}` : ""}). ` +
          "Check it offline with: cfp audit verify " +
          name,
      );
      records.reload(); // the export is itself a record
      checkpoints.reload();
    } catch (reason) {
      setExportError(asError(reason));
    } finally {
      setExporting(false);
    }
  };

  const set = (key: keyof Filters) => (e: { target: { value: string } }) =>
    setDraft((d) => ({ ...d, [key]: e.target.value }));

  return (
    <Page
      title="Audit"
      actions={
        <Action
          allowed={mayExport && usable}
          why={needs("audit.export", scope)}
          busy={exporting}
          onClick={() => void exportBundle()}
        >
          Export bundle
        </Action>
      }
    >
      {systemWide ? (
        <div className="gv-bar">
          <Field label="Chain">
            <select value={onTenant ? "tenant" : "system"} onChange={(e) => setWantSystem(e.target.value === "system")}>
              {tenant ? <option value="tenant">Tenant {tenant}</option> : null}
              <option value="system">The system chain</option>
            </select>
          </Field>
        </div>
      ) : null}
      {!onTenant && !systemWide ? (
        <Empty>Choose a tenant in the switcher above to see its audit trail.</Empty>
      ) : null}
      <ErrorBox error={exportError} />
      <Notice>{exported}</Notice>

      <section className="gv-section" aria-labelledby="verify-title">
        <h2 id="verify-title">Verify the chain</h2>
        <p className="muted small" style={{ margin: 0 }}>
          Checks every record's hash and link, every signed checkpoint and its anchor.
        </p>
        <VerifyPanel tenant={header} allowed={mayRead && usable} why={needs("audit.read", scope)} />
      </section>

      <section className="gv-section" aria-labelledby="records-title">
        <h2 id="records-title">Records</h2>
        <details className="gv-details" open={filtersOpen}>
          <summary>
            Filters
            {Object.values(filters).some(Boolean) ? " (some apply)" : ""}
          </summary>
          <Form label="Filter the records" onSubmit={() => setFilters({ ...draft })}>
            <Field label="Actor id">
              <input value={draft.actor} onChange={set("actor")} />
            </Field>
            <Field label="Action" hint="e.g. tenant.create">
              <input value={draft.action} onChange={set("action")} />
            </Field>
            <Field label="Target" hint="type, or type/id">
              <input value={draft.target} onChange={set("target")} />
            </Field>
            <Field label="Since (local time)">
              <input type="datetime-local" value={draft.since} onChange={set("since")} />
            </Field>
            <Field label="Until (local time)">
              <input type="datetime-local" value={draft.until} onChange={set("until")} />
            </Field>
            <div className="gv-actions">
              <Submit>Apply filters</Submit>
              <Action
                onClick={() => {
                  setDraft(NO_FILTERS);
                  setFilters(NO_FILTERS);
                }}
              >
                Clear
              </Action>
            </div>
          </Form>
        </details>
        <ErrorBox error={records.error} />
        <Loading when={records.loading && records.items.length === 0} />
        {usable && !records.loading && !records.error && records.items.length === 0 ? (
          <Empty>No records match.</Empty>
        ) : null}
        {records.items.length ? (
          <Table
            label="Audit records"
            rows={records.items}
            rowKey={(r) => `${r.chain}:${r.seq}`}
            onRow={setOpen}
            columns={[
              { title: "Seq", cell: (r) => r.seq },
              { title: "Time", cell: (r) => time(r.time) },
              { title: "Actor", cell: (r) => actorText(r.actor, names) },
              { title: "Action", cell: (r) => <code>{r.action}</code> },
              { title: "Target", cell: (r) => targetText(r.target) },
              { title: "Outcome", cell: (r) => <StatusBadge status={r.outcome} /> },
              { title: "Scope", cell: (r) => <code>{r.scope}</code> },
            ]}
          />
        ) : null}
        <More list={records} />
      </section>

      <section className="gv-section" aria-labelledby="checkpoints-title">
        <h2 id="checkpoints-title">Signed checkpoints</h2>
        <ErrorBox error={checkpoints.error} />
        {usable && !checkpoints.loading && !checkpoints.error && checkpoints.items.length === 0 ? (
          <Empty>No checkpoints yet: the platform signs one within a minute of new records.</Empty>
        ) : null}
        {checkpoints.items.length ? (
          <Table
            label="Signed checkpoints"
            rows={checkpoints.items}
            rowKey={(c) => `${c.chain}:${c.size}`}
            columns={[
              { title: "Tree size", cell: (c) => c.size },
              { title: "Signed", cell: (c) => time(c.created_at) },
              { title: "Root", cell: (c) => <span className="gv-mono" title={c.root}>{short(c.root, 16)}</span> },
              { title: "Anchor", cell: (c) => anchoring(c.anchors) },
              { title: "Timestamp", cell: (c) => (c.timestamp_error ? `failed: ${c.timestamp_error}` : "—") },
              { title: "Origin", cell: (c) => <span className="gv-mono">{c.origin}</span> },
            ]}
          />
        ) : null}
        <More list={checkpoints} label="More checkpoints" />
        {checkpoints.items[0] ? (
          <details className="gv-details">
            <summary>The latest checkpoint's signed note</summary>
            <CheckpointFacts checkpoint={checkpoints.items[0]} />
            <pre className="json" tabIndex={0} aria-label="Signed note">
              {checkpoints.items[0].note}
            </pre>
          </details>
        ) : null}
      </section>

      {open ? (
        <Sheet title={`Record ${open.seq}`} onClose={() => setOpen(null)}>
          <dl className="gv-kv">
            <dt>Chain</dt>
            <dd className="gv-mono">{open.chain}</dd>
            <dt>Seq</dt>
            <dd>{open.seq}</dd>
            <dt>Time</dt>
            <dd>{time(open.time)}</dd>
            <dt>Actor</dt>
            <dd>
              {actorText(open.actor, names)}
              {open.actor.id ? <div className="gv-mono small">{open.actor.id}</div> : null}
            </dd>
            <dt>Action</dt>
            <dd className="gv-mono">{open.action}</dd>
            <dt>Target</dt>
            <dd className="gv-mono">{targetText(open.target)}</dd>
            <dt>Scope</dt>
            <dd className="gv-mono">{open.scope}</dd>
            <dt>Outcome</dt>
            <dd>
              <StatusBadge status={open.outcome} />
            </dd>
            {open.correlation_id ? (
              <>
                <dt>Correlation</dt>
                <dd className="gv-mono">{open.correlation_id}</dd>
              </>
            ) : null}
            {open.client_address ? (
              <>
                <dt>Client</dt>
                <dd className="gv-mono">{open.client_address}</dd>
              </>
            ) : null}
            {open.payload_hash ? (
              <>
                <dt>Payload hash</dt>
                <dd className="gv-mono">{open.payload_hash}</dd>
              </>
            ) : null}
            <dt>Hash</dt>
            <dd className="gv-mono">{open.hash}</dd>
            <dt>Previous</dt>
            <dd className="gv-mono">{open.prev_hash}</dd>
          </dl>
          {open.details ? <Json value={open.details} label="Details" /> : null}
        </Sheet>
      ) : null}
    </Page>
  );
}
