"""Benchmark 1b: the runtime alone, in-process (no HTTP): `cfp.app.build` + the Runtime on uvloop
with a fresh temp data dir, N events of topic `a` ingested through `Runtime.ingest` (the same
call POST R/events makes: durable before it returns), each going a -> A -> b -> B -> state.
Measured from the first ingest to the last state write committed.

    .venv/bin/python bench/runtime_inproc.py [--events 5000] [--inflight 64] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import tempfile
import time
from pathlib import Path

from common import PROJECT, SLUG, facts, result, state_items, summary_ms


async def run(n: int, inflight: int, data_dir: Path, project: Path) -> dict[str, float]:
    from cfp.app import build
    from cfp.services.runtime import Origin
    from cfp.settings import Settings

    platform = build(
        Settings(project_dir=project, project_name=SLUG, data_dir=data_dir, log_level="warn"),
        log_stream=io.StringIO(),
    )
    await platform.start()
    done = state_items("done")
    try:
        gate = asyncio.Semaphore(inflight)

        async def one(i: int) -> None:
            async with gate:
                await platform.runtime.ingest("a", {"id": str(i), "t0": time.time()}, Origin())

        first = time.time()
        await asyncio.gather(*(one(i) for i in range(n)))
        ingested = time.time()
        reader = platform.db.read()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            (count,) = reader.execute(
                "SELECT count(*) FROM docs WHERE collection = ?", (done,)
            ).fetchone()
            if count >= n:
                break
            await asyncio.sleep(0.02)
        rows = reader.execute(
            "SELECT updated_at, json_extract(data, '$.value.t0'),"
            " json_extract(data, '$.value.t_done') FROM docs WHERE collection = ?",
            (done,),
        ).fetchall()
    finally:
        await platform.stop()
    last = max(r[0] for r in rows)
    return {
        "completed": len(rows),
        "ingest_s": ingested - first,
        "seconds": last - first,
        "latency": summary_ms([r[2] - r[1] for r in rows]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--project", type=Path, default=PROJECT, help="a variant of the chain")
    parser.add_argument("--profile", action="store_true", help="cProfile the loop thread")
    args = parser.parse_args()
    import uvloop

    tmp = Path(tempfile.mkdtemp(prefix="cfp-bench-inproc-"))
    try:
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            out = uvloop.run(run(args.events, args.inflight, tmp / "data", args.project))
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        else:
            out = uvloop.run(run(args.events, args.inflight, tmp / "data", args.project))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.events
    rate = out["completed"] / out["seconds"]
    print(
        f"{out['completed']}/{n} chains; ingest {out['ingest_s']:.2f}s"
        f" ({n / out['ingest_s']:.0f} events/s accepted); first ingest -> last state write"
        f" {out['seconds']:.2f}s = {rate:.0f} chains/s = {2 * rate:.0f} events/s handled (a+b)"
    )
    result(
        "runtime_inproc",
        {
            **facts(),
            "chains": n,
            "completed": out["completed"],
            "seconds": round(out["seconds"], 3),
            "ingest_per_s": round(n / out["ingest_s"], 1),
            "chains_per_s": round(rate, 1),
            "events_per_s": round(2 * rate, 1),
            "chain_latency": out["latency"],
        },
    )


if __name__ == "__main__":
    main()
