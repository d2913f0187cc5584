"""Benchmark 1 (and 4, memory under load): event throughput through an api -> event -> event chain.

A real `cfp start` serves bench/projects/chain. The load generator (its own process) sends
N POST /ingest requests closed-loop with bounded concurrency; each request's api step emits `a`,
step A emits `b`, step B writes one state item. Measured: from the first request sent to the last
state write committed (the max `updated_at` of the `done` group's docs in DATA/cfp.db), i.e.
every chain completed end to end, durably. Each chain is two events (a, b) and three handler
runs (Ingest, A, B).

    .venv/bin/python bench/throughput.py [--chains 5000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import time

from common import RssSampler, Server, facts, loadgen, result, state_items, summary_ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chains", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    n = args.chains
    done = state_items("done")
    with Server() as server:
        time.sleep(1.0)
        idle_mb = server.rss_mb()
        print(
            f"server pid {server.pid} ready in {server.ready_seconds:.2f}s,"
            f" idle RSS {idle_mb:.1f} MB"
        )
        with RssSampler(server.pid) as rss:
            report = loadgen(
                url=server.url,
                headers=server.headers,
                method="POST",
                path="/ingest",
                body='{"id":"__I__","t0":__T__}',
                concurrency=args.concurrency,
                count=n,
                max_seconds=120,
            )
            got = server.wait_count(done, n, timeout=120)
        with server.connect() as conn:
            rows = conn.execute(
                "SELECT updated_at, json_extract(data, '$.value.t0'),"
                " json_extract(data, '$.value.t_done') FROM docs WHERE collection = ?",
                (done,),
            ).fetchall()
            statuses = dict(
                conn.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall()
            )
        after_mb = server.rss_mb()
        wal = server.db_path.with_name("cfp.db-wal")
        wal_mb = wal.stat().st_size / 2**20 if wal.exists() else 0.0
    first = report["wall_first_send"]
    last_commit = max(r[0] for r in rows)
    span = last_commit - first
    ingest_span = report["wall_last_done"] - first
    chains_per_s = got / span
    chain_latency = summary_ms([r[2] - r[1] for r in rows])
    print(
        f"{got}/{n} chains complete; HTTP: {report['completed_ok']} ok, {report['errors']} errors,"
        f" {report['achieved_rate']:.0f} req/s ({ingest_span:.2f}s to accept all)"
    )
    print(
        f"first request -> last state write: {span:.2f}s = {chains_per_s:.0f} chains/s"
        f" = {2 * chains_per_s:.0f} events/s (a+b) = {3 * chains_per_s:.0f} handler runs/s"
    )
    print(
        f"per-chain latency (ingest send -> B handler): p50 {chain_latency['p50_ms']:.1f} ms,"
        f" p95 {chain_latency['p95_ms']:.1f} ms, p99 {chain_latency['p99_ms']:.1f} ms"
        " (at saturation: mostly time queued behind earlier chains)"
    )
    if report["errors"]:
        print(f"errors: {report['statuses']} {report['error_samples']}")
        print("server log (tail):\n" + server.log_tail)
    print(f"leftover deliveries by status: {statuses or 'none'}; WAL file {wal_mb:.1f} MB")
    print(
        f"server RSS: idle {idle_mb:.1f} MB, peak under load {rss.peak_kb / 1024:.1f} MB,"
        f" after {after_mb:.1f} MB"
    )
    result(
        "throughput",
        {
            **facts(),
            "chains": n,
            "completed": got,
            "concurrency": args.concurrency,
            "http_errors": report["errors"],
            "seconds": round(span, 3),
            "chains_per_s": round(chains_per_s, 1),
            "events_per_s": round(2 * chains_per_s, 1),
            "handler_runs_per_s": round(3 * chains_per_s, 1),
            "ingest_req_per_s": report["achieved_rate"],
            "chain_latency": chain_latency,
            "idle_rss_mb": round(idle_mb, 1),
            "peak_rss_mb": round(rss.peak_kb / 1024, 1),
            "after_rss_mb": round(after_mb, 1),
            "wal_mb": round(wal_mb, 1),
        },
    )


if __name__ == "__main__":
    main()
