// Members of the tenant (people and service accounts) with their status and roles; invite a
// person by mail (a role and scope bound on accept), disable and enable, reset MFA, remove;
// pending invites can be withdrawn.
import { useState } from "react";

import { api } from "../../api";
import { Action, Empty, ErrorBox, Field, ListState, Notice, Page, Sheet, Table, pagedState, time } from "../../components/ui";
import { useRowActions, useSubmit } from "../../hooks";
import { useSession } from "../../session";
import { encode, idempotencyKey, needs, tenantScope, usePaged } from "../govern/lib";
import { Confirm, Form, More, NeedTenant, ScopePicker, StatusBadge, Submit } from "../govern/parts";

type MemberRole = { binding_id: string; role: string; scope: string };

type Member = {
  id: string;
  kind: "user" | "service_account";
  email: string | null;
  display_name: string;
  status: "active" | "disabled";
  mfa_enabled: boolean;
  roles: MemberRole[];
  joined_at: string;
  joined_via: string;
};

type Invite = {
  id: string;
  email: string;
  role: string | null;
  scope: string | null;
  status: "pending" | "accepted" | "revoked";
  invited_by: string | null;
  created_at: string;
  expires_at: string;
};

export default function UsersPage() {
  const session = useSession();
  const tenant = session.place.tenant;
  const members = usePaged<Member>(tenant ? "/v1/users?limit=100" : null, tenant);
  const invites = usePaged<Invite>(tenant ? "/v1/users/invites?limit=100" : null, tenant);
  const [inviting, setInviting] = useState(false);
  const { act: runRow, busy, error, done, setDone } = useRowActions();
  const [pendingOnly, setPendingOnly] = useState(true);

  if (!tenant) return <NeedTenant title="Users" />;
  const scope = tenantScope(tenant);
  const mayManage = session.can("user.manage", scope);
  const why = needs("user.manage", scope);
  const roleName = (id: string) => session.roles[id]?.name ?? id;

  const act = (what: string, work: () => Promise<unknown>, message: string, list: { reload: () => void } = members) =>
    runRow(
      what,
      async () => {
        await work();
        return message;
      },
      list.reload,
    );
  const post = (m: Member, what: string) =>
    api(`/v1/users/${encode(m.id)}/${what}`, { method: "POST", tenant });
  const label = (m: Member) => m.email ?? m.display_name;

  const shownInvites = invites.items.filter((i) => !pendingOnly || i.status === "pending");

  return (
    <Page
      title="Users"
      actions={
        <Action kind="primary" allowed={mayManage} why={why} onClick={() => setInviting(true)}>
          Invite a person
        </Action>
      }
    >
      <ErrorBox error={members.error} />
      <ErrorBox error={error} />
      <Notice>{done}</Notice>
      <section className="gv-section" aria-labelledby="members-title">
        <h2 id="members-title">Members</h2>
        <ListState {...pagedState(members)} error={null} emptyText="No members." />
        {members.items.length ? (
          <Table
            label="Members"
            rows={members.items}
            rowKey={(m) => m.id}
            columns={[
              {
                title: "Member",
                cell: (m) => (
                  <span>
                    {m.display_name}
                    {m.email ? <span className="muted small"> {m.email}</span> : null}
                  </span>
                ),
              },
              { title: "Kind", cell: (m) => (m.kind === "user" ? "person" : "service account") },
              { title: "Status", cell: (m) => <StatusBadge status={m.status} /> },
              { title: "MFA", cell: (m) => (m.kind === "user" ? (m.mfa_enabled ? "on" : "off") : "—") },
              {
                title: "Roles",
                className: "wrap",
                cell: (m) =>
                  m.roles.length
                    ? m.roles.map((r) => (
                        <div key={r.binding_id} className="small">
                          {roleName(r.role)} <span className="muted">on</span> <code>{r.scope}</code>
                        </div>
                      ))
                    : "—",
              },
              { title: "Joined", cell: (m) => `${time(m.joined_at)} (${m.joined_via.replace("_", " ")})` },
              {
                title: "Actions",
                cell: (m) => {
                  const self = session.me?.id === m.id;
                  return (
                    <span className="gv-actions">
                      {m.status === "active" ? (
                        <Confirm
                          kind="plain"
                          label="Disable"
                          question={`Disable ${label(m)}? Sessions end and API keys stop working.`}
                          allowed={mayManage && !self}
                          why={self ? "you cannot disable yourself" : why}
                          busy={busy === `disable:${m.id}`}
                          onConfirm={() => act(`disable:${m.id}`, () => post(m, "disable"), `${label(m)} disabled.`)}
                        />
                      ) : (
                        <Action
                          allowed={mayManage}
                          why={why}
                          busy={busy === `enable:${m.id}`}
                          onClick={() => void act(`enable:${m.id}`, () => post(m, "enable"), `${label(m)} enabled.`)}
                        >
                          Enable
                        </Action>
                      )}
                      {m.kind === "user" ? (
                        <Confirm
                          kind="plain"
                          label="Reset MFA"
                          question={`Turn off ${label(m)}'s MFA? Their sessions end.`}
                          allowed={mayManage && m.mfa_enabled}
                          why={m.mfa_enabled ? why : "MFA is not on"}
                          busy={busy === `mfa:${m.id}`}
                          onConfirm={() => act(`mfa:${m.id}`, () => post(m, "mfa/reset"), `${label(m)}'s MFA was reset.`)}
                        />
                      ) : null}
                      <Confirm
                        label="Remove"
                        question={`Remove ${label(m)} and their role bindings from ${tenant}?`}
                        allowed={mayManage && !self}
                        why={self ? "you cannot remove yourself" : why}
                        busy={busy === `remove:${m.id}`}
                        onConfirm={() =>
                          act(
                            `remove:${m.id}`,
                            () => api(`/v1/users/${encode(m.id)}`, { method: "DELETE", tenant }),
                            `${label(m)} removed from ${tenant}.`,
                          )
                        }
                      />
                    </span>
                  );
                },
              },
            ]}
          />
        ) : null}
        <More list={members} label="More members" />
      </section>

      <section className="gv-section" aria-labelledby="invites-title">
        <h2 id="invites-title">Invites</h2>
        <label className="gv-check">
          <input type="checkbox" checked={pendingOnly} onChange={(e) => setPendingOnly(e.target.checked)} /> Pending
          only
        </label>
        <ErrorBox error={invites.error} />
        {!invites.loading && shownInvites.length === 0 && !invites.error ? <Empty>No invites.</Empty> : null}
        {shownInvites.length ? (
          <Table
            label="Invites"
            rows={shownInvites}
            rowKey={(i) => i.id}
            columns={[
              { title: "Email", cell: (i) => i.email },
              { title: "Role", cell: (i) => (i.role ? roleName(i.role) : "—") },
              { title: "Scope", cell: (i) => (i.scope ? <code>{i.scope}</code> : "—") },
              { title: "Status", cell: (i) => <StatusBadge status={i.status} /> },
              { title: "Sent", cell: (i) => time(i.created_at) },
              { title: "Expires", cell: (i) => time(i.expires_at) },
              {
                title: "Actions",
                cell: (i) =>
                  i.status === "pending" ? (
                    <Confirm
                      label="Withdraw"
                      question={`Withdraw the invite to ${i.email}?`}
                      allowed={mayManage}
                      why={why}
                      busy={busy === `invite:${i.id}`}
                      onConfirm={() =>
                        act(
                          `invite:${i.id}`,
                          () => api(`/v1/users/invites/${encode(i.id)}`, { method: "DELETE", tenant }),
                          `The invite to ${i.email} was withdrawn.`,
                          invites,
                        )
                      }
                    />
                  ) : (
                    <span className="muted">—</span>
                  ),
              },
            ]}
          />
        ) : null}
        <More list={invites} label="More invites" />
      </section>

      {inviting ? (
        <Sheet title="Invite a person" onClose={() => setInviting(false)}>
          <InviteForm
            tenant={tenant}
            allowed={mayManage}
            why={why}
            onDone={(invite) => {
              setInviting(false);
              setDone(`Invite sent to ${invite.email}; it is valid until ${time(invite.expires_at)}.`);
              invites.reload();
            }}
          />
        </Sheet>
      ) : null}
    </Page>
  );
}

function InviteForm(props: { tenant: string; allowed: boolean; why: string; onDone: (invite: Invite) => void }) {
  const session = useSession();
  const [email, setEmail] = useState("");
  const [role, setRole] = useState("");
  const [scope, setScope] = useState(tenantScope(props.tenant));
  const { run, busy, error } = useSubmit();
  const kind = scope.includes("/team/") ? "team" : scope.includes("/project/") ? "project" : "tenant";
  const roles = Object.values(session.roles).filter((r) => r.scopes.some((s) => s !== "system"));
  const fits = !role || (session.roles[role]?.scopes ?? []).includes(kind);

  const submit = () =>
    run(async () => {
      const body: { email: string; role?: string; scope?: string } = { email: email.trim() };
      if (role) {
        body.role = role;
        body.scope = scope;
      }
      props.onDone(await api<Invite>("/v1/users/invites", { body, tenant: props.tenant, headers: idempotencyKey() }));
    });
  return (
    <Form label="Invite a person" className="gv-form stack" onSubmit={() => void submit()}>
      <Field label="Email">
        <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} required autoComplete="off" />
      </Field>
      <Field label="Role (optional)" hint="Bound when the invite is accepted.">
        <select value={role} onChange={(e) => setRole(e.target.value)}>
          <option value="">No role yet</option>
          {roles.map((r) => (
            <option key={r.id} value={r.id}>
              {r.name}
            </option>
          ))}
        </select>
      </Field>
      {role ? <ScopePicker tenant={props.tenant} value={scope} onChange={setScope} /> : null}
      {!fits ? (
        <p className="gv-hint">
          {session.roles[role]?.name ?? role} can be bound on {session.roles[role]?.scopes.join(", ")} only.
        </p>
      ) : null}
      <ErrorBox error={error} />
      <Submit allowed={props.allowed && fits} why={fits ? props.why : "the role does not fit this scope"} busy={busy}>
        Send invite
      </Submit>
    </Form>
  );
}
