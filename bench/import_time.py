"""Benchmark 5: import time of the Cloud Run entry module, and of the runtime for reference.

For each module, `python -X importtime -c "import MODULE"` runs in a fresh interpreter from the
repo root, --runs times. The figure is the cumulative microseconds of the top-level `MODULE` line
(it includes every package and module that import pulled in); the median is reported, with min
and max. The whole interpreter's wall time for `python -c "import MODULE"` minus
`python -c "pass"` is shown alongside.

Two bytecode conditions: "cached" (the headline) gives the interpreters a private, warmed
bytecode cache (PYTHONPYCACHEPREFIX=a temp dir, after one warm-up run), as a deployed function
has .pyc files; "as-is" inherits this shell's environment, where PYTHONDONTWRITEBYTECODE=1 may
leave the repo's own modules without .pyc, so they are compiled from source on every start.

    .venv/bin/python bench/import_time.py [--runs 7] [--wait 0]

`--wait S` polls up to S seconds for functions/main.py to exist (it may be written in parallel).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from common import PYTHON, REPO, facts, result

MODULES = ("functions.main", "cfp.services.runtime")


def importtime_us(module: str, env: dict[str, str]) -> int:
    """Cumulative microseconds of the top-level import of `module` in a fresh interpreter."""
    out = subprocess.run(
        [str(PYTHON), "-X", "importtime", "-c", f"import {module}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    for line in out.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() == module and not parts[2].startswith("  "):
            return int(parts[1])
    raise RuntimeError(f"no top-level line for {module} in:\n{out.stderr[-2000:]}")


def wall_ms(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([str(PYTHON), "-c", code], cwd=REPO, check=True, env=env)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--wait", type=float, default=0.0)
    args = parser.parse_args()
    entry = REPO / "functions" / "main.py"
    deadline = time.monotonic() + args.wait
    while not entry.exists() and time.monotonic() < deadline:
        time.sleep(10)
    figures: dict[str, object] = {**facts()}
    cache = tempfile.mkdtemp(prefix="cfp-bench-pycache-")
    cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cached["PYTHONPYCACHEPREFIX"] = cache
    conditions = {"cached": cached, "as-is": dict(os.environ)}
    try:
        for module in MODULES:
            if module == "functions.main" and not entry.exists():
                print(f"{module}: functions/main.py does not exist; skipped")
                figures["functions_main_us"] = None
                continue
            for condition, env in conditions.items():
                importtime_us(module, env)  # warm-up (fills the private cache when "cached")
                runs = [importtime_us(module, env) for _ in range(args.runs)]
                bare = statistics.median(wall_ms("pass", env) for _ in range(3))
                wall = statistics.median(wall_ms(f"import {module}", env) - bare for _ in range(3))
                med = statistics.median(runs)
                print(
                    f"import {module} [{condition}]: {med / 1000:.1f} ms median of {args.runs}"
                    f" (min {min(runs) / 1000:.1f}, max {max(runs) / 1000:.1f});"
                    f" wall over a bare interpreter {wall:.0f} ms"
                )
                key = module.replace(".", "_") + ("_us" if condition == "cached" else "_asis_us")
                figures[key] = int(med)
                figures[key.replace("_us", "_min_us")] = min(runs)
                figures[key.replace("_us", "_max_us")] = max(runs)
                figures[key.replace("_us", "_wall_ms")] = round(wall, 1)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    result("import_time", figures)


if __name__ == "__main__":
    main()
