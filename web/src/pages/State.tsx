// The state inspector: the project's state groups, a group's keys with their values, and one
// value in full (`GET R/state/{group}/{key}`) in the side panel.
import { useState } from "react";

import { Action, Empty, ErrorBox, Json, Loading, Page, Sheet, Table } from "../components/ui";
import { useApi } from "../hooks";
import { useRuntime } from "./run/parts";
import { hashQuery, preview, usePaged } from "./run/runtime";

type Group = { group: string };
type Item = { key: string; value: unknown };

export default function StatePage(_props: { params: Record<string, string> }) {
  const { runtime, tenant, missing } = useRuntime();
  const groups = usePaged<Group>(runtime ? `${runtime}/state` : null, tenant, 100);
  const [group, setGroup] = useState<string | null>(() => hashQuery().group ?? null);
  const items = usePaged<Item>(
    runtime && group ? `${runtime}/state/${encodeURIComponent(group)}` : null,
    tenant,
    50,
  );
  const [key, setKey] = useState<string | null>(null);
  const value = useApi<Item & { group: string }>(
    runtime && group && key
      ? `${runtime}/state/${encodeURIComponent(group)}/${encodeURIComponent(key)}`
      : null,
    { tenant },
  );

  if (missing) return <Page title="State">{missing}</Page>;

  return (
    <Page
      title="State"
      actions={
        <Action
          onClick={() => {
            groups.reload();
            if (group) items.reload();
          }}
          busy={groups.loading || items.loading}
        >
          Refresh
        </Action>
      }
    >
      <ErrorBox error={groups.error} />
      <div className="split">
        <section aria-labelledby="state-groups">
          <h2 id="state-groups">Groups</h2>
          <Loading when={groups.loading && !groups.items.length} />
          {!groups.loading && !groups.error && !groups.items.length ? <Empty>No state yet.</Empty> : null}
          {groups.items.length ? (
            <ul className="pick-list" aria-label="State groups">
              {groups.items.map((g) => (
                <li key={g.group}>
                  <button
                    type="button"
                    className="pick"
                    aria-pressed={g.group === group}
                    onClick={() => {
                      setGroup(g.group);
                      setKey(null);
                    }}
                  >
                    {g.group}
                  </button>
                </li>
              ))}
            </ul>
          ) : null}
          {groups.cursor ? (
            <Action onClick={groups.more} busy={groups.loading}>
              More groups
            </Action>
          ) : null}
        </section>
        <section aria-labelledby="state-items">
          <h2 id="state-items">{group ? `Keys of ${group}` : "Keys"}</h2>
          {!group ? <Empty>Choose a group to see its keys and values.</Empty> : null}
          <ErrorBox error={items.error} />
          <Loading when={!!group && items.loading && !items.items.length} />
          {group && !items.loading && !items.error && !items.items.length ? <Empty>This group is empty.</Empty> : null}
          {group && items.items.length ? (
            <Table
              label={`Keys and values of ${group}`}
              rows={items.items}
              rowKey={(i) => i.key}
              onRow={(i) => setKey(i.key)}
              columns={[
                { title: "Key", cell: (i) => <code>{i.key}</code> },
                { title: "Value", cell: (i) => <code className="preview">{preview(i.value)}</code>, className: "wrap" },
              ]}
            />
          ) : null}
          {items.cursor ? (
            <div className="row">
              <Action onClick={items.more} busy={items.loading}>
                More keys
              </Action>
            </div>
          ) : null}
        </section>
      </div>
      {group && key ? (
        <Sheet title={`${group} / ${key}`} onClose={() => setKey(null)}>
          <ErrorBox error={value.error} />
          <Loading when={value.loading && !value.data} />
          {value.data ? <Json value={value.data.value} label={`Value of ${group}/${key}`} /> : null}
        </Sheet>
      ) : null}
    </Page>
  );
}
