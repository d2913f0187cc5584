// Shared helpers of the management, audit and reporting pages: scopes, If-Match headers, paged
// listings with "More", downloads of answers that need the bearer token.
import { useCallback, useEffect, useRef, useState } from "react";

import { api, ApiError, send } from "../../api";
import type { Page as Paged } from "../../api";
import { asError } from "../../hooks";

export type { Paged };

/** The scope string of a tenant. */
export function tenantScope(tenant: string): string {
  return `tenant/${tenant}`;
}

export function teamScope(tenant: string, team: string): string {
  return `tenant/${tenant}/team/${team}`;
}

export function projectScope(tenant: string, project: string): string {
  return `tenant/${tenant}/project/${project}`;
}

/** Why an action is not offered: the action and where it is missing. */
export function needs(action: string, scope?: string): string {
  return scope ? `needs ${action} on ${scope}` : `needs ${action}`;
}

/** The `If-Match` header for a resource read at `version` (its ETag). */
export function ifMatch(version: number | string): Record<string, string> {
  return { "if-match": `"${version}"` };
}

/** A fresh Idempotency-Key for one create (a retry of the same click would reuse it). */
export function idempotencyKey(): Record<string, string> {
  const id = globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random().toString(16).slice(2)}`;
  return { "idempotency-key": id };
}

/** `path` with `cursor` added to its query string. */
export function withCursor(path: string, cursor: string): string {
  return `${path}${path.includes("?") ? "&" : "?"}cursor=${encodeURIComponent(cursor)}`;
}

export type PagedList<T> = {
  items: T[];
  next: string | null;
  loading: boolean;
  error: Error | null;
  more: () => void;
  reload: () => void;
};

/** A paged listing (`{items, next_cursor}`): the first page, then `more()` appends the next. */
export function usePaged<T>(path: string | null, tenant: string | null | undefined): PagedList<T> {
  const [items, setItems] = useState<T[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [loading, setLoading] = useState(path !== null);
  const [error, setError] = useState<Error | null>(null);
  const [tick, setTick] = useState(0);
  const generation = useRef(0);

  useEffect(() => {
    generation.current += 1;
    const mine = generation.current;
    setItems([]);
    setNext(null);
    setError(null);
    if (path === null) {
      setLoading(false);
      return;
    }
    const controller = new AbortController();
    setLoading(true);
    api<Paged<T>>(path, { tenant, signal: controller.signal })
      .then((page) => {
        if (generation.current !== mine) return;
        setItems(page.items);
        setNext(page.next_cursor);
      })
      .catch((reason: unknown) => {
        if (controller.signal.aborted) return;
        setError(asError(reason));
      })
      .finally(() => {
        if (!controller.signal.aborted) setLoading(false);
      });
    return () => controller.abort();
  }, [path, tenant, tick]);

  const more = useCallback(() => {
    if (path === null || next === null) return;
    const mine = generation.current;
    setLoading(true);
    api<Paged<T>>(withCursor(path, next), { tenant })
      .then((page) => {
        if (generation.current !== mine) return;
        setItems((have) => [...have, ...page.items]);
        setNext(page.next_cursor);
        setError(null);
      })
      .catch((reason: unknown) => {
        if (generation.current === mine) setError(asError(reason));
      })
      .finally(() => {
        // a page of a list since replaced (other path or reload) does not end the new load
        if (generation.current === mine) setLoading(false);
      });
  }, [path, next, tenant]);

  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { items, next, loading, error, more, reload };
}

/** The file name of a `Content-Disposition` header (RFC 6266, `filename*` first), if any. */
export function filenameOf(disposition: string | null): string | null {
  if (!disposition) return null;
  const star = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(disposition);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim());
    } catch {
      // fall through to the plain name
    }
  }
  const plain = /filename\s*=\s*"([^"]*)"|filename\s*=\s*([^;]+)/.exec(disposition);
  const name = plain ? (plain[1] ?? plain[2])?.trim() : null;
  return name || null;
}

/** Offer `blob` as a download named `name` (a Blob URL, revoked right after). */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.rel = "noopener";
  link.style.display = "none";
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** The error of a non-2xx answer, as `api()` would raise it. */
export async function failure(response: Response): Promise<ApiError> {
  let code = "http_error";
  let message = `HTTP ${response.status}`;
  let details: unknown = null;
  let correlation: string | null = response.headers.get("x-correlation-id");
  try {
    const body = (await response.json()) as {
      error?: { code: string; message: string; details: unknown; correlation_id: string };
    };
    if (body.error) {
      code = body.error.code;
      message = body.error.message;
      details = body.error.details;
      correlation = body.error.correlation_id ?? correlation;
    }
  } catch {
    // not JSON: keep the status
  }
  return new ApiError(response.status, code, message, details, correlation);
}

/** GET (or POST) `path` and save the answer as a file; the name from the answer if it has one. */
export async function download(
  path: string,
  options: { tenant?: string | null; accept?: string; method?: string; fallbackName: string; name?: string },
): Promise<{ name: string; response: Response }> {
  const response = await send(path, {
    tenant: options.tenant,
    accept: options.accept ?? "*/*",
    method: options.method,
  });
  if (!response.ok) throw await failure(response);
  const blob = await response.blob();
  const name = options.name ?? filenameOf(response.headers.get("content-disposition")) ?? options.fallbackName;
  saveBlob(blob, name);
  return { name, response };
}

/** The lines of a textarea as a list: trimmed, empty ones left out. */
export function lines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean);
}

/** A short form of a long hash or id for tables (the whole value stays in the title). */
export function short(value: string | null | undefined, keep = 12): string {
  if (!value) return "—";
  return value.length > keep + 1 ? `${value.slice(0, keep)}…` : value;
}

/** Whether an error is a stale write (412): the resource moved since it was read. */
export function isStale(error: Error | null): boolean {
  return error instanceof ApiError && error.status === 412;
}

/** A path segment, escaped. */
export const encode = encodeURIComponent;

/** A principal for people: "you" for the caller, else its id. */
export function who(principal: string | null | undefined, me: string | null | undefined): string {
  if (!principal) return "—";
  return principal === me ? "you" : principal;
}
