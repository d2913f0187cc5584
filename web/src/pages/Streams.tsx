// The streams viewer: choose a stream and a group (and optionally one item), read its items
// (`GET R/streams/{name}/{group}`) and keep them live over the websocket (join/leave).
import { useCallback, useEffect, useRef, useState } from "react";
import type { FormEvent } from "react";

import { api, ApiError, query } from "../api";
import { Action, Empty, ErrorBox, Json, Page, Sheet, Table } from "../components/ui";
import { asError } from "../hooks";
import { LiveStatus, useRuntime } from "./run/parts";
import { clock, hashQuery, preview } from "./run/runtime";
import type { List } from "./run/runtime";
import { useRuntimeSocket } from "./run/socket";
import type { ServerMessage } from "./run/socket";
import { applyStreamMessage, ephemeral } from "./run/streamItems";
import type { Ephemeral, StreamItem, Watched } from "./run/streamItems";

type Target = { stream: string; group: string; item: string };

/** The project's stream names (`GET R/streams`). */
export async function knownStreams(runtime: string, tenant: string | null): Promise<string[]> {
  try {
    const page = await api<{ items: { name: string }[] }>(`${runtime}/streams`, { tenant });
    return page.items.map((s) => s.name);
  } catch {
    return [];
  }
}

export default function StreamsPage(_props: { params: Record<string, string> }) {
  const { runtime, tenant, missing } = useRuntime();
  const [names, setNames] = useState<string[]>([]);
  const initial = hashQuery();
  const [form, setForm] = useState<Target>({
    stream: initial.stream ?? "",
    group: initial.group ?? "",
    item: initial.item ?? "",
  });
  const [target, setTarget] = useState<Target | null>(null);
  const [items, setItems] = useState<Watched[]>([]);
  const [events, setEvents] = useState<Ephemeral[]>([]);
  const [error, setError] = useState<Error | null>(null);
  const [joinError, setJoinError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [shown, setShown] = useState<string | null>(null);
  const { socket, status, error: socketError } = useRuntimeSocket(runtime);
  const gotLive = useRef(false); // the socket's snapshot is newer than the HTTP read

  useEffect(() => {
    if (!runtime) return;
    let live = true;
    void knownStreams(runtime, tenant).then((found) => {
      if (!live) return;
      setNames(found);
      setForm((f) => (f.stream || !found.length ? f : { ...f, stream: found[0] }));
    });
    return () => {
      live = false;
    };
  }, [runtime, tenant]);

  // The first read over HTTP (so the items show even while the socket connects).
  useEffect(() => {
    if (!runtime || !target) return;
    let live = true;
    gotLive.current = false;
    setLoading(true);
    setError(null);
    const base = `${runtime}/streams/${encodeURIComponent(target.stream)}/${encodeURIComponent(target.group)}`;
    const read = target.item
      ? api<StreamItem>(`${base}/${encodeURIComponent(target.item)}`, { tenant }).then((one) => [one])
      : api<List<StreamItem>>(`${base}${query({ limit: 500 })}`, { tenant }).then((page) => page.items);
    read
      .then((found) => {
        if (live && !gotLive.current) setItems((current) => applyStreamMessage(current, { event: { type: "sync", data: found } }, Date.now()));
      })
      .catch((reason: unknown) => {
        if (!live) return;
        if (reason instanceof ApiError && reason.status === 404 && target.item) setItems([]);
        else setError(asError(reason));
      })
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
  }, [runtime, tenant, target]);

  const onMessage = useCallback((message: ServerMessage) => {
    if (message.type === "error") {
      setJoinError(`${message.error?.code}: ${message.error?.message}`);
      return;
    }
    gotLive.current = true;
    const now = Date.now();
    const extra = ephemeral(message, now);
    if (extra) setEvents((current) => [extra, ...current].slice(0, 50));
    else setItems((current) => applyStreamMessage(current, message, now));
  }, []);

  useEffect(() => {
    if (!socket || !target) return;
    setJoinError(null);
    const data = {
      subscriptionId: "stream",
      streamName: target.stream,
      groupId: target.group,
      ...(target.item ? { id: target.item } : {}),
    };
    return socket.subscribe({ type: "join", data }, onMessage);
  }, [socket, target, onMessage]);

  if (missing) return <Page title="Streams">{missing}</Page>;

  const ready = form.stream.trim() && form.group.trim();
  const watch = (event?: FormEvent) => {
    event?.preventDefault();
    if (!ready) return;
    setItems([]);
    setEvents([]);
    setShown(null);
    setTarget({ stream: form.stream.trim(), group: form.group.trim(), item: form.item.trim() });
  };
  const detail = items.find((w) => w.item.id === shown);

  return (
    <Page title="Streams">
      <form className="filters" onSubmit={watch} aria-label="Stream to watch">
        <div className="field">
          <label htmlFor="stream-name">
            <span>Stream</span>
          </label>
          {names.length ? (
            <select id="stream-name" value={form.stream} onChange={(e) => setForm({ ...form, stream: e.target.value })}>
              {names.map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </select>
          ) : (
            <input id="stream-name" value={form.stream} onChange={(e) => setForm({ ...form, stream: e.target.value })} />
          )}
        </div>
        <div className="field">
          <label htmlFor="stream-group">
            <span>Group id</span>
          </label>
          <input
            id="stream-group"
            value={form.group}
            onChange={(e) => setForm({ ...form, group: e.target.value })}
            aria-required="true"
          />
        </div>
        <div className="field">
          <label htmlFor="stream-item">
            <span>Item id (optional)</span>
          </label>
          <input id="stream-item" value={form.item} onChange={(e) => setForm({ ...form, item: e.target.value })} />
        </div>
        <Action
          type="submit"
          kind="primary"
          onClick={() => undefined}
          allowed={!!ready}
          why="name a stream and a group"
        >
          Watch
        </Action>
        {target ? (
          <button
            type="button"
            className="btn plain"
            onClick={() => {
              setTarget(null);
              setItems([]);
              setEvents([]);
            }}
          >
            Stop
          </button>
        ) : null}
      </form>
      <p className="live-line">
        <LiveStatus status={status} />
        {target ? (
          <span className="muted small">
            {" "}
            · watching <code>{target.stream}</code> / <code>{target.group}</code>
            {target.item ? (
              <>
                {" "}
                / <code>{target.item}</code>
              </>
            ) : null}
          </span>
        ) : null}
      </p>
      {socketError ? (
        <div className="error" role="alert">
          <strong>Live updates</strong>: {socketError.code}: {socketError.message}
        </div>
      ) : null}
      {joinError ? (
        <div className="error" role="alert">
          <strong>Join refused</strong>: {joinError}
        </div>
      ) : null}
      <ErrorBox error={error} />
      {!target ? <Empty>Choose a stream and a group id, then Watch to see its items live.</Empty> : null}
      {target && !loading && !items.length && !error ? <Empty>No items in this group yet.</Empty> : null}
      {items.length ? (
        <Table
          label={`Items of ${target?.stream}/${target?.group}`}
          rows={items}
          rowKey={(w) => w.item.id}
          onRow={(w) => setShown(w.item.id)}
          columns={[
            { title: "Id", cell: (w) => <code>{w.item.id}</code> },
            {
              title: "Changed",
              cell: (w) =>
                w.changed ? (
                  <span className="badge amber">
                    {w.change} {clock(w.changed / 1000)}
                  </span>
                ) : (
                  <span className="muted">—</span>
                ),
            },
            { title: "Item", cell: (w) => <code className="preview">{preview(w.item, 140)}</code>, className: "wrap" },
          ]}
        />
      ) : null}
      {events.length ? (
        <section aria-labelledby="stream-events">
          <h2 id="stream-events">Ephemeral events</h2>
          <ol className="log-list">
            {events.map((e, i) => (
              <li key={`${e.at}-${i}`} className="event-line">
                <span className="log-time">{clock(e.at / 1000)}</span> <strong>{e.type}</strong>{" "}
                <code className="preview">{preview(e.data, 160)}</code>
              </li>
            ))}
          </ol>
        </section>
      ) : null}
      {detail ? (
        <Sheet title={`Item ${detail.item.id}`} onClose={() => setShown(null)}>
          <Json value={detail.item} label={`Item ${detail.item.id}`} />
        </Sheet>
      ) : null}
    </Page>
  );
}
