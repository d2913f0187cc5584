// The workbench's one way to the platform: the public HTTP API, with the access token kept in
// memory only and the refresh token in its HttpOnly cookie (so a reload keeps the session).
// Refreshing is done by one tab at a time for all tabs (Web Locks + BroadcastChannel): two tabs
// using the same refresh token would be a reuse, and a reuse revokes the whole family.

export type ApiErrorBody = {
  error: { code: string; message: string; details: unknown; correlation_id: string };
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: unknown = null,
    readonly correlationId: string | null = null,
  ) {
    super(message);
  }
}

export type Tokens = { access_token: string; expires_in: number };

type Listener = (token: string | null) => void;

const CHANNEL = "cfp-session";
const LOCK = "cfp-refresh";

let accessToken: string | null = null;
let expiresAt = 0;
const listeners = new Set<Listener>();
const channel: BroadcastChannel | null =
  typeof BroadcastChannel === "undefined" ? null : new BroadcastChannel(CHANNEL);

channel?.addEventListener("message", (event: MessageEvent) => {
  const data = event.data as { token: string | null; expiresAt: number };
  setToken(data.token, data.expiresAt, false);
});

function setToken(token: string | null, expiry: number, broadcast = true): void {
  accessToken = token;
  expiresAt = expiry;
  if (broadcast) channel?.postMessage({ token, expiresAt: expiry });
  for (const listener of listeners) listener(token);
}

export function onToken(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function currentToken(): string | null {
  return accessToken;
}

export function acceptTokens(tokens: Tokens): void {
  setToken(tokens.access_token, Date.now() + tokens.expires_in * 1000);
}

export function forgetTokens(): void {
  setToken(null, 0);
}

async function withLock<T>(work: () => Promise<T>): Promise<T> {
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  if (!locks) return work();
  return locks.request(LOCK, work) as Promise<T>;
}

/** A fresh access token from the refresh cookie; null when there is no session. */
export async function refresh(): Promise<string | null> {
  const before = accessToken;
  return withLock(async () => {
    // Another tab may have refreshed while this one waited for the lock.
    if (accessToken && accessToken !== before && expiresAt - Date.now() > 30_000) {
      return accessToken;
    }
    const response = await fetch("/v1/auth/refresh", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    if (!response.ok) {
      forgetTokens();
      return null;
    }
    acceptTokens((await response.json()) as Tokens);
    return accessToken;
  });
}

export type RequestOptions = {
  method?: string;
  body?: unknown;
  raw?: BodyInit;
  tenant?: string | null;
  headers?: Record<string, string>;
  accept?: string;
  signal?: AbortSignal;
};

function correlationId(): string {
  return `wb-${crypto.randomUUID?.() ?? Math.random().toString(16).slice(2)}`;
}

/** A response of the API, refreshing the access token once when it has expired. */
export async function send(path: string, options: RequestOptions = {}): Promise<Response> {
  const attempt = async (token: string | null): Promise<Response> => {
    const headers: Record<string, string> = {
      accept: options.accept ?? "application/json",
      "x-correlation-id": correlationId(),
      ...options.headers,
    };
    if (token) headers.authorization = `Bearer ${token}`;
    if (options.tenant) headers["x-tenant-id"] = options.tenant;
    let body: BodyInit | undefined = options.raw;
    if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    return fetch(path, {
      method: options.method ?? (body === undefined ? "GET" : "POST"),
      headers,
      body,
      credentials: "same-origin",
      signal: options.signal,
    });
  };
  let token = accessToken;
  if (token && expiresAt - Date.now() < 10_000) token = await refresh();
  let response = await attempt(token);
  if (response.status === 401 && token) {
    token = await refresh();
    if (token) response = await attempt(token);
  }
  return response;
}

/** The JSON body of a successful answer; ApiError (with the envelope's code) otherwise. */
export async function api<T = unknown>(path: string, options: RequestOptions = {}): Promise<T> {
  const response = await send(path, options);
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!response.ok) {
    const envelope = (data as ApiErrorBody | null)?.error;
    throw new ApiError(
      response.status,
      envelope?.code ?? "http_error",
      envelope?.message ?? `HTTP ${response.status}`,
      envelope?.details ?? null,
      envelope?.correlation_id ?? response.headers.get("x-correlation-id"),
    );
  }
  return data as T;
}

export type Page<T> = { items: T[]; next_cursor: string | null };

/** The query string of `params`, leaving out empty values. */
export function query(params: Record<string, string | number | boolean | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
