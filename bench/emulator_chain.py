"""Benchmark 6: the api -> a -> b event chain on the emulators backend (the Google adapters on
Google's Firestore and Pub/Sub emulators), end to end at a modest fixed rate.

`cfp start --backend emulators` serves bench/projects/chain_emulators and starts the Firestore
and Pub/Sub emulators and fake-gcs-server itself, on 127.0.0.1. Events travel through Pub/Sub
(pulled by the worker into the Firestore ledger); state lives in the Firestore emulator. The
load generator (its own process) POSTs /ingest {id, t0} open-loop at a fixed rate, t0 =
time.time() just before the request is written. Step Ingest emits `a` stamped t_ingest, step A
emits `b` stamped t_a as it starts, step B stamps t_b as it starts and t_done as its handler
finishes, and writes them all to state group `done`. The latency is t_done - t0 (same machine,
same clock), read back over HTTP (GET .../state/done, paged). Every request carries the API key
and tenant cfp wrote to its data dir's dev-credentials. The split per hop comes from the
stamps; "state committed" is the `done` document's Firestore update_time, read with the
google-cloud-firestore client from the emulator whose port cfp's banner prints.

    .venv/bin/python bench/emulator_chain.py [--rate 10] [--seconds 15] [--warmup 3]

--rate is in chains/s; each chain is two events (a, b), so the default 10 is 20 events/s.

Needs Java and the emulator packages (`bash emulators/check.sh` says what is missing).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import time
import urllib.parse
from pathlib import Path
from typing import Any

from common import (
    BENCH,
    Server,
    child_pids,
    facts,
    get_json,
    loadgen,
    pid_alive,
    result,
    summary_ms,
)

PROJECT = BENCH / "projects" / "chain_emulators"
SLUG = "chain-emulators"
GOOGLE_PROJECT = "cfp-local"  # the project cfp gives the emulators (cfp.settings)
DONE = f"/v1/projects/{SLUG}/envs/dev/state/done"
BANNER = re.compile(r"Firestore (127\.0\.0\.1:\d+) .*database (\S+)")


def done_items(server: Server) -> list[dict[str, Any]]:
    """Every item of state group `done`, over HTTP with the server's credentials, paged 500 at
    a time."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = get_json(f"{server.url}{DONE}?{urllib.parse.urlencode(query)}", server.headers)
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def wait_done(server: Server, n: int, timeout: float) -> list[dict[str, Any]]:
    """Poll (once a second, to load the emulator little) until n items exist or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        items = done_items(server)
        if len(items) >= n or time.monotonic() >= deadline:
            return items
        time.sleep(1.0)


def commit_times(server: Server) -> dict[str, float]:
    """Each `done` document's Firestore update_time (epoch s), by key; empty when unreadable."""
    found = BANNER.search(server.log.read_text(errors="replace"))
    if not found:
        return {}
    host, database = found.groups()
    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    from google.cloud import firestore

    client = firestore.Client(project=GOOGLE_PROJECT, database=database)
    try:
        collection = f"tenants/local/projects/{SLUG}/envs/dev/state/done/items"
        return {
            snap.id: snap.update_time.timestamp() for snap in client.collection(collection).stream()
        }
    finally:
        client.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_name(pid: int) -> str:
    """A short name for cfp's children: the emulator a command line runs."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return str(pid)
    for name in ("firestore", "pubsub", "fake-gcs"):
        if name in cmd:
            return name
    return str(pid)


def stop_all(server: Server, emulators: list[int]) -> None:
    """Stop cfp (which stops its emulators); then end any emulator group it left behind."""
    server.stop()
    for pid in emulators:
        if pid_alive(pid):
            print(f"emulator process {pid} outlived cfp; killing its group")
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=10.0, help="chains/s (2 events each)")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds at the rate, dropped")
    parser.add_argument("--drain", type=float, default=90.0, help="seconds to wait for the tail")
    args = parser.parse_args()
    server = Server(project=PROJECT, args=["--backend", "emulators"])
    emulators: list[int] = []
    try:
        server.start(timeout=180)
        # the emulators run in their own process groups, children of cfp
        emulators = child_pids(server.pid)
        print(f"ready in {server.ready_seconds:.1f} s (emulators started by cfp included)")
        body = '{"id":"__I__","t0":__T__}'
        warm = loadgen(
            url=server.url,
            headers=server.headers,
            method="POST",
            path="/ingest",
            body=body.replace("__I__", "w__I__"),
            rate=args.rate,
            duration=args.warmup,
            max_seconds=args.warmup + 60,
        )
        wait_done(server, warm["scheduled"], timeout=args.drain)
        names = {process_name(pid): pid for pid in emulators}
        load_before = os.getloadavg()[0]  # this VM is shared: what else was running
        cpu_before = {pid: cpu_seconds(pid) for pid in [server.pid, *emulators]}
        report = loadgen(
            url=server.url,
            headers=server.headers,
            method="POST",
            path="/ingest",
            body=body,
            rate=args.rate,
            duration=args.seconds,
            max_seconds=args.seconds + 60,
        )
        n = report["scheduled"]
        started = time.monotonic()
        items = wait_done(server, n + warm["scheduled"], timeout=args.drain)
        drained = time.monotonic() - started
        cpu = {
            name: round(cpu_seconds(pid) - cpu_before[pid], 1)
            for name, pid in [("cfp", server.pid), *names.items()]
        }
        window = args.seconds + drained
        committed_at = commit_times(server)
    finally:
        stop_all(server, emulators)
    rows = {i["key"]: i["value"] for i in items if not i["key"].startswith("w")}
    total, http_in, to_a, a_to_b, settle, commit = [], [], [], [], [], []
    for key, v in rows.items():
        total.append(v["t_done"] - v["t0"])
        http_in.append(v["t_ingest"] - v["t0"])
        to_a.append(v["t_a"] - v["t_ingest"])
        a_to_b.append(v["t_b"] - v["t_a"])
        if key in committed_at:
            settle.append(committed_at[key] - v["t_done"])
            commit.append(committed_at[key] - v["t0"])
    got = len(rows)
    lat = summary_ms(total)
    if report["errors"]:
        print(f"errors: {report['statuses']} {report['error_samples']}")
    if report["errors"] or got < n:
        print("server log (tail):\n" + server.log_tail)
    print(
        f"{got}/{n} chains completed at {args.rate:g} chains/s = {2 * args.rate:g} events/s"
        f" ({report['achieved_rate']:.1f}/s accepted, {report['errors']} errors;"
        f" all done within {drained:.1f} s of the load ending)"
    )
    print(
        f"POST /ingest -> B handler done: p50 {lat['p50_ms']:.0f} ms, p95 {lat['p95_ms']:.0f} ms,"
        f" p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms"
    )
    cores = os.cpu_count() or 1
    print(
        f"CPU seconds over the {window:.0f} s of load and drain"
        f" ({cores} cores = {cores * window:.0f}): "
        + ", ".join(f"{name} {sec}" for name, sec in cpu.items())
    )
    print(f"1-min load average as the load began: {load_before:.2f}")
    parts = {
        "request -> Ingest handler (HTTP in)": summary_ms(http_in),
        "Ingest handler -> A start (commit, Pub/Sub, pull, ledger, lease)": summary_ms(to_a),
        "A start -> B start (the same hop again)": summary_ms(a_to_b),
        "B handler done -> its state committed (Firestore update_time)": summary_ms(settle),
        "request -> B's state committed": summary_ms(commit),
        "HTTP 202 round trip (client)": report["service_latency"],
    }
    for name, s in parts.items():
        print(f"  {name}: p50 {s['p50_ms']:.1f} / p95 {s['p95_ms']:.1f} / p99 {s['p99_ms']:.1f} ms")
    result(
        "emulator_chain",
        {
            **facts(),
            "rate": args.rate,
            "events_per_s": 2 * args.rate,
            "seconds": args.seconds,
            "chains": n,
            "completed": got,
            "http_errors": report["errors"],
            "ready_s": round(server.ready_seconds, 1),
            "cpu_s": cpu,
            "window_s": round(window, 1),
            "loadavg_1m": round(load_before, 2),
            "latency": lat,
            "http_in": summary_ms(http_in),
            "ingest_to_a": summary_ms(to_a),
            "a_to_b": summary_ms(a_to_b),
            "committed": summary_ms(commit),
            "http_202": report["service_latency"],
        },
    )


if __name__ == "__main__":
    main()
