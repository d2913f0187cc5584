"""Benchmark 8: the workbench's flow canvas with 200 steps, panned and zoomed in Chromium.

Starts `cfp start --project tests/fixtures/projects/big_flow` (200 steps, 396 edges in one flow)
and runs web/e2e/canvas-perf.mjs against it at desktop size (mouse wheel and drags) and at
phone size (touch pinches and swipes), each for a few seconds, while the page records the time
between animation frames. Prints p50 / p95 / max frame times per viewport. Needs the built
workbench (`make install`) and Chromium (`make chromium`).

    .venv/bin/python bench/canvas_frames.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

from common import Server, facts, result

REPO = Path(__file__).resolve().parents[1]
BIG_FLOW = REPO / "tests" / "fixtures" / "projects" / "big_flow"
SCRIPT = REPO / "web" / "e2e" / "canvas-perf.mjs"


def measure(server: Server, viewport: str, seconds: float) -> dict:
    env = {
        **os.environ,
        "CFP_URL": server.url,
        "CFP_CREDENTIALS": str(server.data_dir / "dev-credentials"),
        "PERF_VIEWPORT": viewport,
        "PERF_SECONDS": str(seconds),
        "FLOW": "big",
    }
    done = subprocess.run(
        ["node", str(SCRIPT)],
        cwd=REPO / "web",
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"canvas-perf.mjs ({viewport}) failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    figures: dict[str, dict] = {}
    with Server(project=BIG_FLOW) as server:
        for viewport in ("desktop", "phone"):
            found = measure(server, viewport, args.seconds)
            frames = found["frame_ms"]
            figures[viewport] = {
                "nodes": found.get("nodes"),
                "edges": found.get("edges"),
                "frames": found.get("frames"),
                "p50_ms": frames["p50"],
                "p95_ms": frames["p95"],
                "max_ms": frames["max"],
                "load_ms": found.get("load_ms"),
            }
            print(
                f"{viewport}: {found.get('nodes')} nodes, {found.get('edges')} edges, "
                f"{found.get('frames')} frames: p50 {frames['p50']:.1f} / p95 {frames['p95']:.1f}"
                f" / max {frames['max']:.1f} ms; canvas loaded in {found.get('load_ms')} ms"
            )
    result("canvas_frames", {**figures, **facts()})


if __name__ == "__main__":
    main()
