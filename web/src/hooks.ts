// Small data hooks over the API client.
import { useCallback, useEffect, useRef, useState } from "react";

import { api, ApiError } from "./api";
import type { RequestOptions } from "./api";

export type Loaded<T> = {
  data: T | null;
  error: ApiError | Error | null;
  loading: boolean;
  reload: () => void;
};

/** GET `path` (null: nothing to load yet) and keep the answer; `reload()` asks again. */
export function useApi<T>(path: string | null, options: RequestOptions = {}): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | Error | null>(null);
  const [loading, setLoading] = useState(path !== null);
  const [tick, setTick] = useState(0);
  const optionsRef = useRef(options);
  optionsRef.current = options;
  const tenant = options.tenant;

  useEffect(() => {
    if (path === null) {
      setData(null);
      setLoading(false);
      return;
    }
    const controller = new AbortController();
    setLoading(true);
    api<T>(path, { ...optionsRef.current, signal: controller.signal })
      .then((answer) => {
        setData(answer);
        setError(null);
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

  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { data, error, loading, reload };
}

/** Run an action, keeping whether it runs and its error for the UI. */
export function useAction<A extends unknown[], T>(
  action: (...args: A) => Promise<T>,
): { run: (...args: A) => Promise<T | undefined>; busy: boolean; error: Error | null } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const run = useCallback(
    async (...args: A) => {
      setBusy(true);
      setError(null);
      try {
        return await action(...args);
      } catch (reason) {
        setError(asError(reason));
        return undefined;
      } finally {
        setBusy(false);
      }
    },
    [action],
  );
  return { run, busy, error };
}

/** `reason` as an Error (a thrown non-Error becomes its string). */
export function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}

/** A form's submit state: `run(work)` marks it busy, clears the error, runs `work` and keeps
 *  what it threw for an ErrorBox. */
export function useSubmit(): {
  run: (work: () => Promise<unknown>) => Promise<void>;
  busy: boolean;
  error: Error | null;
  setError: (error: Error | null) => void;
} {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const run = useCallback(async (work: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await work();
    } catch (reason) {
      setError(asError(reason));
    } finally {
      setBusy(false);
    }
  }, []);
  return { run, busy, error, setError };
}

/** Row actions of a list: `act(key, work, after)` marks `key` busy, clears the last error and
 *  message, runs `work` and shows the message it returns (if any), keeps its error otherwise, and
 *  calls `after` (a reload) either way. */
export function useRowActions(): {
  act: (key: string, work: () => Promise<string | void>, after?: () => void) => Promise<void>;
  busy: string | null;
  error: Error | null;
  setError: (error: Error | null) => void;
  done: string | null;
  setDone: (message: string | null) => void;
} {
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const act = useCallback(async (key: string, work: () => Promise<string | void>, after?: () => void) => {
    setBusy(key);
    setError(null);
    setDone(null);
    try {
      const message = await work();
      if (typeof message === "string") setDone(message);
    } catch (reason) {
      setError(asError(reason));
    } finally {
      setBusy(null);
      after?.();
    }
  }, []);
  return { act, busy, error, setError, done, setDone };
}
