import { executionsOf, recentExecutions, TRACES_READ } from "./steps";
import type { Execution, TraceDetail } from "./steps";

function execution(step: string, started: number, attempt = 1): Execution {
  return {
    id: `${step}:${started}:${attempt}`,
    step,
    trace_id: `t${started}`,
    status: "ok",
    attempt,
    started_at: started,
    latency_ms: 3,
  };
}

function trace(id: string, executions: Execution[]): TraceDetail {
  return { trace_id: id, executions };
}

describe("executionsOf", () => {
  it("keeps the step's executions, newest first, at most the limit", () => {
    const traces = [
      trace("t1", [execution("A", 10), execution("B", 11)]),
      null,
      trace("t2", [execution("A", 30), execution("A", 30, 2), execution("A", 20)]),
    ];
    expect(executionsOf(traces, "A").map((e) => e.id)).toEqual(["A:30:2", "A:30:1", "A:20:1", "A:10:1"]);
    expect(executionsOf(traces, "A", 2)).toHaveLength(2);
    expect(executionsOf(traces, "C")).toEqual([]);
  });
});

describe("recentExecutions", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("reads the latest traces with the tenant and keeps the step's executions", async () => {
    const asked: { url: string; tenant: string | null }[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (url: string, init: RequestInit) => {
        const headers = init.headers as Record<string, string>;
        asked.push({ url, tenant: headers["x-tenant-id"] ?? null });
        if (url.includes("/traces?")) {
          return Response.json({ items: [{ trace_id: "t1" }, { trace_id: "gone" }], next_cursor: null });
        }
        if (url.endsWith("/traces/t1")) {
          return Response.json(trace("t1", [execution("A", 5), execution("B", 6)]));
        }
        return Response.json(
          { error: { code: "not_found", message: "no trace", details: null, correlation_id: "c" } },
          { status: 404 },
        );
      }),
    );

    const got = await recentExecutions("/v1/projects/p/envs/e", "acme", "A");

    expect(got.tracesRead).toBe(2);
    expect(got.executions.map((e) => e.id)).toEqual(["A:5:1"]);
    expect(asked[0]).toEqual({ url: `/v1/projects/p/envs/e/traces?limit=${TRACES_READ}`, tenant: "acme" });
    expect(asked.map((a) => a.url)).toContain("/v1/projects/p/envs/e/traces/gone");
  });
});
