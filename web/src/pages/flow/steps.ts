// What the side panel shows of a step besides the graph: its summary from `GET R/steps` (schemas,
// queue options) and its recent executions, gathered from the latest traces (the API lists
// traces, not executions by step, so the panel reads the latest few traces and keeps the
// executions of this step).
import { api } from "../../api";
import type { Page } from "../../api";
import type { EmitSpec } from "./graph";

export type StepSummary = {
  name: string;
  type: string;
  file: string;
  flows: string[];
  description: string | null;
  subscribes: string[];
  emits: EmitSpec[];
  path: string | null;
  method: string | null;
  cron: string | null;
  queue: Record<string, unknown> | null;
  timeout: number | null;
  concurrency: number | null;
  input_schema: unknown;
  body_schema: unknown;
  response_schemas: Record<string, unknown>;
};

export type TraceSummary = { trace_id: string; root?: string; kind?: string; started_at?: number };

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
  ended_at?: number;
  latency_ms?: number;
  error?: string | null;
};

export type TraceDetail = TraceSummary & { executions: Execution[] };

/** How many of the latest traces are read for a step's recent executions. */
export const TRACES_READ = 15;
export const EXECUTIONS_SHOWN = 20;

/** The executions of `step` in `traces`, newest first, at most `limit`. */
export function executionsOf(traces: (TraceDetail | null)[], step: string, limit = EXECUTIONS_SHOWN): Execution[] {
  return traces
    .flatMap((t) => t?.executions ?? [])
    .filter((e) => e.step === step)
    .sort((a, b) => (b.started_at ?? 0) - (a.started_at ?? 0) || b.attempt - a.attempt)
    .slice(0, limit);
}

/** The recent executions of `step`, from the latest `TRACES_READ` traces. */
export async function recentExecutions(
  runtime: string,
  tenant: string | null,
  step: string,
  signal?: AbortSignal,
): Promise<{ executions: Execution[]; tracesRead: number }> {
  const latest = await api<Page<TraceSummary>>(`${runtime}/traces?limit=${TRACES_READ}`, { tenant, signal });
  const details = await Promise.all(
    latest.items.map((t) =>
      api<TraceDetail>(`${runtime}/traces/${encodeURIComponent(t.trace_id)}`, { tenant, signal }).catch(
        (error: unknown) => {
          if (signal?.aborted) throw error;
          return null; // a trace purged meanwhile: skip it
        },
      ),
    ),
  );
  return { executions: executionsOf(details, step), tracesRead: latest.items.length };
}
