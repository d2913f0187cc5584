// A service account's API keys: the list (never a secret), create, rotate and revoke. A new or
// rotated key's secret is shown once in OneTimeSecret and forgotten when dismissed.
import { useState } from "react";

import { api } from "../../api";
import { Action, Empty, ErrorBox, Loading, Table, time } from "../../components/ui";
import { useApi, useRowActions } from "../../hooks";
import { encode } from "./lib";
import { Confirm, StatusBadge } from "./parts";
import { OneTimeSecret } from "./Secret";

export type ApiKey = {
  key_id: string;
  service_account_id: string;
  status: "active" | "revoked";
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
};

type Created = { key: string; api_key: ApiKey };

export function KeyPanel(props: {
  tenant: string;
  account: { id: string; name: string; status?: string };
  allowed: boolean;
  why?: string;
}) {
  const base = `/v1/service-accounts/${encode(props.account.id)}/keys`;
  const keys = useApi<{ items: ApiKey[] }>(base, { tenant: props.tenant });
  const [secret, setSecret] = useState<{ value: string; title: string } | null>(null);
  const { act, busy, error } = useRowActions();
  const run = (what: string, work: () => Promise<void>) => act(what, work, keys.reload);

  const create = () =>
    run("create", async () => {
      const made = await api<Created>(base, { method: "POST", tenant: props.tenant });
      setSecret({ value: made.key, title: `New API key ${made.api_key.key_id}` });
    });
  const rotate = (key: ApiKey) =>
    run(`rotate:${key.key_id}`, async () => {
      const made = await api<Created>(`${base}/${encode(key.key_id)}/rotate`, {
        method: "POST",
        tenant: props.tenant,
      });
      setSecret({ value: made.key, title: `Rotated key ${made.api_key.key_id} (replaces ${key.key_id})` });
    });
  const revoke = (key: ApiKey) =>
    run(`revoke:${key.key_id}`, async () => {
      await api(`${base}/${encode(key.key_id)}`, { method: "DELETE", tenant: props.tenant });
    });

  const disabled = props.account.status === "disabled";
  return (
    <div className="gv-section">
      {secret ? (
        <OneTimeSecret secret={secret.value} title={secret.title} onDone={() => setSecret(null)} />
      ) : null}
      <div className="gv-actions">
        <Action
          kind="primary"
          allowed={props.allowed && !disabled}
          why={disabled ? "the service account is disabled" : props.why}
          busy={busy === "create"}
          onClick={() => void create()}
        >
          Create API key
        </Action>
      </div>
      <ErrorBox error={error} />
      <ErrorBox error={keys.error} />
      <Loading when={keys.loading && !keys.data} />
      {keys.data && keys.data.items.length === 0 ? <Empty>No API keys yet.</Empty> : null}
      {keys.data && keys.data.items.length > 0 ? (
        <Table
          label={`API keys of ${props.account.name}`}
          rows={keys.data.items}
          rowKey={(k) => k.key_id}
          columns={[
            { title: "Key", cell: (k) => <code>{k.key_id}</code> },
            { title: "Status", cell: (k) => <StatusBadge status={k.status} /> },
            { title: "Created", cell: (k) => time(k.created_at) },
            { title: "Expires", cell: (k) => time(k.expires_at) },
            { title: "Last used", cell: (k) => time(k.last_used_at) },
            {
              title: "Actions",
              cell: (k) =>
                k.status === "active" ? (
                  <span className="gv-actions">
                    <Action
                      allowed={props.allowed && !disabled}
                      why={disabled ? "the service account is disabled" : props.why}
                      busy={busy === `rotate:${k.key_id}`}
                      onClick={() => void rotate(k)}
                    >
                      Rotate
                    </Action>
                    <Confirm
                      label="Revoke"
                      question={`Revoke key ${k.key_id}? Callers using it stop working.`}
                      allowed={props.allowed}
                      why={props.why}
                      busy={busy === `revoke:${k.key_id}`}
                      onConfirm={() => revoke(k)}
                    />
                  </span>
                ) : (
                  <span className="muted">—</span>
                ),
            },
          ]}
        />
      ) : null}
    </div>
  );
}
