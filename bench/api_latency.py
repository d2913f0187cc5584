"""Benchmark 3 (and 4, memory under load): lightweight api step latency at a steady rate, and
the highest sustained request rate.

A real `cfp start` serves bench/projects/chain; GET /ping is an api step that returns
{"ok": true} (no emits, no state; the runtime still commits its trace and execution records
before answering). The load generator runs in its own process, open loop: requests are
scheduled at fixed intervals and latency is measured from the scheduled time, so queueing
caused by a slow server is counted. Step-up: each rate runs for --step-seconds; a rate is
sustained when p95 <= 50 ms, no errors and >= 95 % of the scheduled requests answered within
the window. A rate that fails is tried once more (the machine may be shared; a burst from
another process can spoil one 4-second window); the first rate that fails twice ends the search.

    .venv/bin/python bench/api_latency.py [--rate 500] [--seconds 10]
"""

from __future__ import annotations

import argparse
import time

from common import RssSampler, Server, facts, loadgen, result

# from 500: with authentication on every request the knee can fall below 750 on 2 cores
STEPS = (500, 625, 750, 1000, 1250, 1500, 1750, 2000, 2500, 3000, 3500, 4000)
P95_LIMIT_MS = 50.0


def sustained(report: dict, rate: float, seconds: float) -> bool:
    return (
        report["errors"] == 0
        and report["latency"]["p95_ms"] <= P95_LIMIT_MS
        and report["completed_ok"] >= 0.95 * rate * seconds
        and report["elapsed_s"] <= seconds * 1.1 + 0.5
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--step-seconds", type=float, default=4.0)
    args = parser.parse_args()
    with Server() as server:
        idle_mb = server.rss_mb()
        auth = server.headers  # the API key and tenant from DATA/dev-credentials
        loadgen(url=server.url, headers=auth, path="/ping", rate=200, duration=1)  # warm-up
        with RssSampler(server.pid) as rss:
            steady = loadgen(
                url=server.url, headers=auth, path="/ping", rate=args.rate, duration=args.seconds
            )
            lat = steady["latency"]
            print(
                f"GET /ping at {args.rate:.0f} req/s for {args.seconds:.0f}s:"
                f" {steady['completed_ok']} ok, {steady['errors']} errors;"
                f" p50 {lat['p50_ms']:.2f} ms, p95 {lat['p95_ms']:.2f} ms,"
                f" p99 {lat['p99_ms']:.2f} ms, max {lat['max_ms']:.2f} ms"
            )
            if steady["errors"]:
                print(f"errors: {steady['statuses']} {steady['error_samples']}")
            best, failed, steps = 0.0, None, []
            for rate in STEPS:
                for attempt in (1, 2):
                    time.sleep(1.0)  # let the previous step's connections and queue drain
                    rep = loadgen(
                        url=server.url,
                        headers=auth,
                        path="/ping",
                        rate=rate,
                        duration=args.step_seconds,
                        max_conns=512,
                        timeout=5,
                        max_seconds=args.step_seconds + 15,
                    )
                    ok = sustained(rep, rate, args.step_seconds)
                    steps.append(
                        {
                            "rate": rate,
                            "attempt": attempt,
                            "achieved": rep["achieved_rate"],
                            "p95_ms": rep["latency"]["p95_ms"],
                            "p99_ms": rep["latency"]["p99_ms"],
                            "errors": rep["errors"],
                            "sustained": ok,
                        }
                    )
                    print(
                        f"  step {rate:>5} req/s{' (again)' if attempt == 2 else ''}:"
                        f" achieved {rep['achieved_rate']:>7.1f},"
                        f" p50 {rep['latency']['p50_ms']:8.2f} ms,"
                        f" p95 {rep['latency']['p95_ms']:8.2f} ms,"
                        f" errors {rep['errors']}, conns {rep['connections_peak']}"
                        f" -> {'sustained' if ok else 'NOT sustained'}"
                    )
                    if ok:
                        break
                if not ok:
                    failed = rate
                    break
                best = rate
        peak_mb = rss.peak_kb / 1024
    print(
        f"highest sustained rate: {best:.0f} req/s"
        + (f" (next step {failed} req/s failed)" if failed else " (top of the step table)")
    )
    print(f"server RSS: idle {idle_mb:.1f} MB, peak under load {peak_mb:.1f} MB")
    if steady["errors"]:
        print("server log (tail):\n" + server.log_tail)
    result(
        "api_latency",
        {
            **facts(),
            "rate": args.rate,
            "latency": lat,
            "service_latency": steady["service_latency"],
            "errors": steady["errors"],
            "max_sustained_rps": best,
            "first_failed_rps": failed,
            "steps": steps,
            "idle_rss_mb": round(idle_mb, 1),
            "peak_rss_mb": round(peak_mb, 1),
        },
    )


if __name__ == "__main__":
    main()
