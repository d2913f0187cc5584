"""Benchmark 2: emit -> handler-done latency at a fixed 200 events/s.

A real `cfp start` serves bench/projects/chain. The load generator (its own process) POSTs
R/events {topic: "probe", data: {id, t0}} open-loop at a fixed rate, t0 = time.time() just
before the request is written. Step Probe stores {t0, t_done = time.time()} in state group
`probe`; the latency is t_done - t0 (same machine, same clock), read back from DATA/cfp.db.
It covers the HTTP request, the durable ingest (committed before the 202), the queue wake-up,
lease, and the handler. The split comes from the event's created_at (stamped when the runtime
builds the event, before its durable publish), the execution's started_at/ended_at, and the
state doc's updated_at (the commit of the handler's effects).

    .venv/bin/python bench/event_latency.py [--rate 200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json

from common import EVENTS_PATH, Server, facts, loadgen, result, state_items, summary_ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds at the rate, dropped")
    args = parser.parse_args()
    probe = state_items("probe")
    with Server() as server:
        # warm-up with ids that are not counted (first requests pay imports, connection set-up)
        loadgen(
            url=server.url,
            headers=server.headers,
            method="POST",
            path=EVENTS_PATH,
            body='{"topic":"probe","data":{"id":"w__I__","t0":__T__}}',
            rate=args.rate,
            duration=args.warmup,
        )
        report = loadgen(
            url=server.url,
            headers=server.headers,
            method="POST",
            path=EVENTS_PATH,
            body='{"topic":"probe","data":{"id":"__I__","t0":__T__}}',
            rate=args.rate,
            duration=args.seconds,
            max_seconds=args.seconds + 30,
        )
        n = report["scheduled"]
        warm = int(args.rate * args.warmup)
        got = server.wait_count(probe, n + warm, timeout=30) - warm
        with server.connect() as conn:
            rows = conn.execute(
                "SELECT d.updated_at, json_extract(d.data, '$.value.t0'),"
                " json_extract(d.data, '$.value.t_done'), d.id FROM docs d"
                " WHERE d.collection = ? AND d.id NOT LIKE 'w%'",
                (probe,),
            ).fetchall()
            # event created_at (ingest) and the execution's started/ended, per probe id
            created = {}
            for body, at in conn.execute(
                "SELECT body, created_at FROM events WHERE topic = 'probe'"
            ).fetchall():
                created[str(json.loads(body)["data"]["id"])] = (json.loads(body)["id"], at)
            execs = {}
            for (data,) in conn.execute(
                "SELECT data FROM docs WHERE collection LIKE '%/executions'"
                " AND json_extract(data, '$.step') = 'Probe'"
            ).fetchall():
                doc = json.loads(data)
                execs[doc["event_id"]] = (doc["started_at"], doc["ended_at"])
    total, ingest, queued, handler, committed = [], [], [], [], []
    for updated_at, t0, t_done, ident in rows:
        total.append(t_done - t0)
        committed.append(updated_at - t0)
        event_id, at = created[ident]
        ingest.append(at - t0)
        started, ended = execs[event_id]
        queued.append(started - at)
        handler.append(ended - started)
    lat = summary_ms(total)
    if report["errors"]:
        print(f"errors: {report['statuses']} {report['error_samples']}")
        print("server log (tail):\n" + server.log_tail)
    print(
        f"{got}/{n} probe events handled at {args.rate:.0f}/s target"
        f" ({report['achieved_rate']:.1f}/s accepted, {report['errors']} errors)"
    )
    print(
        f"emit -> handler done: p50 {lat['p50_ms']:.2f} ms, p95 {lat['p95_ms']:.2f} ms,"
        f" p99 {lat['p99_ms']:.2f} ms, max {lat['max_ms']:.2f} ms"
    )
    parts = {
        "emit -> event created in the runtime (HTTP in)": summary_ms(ingest),
        "event created -> handler start (durable publish, wake, lease)": summary_ms(queued),
        "handler start -> end": summary_ms(handler),
        "emit -> effects committed": summary_ms(committed),
        "HTTP 202 round trip (client)": report["service_latency"],
    }
    for name, s in parts.items():
        print(f"  {name}: p50 {s['p50_ms']:.2f} / p95 {s['p95_ms']:.2f} / p99 {s['p99_ms']:.2f} ms")
    result(
        "event_latency",
        {
            **facts(),
            "rate": args.rate,
            "events": n,
            "handled": got,
            "http_errors": report["errors"],
            "latency": lat,
            "committed": summary_ms(committed),
            "ingest": summary_ms(ingest),
            "queue": summary_ms(queued),
            "http_202": report["service_latency"],
        },
    )


if __name__ == "__main__":
    main()
