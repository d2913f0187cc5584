// Dead letters: deliveries that failed every retry. List them, inspect one (input, error,
// traceback, attempts), replay one or the chosen ones; the list reads again after a replay.
import { useState } from "react";

import { api } from "../api";
import { Action, ErrorBox, Json, ListState, Loading, Page, Sheet, Table } from "../components/ui";
import { useApi, useRowActions } from "../hooks";
import { Link } from "../router";
import { useSession } from "../session";
import { useRuntime } from "./run/parts";
import { usePaged } from "./run/runtime";
import type { DeadLetter } from "./run/runtime";

const NO_REPLAY = "your roles here do not include execution.replay";

function when(seconds: number | null | undefined): string {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "—";
}

export default function DeadLettersPage(_props: { params: Record<string, string> }) {
  const session = useSession();
  const { runtime, tenant, missing } = useRuntime();
  const letters = usePaged<DeadLetter>(runtime ? `${runtime}/dead-letters` : null, tenant, 100);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [shown, setShown] = useState<string | null>(null);
  const { act, busy, error, done } = useRowActions(); // busy: "many" or a dead letter's id
  const detail = useApi<DeadLetter>(
    runtime && shown ? `${runtime}/dead-letters/${encodeURIComponent(shown)}` : null,
    { tenant },
  );

  if (missing) return <Page title="Dead letters">{missing}</Page>;

  const mayReplay = session.can("execution.replay");
  const ids = letters.items.map((d) => d.id);
  const chosen = ids.filter((id) => selected.has(id));
  const allChosen = ids.length > 0 && chosen.length === ids.length;

  async function replay(which: string[], key: string) {
    if (!runtime || !which.length) return;
    await act(key, async () => {
      const answer =
        which.length === 1 && key !== "many"
          ? await api<{ replayed: number }>(`${runtime}/dead-letters/${encodeURIComponent(which[0])}/replay`, {
              method: "POST",
              tenant,
            })
          : await api<{ replayed: number }>(`${runtime}/dead-letters/replay`, {
              method: "POST",
              body: { ids: which },
              tenant,
            });
      const count = answer?.replayed ?? which.length;
      setSelected(new Set());
      setShown(null);
      letters.reload();
      return `Replayed ${count} dead letter${count === 1 ? "" : "s"}: ${count === 1 ? "it is" : "they are"} back on the queue.`;
    });
  }

  const toggle = (id: string) =>
    setSelected((current) => {
      const next = new Set(current);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });

  return (
    <Page
      title="Dead letters"
      actions={
        <Action onClick={letters.reload} busy={letters.loading}>
          Refresh
        </Action>
      }
    >
      <ListState
        error={[letters.error, error]}
        notice={done}
        loading={letters.loading && !letters.items.length}
        empty={!letters.loading && !letters.error && !letters.items.length}
        emptyText="No dead letters: every delivery succeeded or is still being retried."
      />
      {letters.items.length ? (
        <>
          <div className="row bulk">
            <label className="check">
              <input
                type="checkbox"
                checked={allChosen}
                onChange={() => setSelected(allChosen ? new Set() : new Set(ids))}
              />
              <span>Select all ({ids.length})</span>
            </label>
            <Action
              kind="primary"
              onClick={() => void replay(chosen, "many")}
              allowed={mayReplay && chosen.length > 0}
              why={!mayReplay ? NO_REPLAY : "select the dead letters to replay"}
              busy={busy === "many"}
            >
              Replay selected ({chosen.length})
            </Action>
          </div>
          <Table
            label="Dead letters list"
            rows={letters.items}
            rowKey={(d) => d.id}
            columns={[
              {
                title: "Select",
                cell: (d) => (
                  <label className="check-cell">
                    <input
                      type="checkbox"
                      checked={selected.has(d.id)}
                      onChange={() => toggle(d.id)}
                      aria-label={`Select dead letter ${d.id} (${d.step})`}
                    />
                  </label>
                ),
              },
              {
                title: "Id",
                cell: (d) => (
                  <button type="button" className="link" onClick={() => setShown(d.id)}>
                    Inspect {d.id}
                  </button>
                ),
              },
              {
                title: "Replay",
                cell: (d) => (
                  <Action
                    onClick={() => void replay([d.id], d.id)}
                    allowed={mayReplay}
                    why={NO_REPLAY}
                    busy={busy === d.id}
                  >
                    Replay
                  </Action>
                ),
              },
              { title: "Step", cell: (d) => d.step },
              { title: "Topic", cell: (d) => <code>{d.topic}</code> },
              { title: "Attempts", cell: (d) => d.attempts, className: "num" },
              { title: "Failed", cell: (d) => when(d.failed_at) },
              { title: "Error", cell: (d) => <span className="error-text">{d.error}</span>, className: "wrap" },
            ]}
          />
        </>
      ) : null}
      {letters.cursor ? (
        <div className="row">
          <Action onClick={letters.more} busy={letters.loading}>
            Load more
          </Action>
        </div>
      ) : null}
      {shown ? (
        <Sheet title={`Dead letter ${shown}`} onClose={() => setShown(null)}>
          <ErrorBox error={detail.error} />
          <Loading when={detail.loading && !detail.data} />
          {detail.data ? (
            <div className="dl-detail">
              <dl className="facts">
                <div>
                  <dt>Step</dt>
                  <dd>{detail.data.step}</dd>
                </div>
                <div>
                  <dt>Topic</dt>
                  <dd>
                    <code>{detail.data.topic}</code>
                  </dd>
                </div>
                <div>
                  <dt>Attempts</dt>
                  <dd>{detail.data.attempts}</dd>
                </div>
                <div>
                  <dt>Failed</dt>
                  <dd>{when(detail.data.failed_at)}</dd>
                </div>
                <div>
                  <dt>Event id</dt>
                  <dd>
                    <code>{detail.data.event_id}</code>
                  </dd>
                </div>
                {detail.data.trace_id ? (
                  <div>
                    <dt>Trace</dt>
                    <dd>
                      <Link className="cell-link" to={`/traces/${encodeURIComponent(detail.data.trace_id)}`}>
                        <code>{detail.data.trace_id}</code>
                      </Link>
                    </dd>
                  </div>
                ) : null}
              </dl>
              <h3>Error</h3>
              <p className="error-text">{detail.data.error}</p>
              {detail.data.traceback ? (
                <>
                  <h3>Traceback</h3>
                  <pre className="json" tabIndex={0} aria-label="Traceback">
                    {detail.data.traceback}
                  </pre>
                </>
              ) : null}
              <h3>Input</h3>
              <Json value={detail.data.input} label="Input of the failed delivery" />
              <div className="row">
                <Action
                  kind="primary"
                  onClick={() => void replay([detail.data!.id], detail.data!.id)}
                  allowed={mayReplay}
                  why={NO_REPLAY}
                  busy={busy === detail.data.id}
                >
                  Replay this one
                </Action>
              </div>
            </div>
          ) : null}
        </Sheet>
      ) : null}
    </Page>
  );
}
