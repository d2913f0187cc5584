// Shapes of the runtime API's answers, the endpoint tester's request building, and a paging
// hook for `{items, next_cursor}` lists.
import { useCallback, useEffect, useRef, useState } from "react";

import { api, query } from "../../api";
import { asError } from "../../hooks";
import type { JsonSchema } from "./schema";

export type Step = {
  name: string;
  type: "api" | "event" | "cron" | "noop" | string;
  file?: string;
  flows?: string[];
  description?: string | null;
  subscribes: string[];
  emits: { topic: string; label?: string | null; conditional?: boolean }[];
  path: string | null;
  method: string | null;
  cron?: string | null;
  queue?: { type: string; maxRetries?: number } | null;
  input_schema: JsonSchema | null;
  body_schema: JsonSchema | null;
  response_schemas?: Record<string, JsonSchema>;
};

export type Execution = {
  id: string;
  step: string;
  type?: string;
  event_id?: string;
  topic?: string | null;
  trace_id: string;
  status: string;
  attempt: number;
  started_at: number;
  ended_at: number | null;
  latency_ms: number | null;
  error: string | null;
};

export type TraceSummary = {
  trace_id: string;
  correlation_id?: string;
  root?: string;
  kind?: string;
  started_at?: number;
  started?: string;
};

export type Trace = TraceSummary & { executions: Execution[] };

export type DeadLetter = {
  id: string;
  step: string;
  topic: string;
  event_id: string;
  input: unknown;
  trace_id: string | null;
  attempts: number;
  error: string;
  traceback?: string | null;
  failed_at: number;
};

export type List<T> = { items: T[]; next_cursor: string | null };

/** The names of a route's path parameters: `/orders/:id` and `/orders/{id}` both give `id`. */
export function pathParams(path: string): string[] {
  const names: string[] = [];
  for (const segment of path.split("/")) {
    const found = /^:([A-Za-z0-9_]+)$/.exec(segment) ?? /^\{([A-Za-z0-9_]+)\}$/.exec(segment);
    if (found && !names.includes(found[1])) names.push(found[1]);
  }
  return names;
}

export type QueryRow = { key: string; value: string };

export type TesterRequest = {
  url: string;
  method: string;
  body: unknown; // undefined: no body
  missing: string[]; // path parameters still empty
};

/** Methods whose requests carry no body. */
export function takesBody(method: string): boolean {
  return !["GET", "HEAD", "OPTIONS", "DELETE"].includes(method.toUpperCase());
}

/** The request the tester sends for `step`: `/p/{tenant}/{project}/{env}{path}` with the path
 * parameters filled in (encoded), the non-empty query rows, and the body when the method has one. */
export function buildRequest(
  place: { tenant: string; project: string; env: string },
  step: Pick<Step, "path" | "method">,
  params: Record<string, string>,
  rows: QueryRow[],
  body: unknown,
): TesterRequest {
  const method = (step.method ?? "GET").toUpperCase();
  const missing: string[] = [];
  const path = (step.path ?? "/")
    .split("/")
    .map((segment) => {
      const found = /^:([A-Za-z0-9_]+)$/.exec(segment) ?? /^\{([A-Za-z0-9_]+)\}$/.exec(segment);
      if (!found) return segment;
      const value = params[found[1]] ?? "";
      if (!value) missing.push(found[1]);
      return encodeURIComponent(value);
    })
    .join("/");
  const search = new URLSearchParams();
  for (const row of rows) if (row.key.trim()) search.append(row.key.trim(), row.value);
  const text = search.toString();
  const base = ["p", place.tenant, place.project, place.env].map(encodeURIComponent).join("/");
  return {
    url: `/${base}${path.startsWith("/") ? path : `/${path}`}${text ? `?${text}` : ""}`,
    method,
    body: takesBody(method) ? body : undefined,
    missing,
  };
}

/** Each topic some step subscribes to, with its subscribers. */
export function topics(steps: Step[]): { topic: string; subscribers: Step[] }[] {
  const byTopic = new Map<string, Step[]>();
  for (const step of steps) {
    for (const topic of step.subscribes ?? []) {
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), step]);
    }
  }
  return [...byTopic.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([topic, subscribers]) => ({ topic, subscribers }));
}

/** A list route read page by page: `more()` appends the next page. */
export function usePaged<T>(path: string | null, tenant: string | null, limit = 50) {
  const [items, setItems] = useState<T[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [loading, setLoading] = useState(false);
  const [tick, setTick] = useState(0);
  const generation = useRef(0);

  const load = useCallback(
    async (after: string | null, append: boolean) => {
      if (!path) return;
      const mine = ++generation.current;
      setLoading(true);
      try {
        const sep = path.includes("?") ? "&" : "?";
        const page = await api<List<T>>(`${path}${sep}${query({ limit, cursor: after }).slice(1)}`, {
          tenant,
        });
        if (mine !== generation.current) return;
        setItems((current) => (append ? [...current, ...page.items] : page.items));
        setCursor(page.next_cursor);
        setError(null);
      } catch (reason) {
        if (mine !== generation.current) return;
        setError(asError(reason));
      } finally {
        if (mine === generation.current) setLoading(false);
      }
    },
    [path, tenant, limit],
  );

  useEffect(() => {
    setItems([]);
    setCursor(null);
  }, [path]);

  useEffect(() => {
    if (path) void load(null, false);
  }, [load, path, tick]);

  const reload = useCallback(() => setTick((n) => n + 1), []);
  const more = useCallback(() => {
    if (cursor) void load(cursor, true);
  }, [cursor, load]);
  return { items, cursor, error, loading, reload, more, setItems };
}

/** The query of the current hash route (`#/logs?trace=abc` → `{trace: "abc"}`). */
export function hashQuery(): Record<string, string> {
  const hash = window.location.hash;
  const at = hash.indexOf("?");
  if (at < 0) return {};
  return Object.fromEntries(new URLSearchParams(hash.slice(at + 1)).entries());
}

/** Seconds (the API's timestamps) as a local time with milliseconds. */
export function clock(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "—";
  const date = new Date(seconds * 1000);
  if (Number.isNaN(date.getTime())) return "—";
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** Milliseconds, briefly: `0.42 ms`, `12 ms`, `1.8 s`. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms * 10) / 10} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** A value as one line of JSON, cut at `max` characters. */
export function preview(value: unknown, max = 100): string {
  const text = JSON.stringify(value) ?? "undefined";
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
