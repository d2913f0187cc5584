// Role bindings in the tenant: who holds which role where. Grant (principal, a role from
// `GET /v1/roles`, a scope: tenant, team or project) and revoke. Granting needs
// role_binding.manage on the scope and every action of the granted role there, and so does
// revoking; the page offers only what the caller's bindings allow.
import { useMemo, useState } from "react";

import { api } from "../../api";
import { Action, Empty, ErrorBox, Field, Loading, Notice, Page, Sheet, Table, time } from "../../components/ui";
import { useApi, useRowActions, useSubmit } from "../../hooks";
import { useSession } from "../../session";
import type { Session } from "../../session";
import { encode, idempotencyKey, needs, tenantScope } from "../govern/lib";
import type { Paged } from "../govern/lib";
import { Confirm, Form, NeedTenant, ScopePicker, scopeKind, Submit } from "../govern/parts";

type Binding = {
  id: string;
  principal: string;
  role: string;
  scope: string;
  tenant?: string | null;
  created_at?: string | null;
  created_by?: string | null;
};

type Member = { id: string; kind: string; email: string | null; display_name: string };

/** Whether the caller may grant (or revoke) `role` on `scope`, and if not, why. */
export function grantCheck(session: Session, role: string, scope: string): { ok: boolean; why: string } {
  if (!session.can("role_binding.manage", scope)) return { ok: false, why: needs("role_binding.manage", scope) };
  const actions = session.roles[role]?.actions ?? [];
  const missing = actions.filter((a) => !session.can(a, scope));
  if (missing.length)
    return { ok: false, why: `granting ${role} needs its every action on ${scope}; you lack ${missing.slice(0, 3).join(", ")}${missing.length > 3 ? "…" : ""}` };
  return { ok: true, why: "" };
}

export default function BindingsPage() {
  const session = useSession();
  const tenant = session.place.tenant;
  const bindings = useApi<Paged<Binding>>(tenant ? "/v1/role-bindings" : null, { tenant });
  const mayReadUsers = tenant ? session.can("user.read", tenantScope(tenant)) : false;
  const members = useApi<Paged<Member>>(tenant && mayReadUsers ? "/v1/users?limit=200" : null, { tenant });
  const [granting, setGranting] = useState(false);
  const [filter, setFilter] = useState("");
  const { act, busy, error, done, setDone } = useRowActions();

  const names = useMemo(() => {
    const map = new Map<string, string>();
    for (const m of members.data?.items ?? []) map.set(m.id, m.email ?? m.display_name);
    return map;
  }, [members.data]);

  if (!tenant) return <NeedTenant title="Role bindings" />;
  const principalName = (id: string) => names.get(id) ?? id;
  const roleName = (id: string) => session.roles[id]?.name ?? id;
  const mayGrantSomewhere = session.can("role_binding.manage", tenantScope(tenant)) ||
    (session.me?.bindings ?? []).some(
      (b) => session.roles[b.role]?.actions.includes("role_binding.manage") && (b.scope === "system" || b.scope.startsWith(`tenant/${tenant}`)),
    );

  const needle = filter.trim().toLowerCase();
  const rows = (bindings.data?.items ?? []).filter(
    (b) =>
      !needle ||
      [b.principal, principalName(b.principal), b.role, roleName(b.role), b.scope].some((v) => v.toLowerCase().includes(needle)),
  );

  const revoke = (b: Binding) =>
    act(
      b.id,
      async () => {
        await api(`/v1/role-bindings/${encode(b.id)}`, { method: "DELETE", tenant });
        return `${roleName(b.role)} on ${b.scope} revoked from ${principalName(b.principal)}.`;
      },
      bindings.reload,
    );

  return (
    <Page
      title="Role bindings"
      actions={
        <Action
          kind="primary"
          allowed={mayGrantSomewhere}
          why={needs("role_binding.manage", tenantScope(tenant))}
          onClick={() => setGranting(true)}
        >
          Grant a role
        </Action>
      }
    >
      <ErrorBox error={bindings.error} />
      <ErrorBox error={error} />
      <Notice>{done}</Notice>
      <div className="gv-bar">
        <Field label="Filter">
          <input
            type="search"
            value={filter}
            onChange={(e) => setFilter(e.target.value)}
            placeholder="principal, role or scope"
          />
        </Field>
      </div>
      <Loading when={bindings.loading && !bindings.data} />
      {bindings.data && rows.length === 0 ? <Empty>No role bindings{needle ? " match" : ""}.</Empty> : null}
      {rows.length ? (
        <Table
          label="Role bindings"
          rows={rows}
          rowKey={(b) => b.id}
          columns={[
            {
              title: "Principal",
              cell: (b) => (
                <span title={b.principal}>
                  {principalName(b.principal)}
                  {names.has(b.principal) ? null : <span className="muted small"> (id)</span>}
                </span>
              ),
            },
            { title: "Role", cell: (b) => roleName(b.role) },
            { title: "Scope", cell: (b) => <code>{b.scope}</code> },
            { title: "Granted", cell: (b) => time(b.created_at) },
            { title: "By", cell: (b) => (b.created_by ? principalName(b.created_by) : "—") },
            {
              title: "Actions",
              cell: (b) => {
                const check = grantCheck(session, b.role, b.scope);
                return (
                  <Confirm
                    label="Revoke"
                    question={`Revoke ${roleName(b.role)} on ${b.scope} from ${principalName(b.principal)}?`}
                    allowed={check.ok}
                    why={check.why}
                    busy={busy === b.id}
                    onConfirm={() => revoke(b)}
                  />
                );
              },
            },
          ]}
        />
      ) : null}
      {granting ? (
        <Sheet title="Grant a role" onClose={() => setGranting(false)}>
          <GrantForm
            tenant={tenant}
            members={members.data?.items ?? null}
            onDone={(b) => {
              setGranting(false);
              setDone(`${roleName(b.role)} granted to ${principalName(b.principal)} on ${b.scope}.`);
              bindings.reload();
            }}
          />
        </Sheet>
      ) : null}
    </Page>
  );
}

function GrantForm(props: { tenant: string; members: Member[] | null; onDone: (b: Binding) => void }) {
  const session = useSession();
  const [principal, setPrincipal] = useState("");
  const [role, setRole] = useState("");
  const [scope, setScope] = useState(tenantScope(props.tenant));
  const { run, busy, error } = useSubmit();
  const kind = scopeKind(scope);
  const roles = Object.values(session.roles).filter((r) => r.scopes.some((s) => s !== "system"));
  const chosen = session.roles[role];
  const fits = !chosen || (kind !== null && chosen.scopes.includes(kind));
  const check = role ? grantCheck(session, role, scope) : { ok: false, why: "choose a role" };

  const submit = () =>
    run(async () => {
      props.onDone(
        await api<Binding>("/v1/role-bindings", {
          body: { principal: principal.trim(), role, scope },
          tenant: props.tenant,
          headers: idempotencyKey(),
        }),
      );
    });

  return (
    <Form label="Grant a role" className="gv-form stack" onSubmit={() => void submit()}>
      {props.members ? (
        <Field label="Principal">
          <select value={principal} onChange={(e) => setPrincipal(e.target.value)} required>
            <option value="" disabled>
              Choose a member…
            </option>
            {props.members.map((m) => (
              <option key={m.id} value={m.id}>
                {m.email ?? m.display_name}
                {m.kind === "service_account" ? " (service account)" : ""}
              </option>
            ))}
          </select>
        </Field>
      ) : (
        <Field label="Principal id" hint="The member list is not readable with your roles: type the id.">
          <input value={principal} onChange={(e) => setPrincipal(e.target.value)} required />
        </Field>
      )}
      <Field label="Role">
        <select value={role} onChange={(e) => setRole(e.target.value)} required>
          <option value="" disabled>
            Choose a role…
          </option>
          {roles.map((r) => (
            <option key={r.id} value={r.id}>
              {r.name} (on {r.scopes.filter((s) => s !== "system").join(", ")})
            </option>
          ))}
        </select>
      </Field>
      {chosen ? <p className="muted small">{(chosen as { description?: string }).description ?? ""}</p> : null}
      <ScopePicker tenant={props.tenant} value={scope} onChange={setScope} />
      {!fits && chosen ? (
        <p className="gv-hint">
          {chosen.name} can be bound on {chosen.scopes.join(", ")} only.
        </p>
      ) : null}
      <ErrorBox error={error} />
      <Submit
        allowed={fits && check.ok && Boolean(principal.trim())}
        why={!fits ? "the role does not fit this scope" : !principal.trim() ? "choose a principal" : check.why}
        busy={busy}
      >
        Grant
      </Submit>
    </Form>
  );
}
