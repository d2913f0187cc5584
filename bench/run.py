"""Run every benchmark (each in its own process, its output shown as it goes) and print a summary
table against the targets. `make bench` calls this. About 2.5 minutes on 2 cores. emulator_chain
needs Java and Google's emulators (`bash emulators/check.sh`); without them it fails to run, and
`--only` can leave it out.

    .venv/bin/python bench/run.py [--json results.json] [--only throughput,api_latency]

Exit status 1 when a benchmark failed to run; missed targets are reported, not fatal."""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
SCRIPTS = (
    "import_time",
    "throughput",
    "runtime_inproc",
    "event_latency",
    "api_latency",
    "emulator_chain",
    "audit_verify",
    "canvas_frames",
)


def run_one(name: str) -> dict[str, Any] | None:
    print(f"\n=== {name} ===", flush=True)
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / f"{name}.py")],
        cwd=BENCH.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    found = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("BENCH_RESULT "):
            found = json.loads(line[len("BENCH_RESULT ") :])
        else:
            print(line, end="", flush=True)
    if proc.wait() != 0:
        print(f"!!! {name} exited {proc.returncode}", flush=True)
        return None
    return found


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        value = f"{value:,.1f}" if value >= 100 else f"{value:.2f}"
    elif isinstance(value, int):
        value = f"{value:,}"
    return f"{value}{unit}"


def table(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(measure, figure, target, verdict) rows."""
    rows: list[tuple[str, str, str, str]] = []

    def check(measure: str, value: Any, unit: str, target: str, ok: bool | None) -> None:
        verdict = "-" if ok is None else ("met" if ok else "NOT MET")
        rows.append((measure, fmt(value, unit), target, verdict))

    t = results.get("throughput")
    if t:
        check(
            "1. events/s, api->a->b chain over HTTP (5,000 chains)",
            t["events_per_s"],
            "",
            ">= 1,000",
            t["events_per_s"] >= 1000 and t["completed"] == t["chains"],
        )
        check("   chains/s completed end to end (same run)", t["chains_per_s"], "", "", None)
    r = results.get("runtime_inproc")
    if r:
        check("1b. events/s, runtime in-process, no HTTP", r["events_per_s"], "", "", None)
    e = results.get("event_latency")
    if e:
        lat = e["latency"]
        check(
            "2. emit->handler done p95 at 200 events/s",
            lat["p95_ms"],
            " ms",
            "<= 20 ms",
            lat["p95_ms"] <= 20 and e["handled"] == e["events"],
        )
        check("   p50 / p99", f"{lat['p50_ms']:.2f} / {lat['p99_ms']:.2f}", " ms", "", None)
    a = results.get("api_latency")
    if a:
        lat = a["latency"]
        check(
            "3. api p95 at 500 req/s (from scheduled send)",
            lat["p95_ms"],
            " ms",
            "<= 5 ms",
            lat["p95_ms"] <= 5 and a["errors"] == 0,
        )
        check("   p50 / p99", f"{lat['p50_ms']:.2f} / {lat['p99_ms']:.2f}", " ms", "", None)
        check(
            "   highest sustained rate (p95 <= 50 ms)", a["max_sustained_rps"], " req/s", "", None
        )
    idle = [x["idle_rss_mb"] for x in (t, a) if x]
    if idle:
        check("4. server RSS idle after start", max(idle), " MB", "<= 120 MB", max(idle) <= 120)
    if t:
        check("   RSS peak under load, bench 1", t["peak_rss_mb"], " MB", "", None)
    if a:
        check("   RSS peak under load, bench 3", a["peak_rss_mb"], " MB", "", None)
    i = results.get("import_time")
    if i:
        us = i.get("functions_main_us")
        check(
            "5. import functions.main (median, bytecode cached)",
            None if us is None else us / 1000,
            " ms",
            "<= 300 ms",
            None if us is None else us <= 300_000,
        )
        if us is not None:
            check(
                "   same, compiling the repo's modules (as-is env)",
                i["functions_main_asis_us"] / 1000,
                " ms",
                "",
                None,
            )
        check(
            "   import cfp.services.runtime (reference, cached)",
            i["cfp_services_runtime_us"] / 1000,
            " ms",
            "",
            None,
        )
    g = results.get("emulator_chain")
    if g:
        lat = g["latency"]
        check(
            f"6. emulators: api->a->b request->B done p95 at {g['events_per_s']:g} events/s",
            lat["p95_ms"] / 1000,
            " s",
            "<= 2 s",
            lat["p95_ms"] <= 2000 and g["completed"] == g["chains"],
        )
        check(
            "   p50 / p99 / max",
            f"{lat['p50_ms'] / 1000:.2f} / {lat['p99_ms'] / 1000:.2f} / {lat['max_ms'] / 1000:.2f}",
            " s",
            "",
            None,
        )
        check(
            "   p95 per hop: Ingest->A start / A->B start",
            f"{g['ingest_to_a']['p95_ms'] / 1000:.2f} / {g['a_to_b']['p95_ms'] / 1000:.2f}",
            " s",
            "",
            None,
        )
        check("   chains completed", f"{g['completed']} of {g['chains']}", "", "", None)
    v = results.get("audit_verify")
    if v:
        check(
            f"7. audit bundle verification, {v['records']:,} records, one core",
            v["records_per_s"],
            " records/s",
            ">= 100,000",
            v["records_per_s"] >= 100_000,
        )
        check("   online verifier over stored documents", v["online_records_per_s"], "/s", "", None)
    c = results.get("canvas_frames")
    if c:
        for viewport in ("desktop", "phone"):
            f = c[viewport]
            check(
                f"8. canvas, {f['nodes']} steps panned and zoomed ({viewport}): frame p50 / p95",
                f"{f['p50_ms']:.1f} / {f['p95_ms']:.1f}",
                " ms",
                "",
                None,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(SCRIPTS))
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(SCRIPTS)
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    failed = []
    for name in names:
        found = run_one(name)
        if found is None:
            failed.append(name)
        else:
            results[name] = found
    rows = table(results)
    widths = [
        max(len(row[c]) for row in [("measure", "figure", "target", "verdict"), *rows])
        for c in range(4)
    ]
    print(
        f"\n=== summary ({datetime.now(UTC):%Y-%m-%d}, {platform.node()}, nproc"
        f" {next((r['nproc'] for r in results.values() if 'nproc' in r), '?')},"
        f" python {platform.python_version()}, {time.perf_counter() - started:.0f}s) ==="
    )
    for row in [("measure", "figure", "target", "verdict"), *rows]:
        print(
            "  ".join(
                cell.ljust(w) if c == 0 else cell.rjust(w)
                for c, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    if failed:
        print(f"failed to run: {', '.join(failed)}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
