"""Shared by the benchmark scripts: a real `cfp start` server on 127.0.0.1 with a fresh temp data
dir, RSS sampling from /proc, percentiles, the load generator subprocess, and result lines.

Every request a benchmark makes authenticates as a user of `cfp start` would: with the API key
and tenant the server writes to its data dir's dev-credentials on first start (`Server.headers`).

Every script prints its figures for a person and, last, one `BENCH_RESULT {json}` line that
`bench/run.py` collects into the summary table."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PROJECT = BENCH / "projects" / "chain"
SLUG = "chain"
PYTHON = Path(sys.executable)
CFP = PYTHON.parent / "cfp"
EVENTS_PATH = f"/v1/projects/{SLUG}/envs/dev/events"
STATE_PREFIX = f"tenants/local/projects/{SLUG}/envs/dev/state"


def state_items(group: str) -> str:
    """The docs collection holding a state group's items (see cfp.domain.paths.Scope)."""
    return f"{STATE_PREFIX}/{group}/items"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kb(pid: int) -> int:
    """VmRSS of a process in KiB, from /proc/PID/status (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Samples a process's RSS every `interval` seconds on a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kb = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, rss_kb(self.pid))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, rss_kb(self.pid))


class Server:
    """`cfp start --project bench/projects/chain` on a free 127.0.0.1 port, fresh data dir,
    CFP_LOG_LEVEL=warn (log lines to stdout cost time); stdout/stderr go to a file. Once started,
    `headers` holds the credentials the server wrote to DATA/dev-credentials (its tenant admin
    service account's API key and the tenant), to send on every request."""

    def __init__(
        self,
        project: Path = PROJECT,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.project = project
        self.args = list(args)  # more `cfp start` options, e.g. ["--backend", "emulators"]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = Path(tempfile.mkdtemp(prefix="cfp-bench-"))
        self.data_dir = self.tmp / "data"
        self.log = self.tmp / "server.log"
        self.env = {**os.environ, "CFP_LOG_LEVEL": "warn", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_seconds = 0.0
        self.log_tail = ""
        self.credentials: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def db_path(self) -> Path:
        return self.data_dir / "cfp.db"

    @property
    def headers(self) -> dict[str, str]:
        """`Authorization: Bearer <api key>` and `x-tenant-id`, from DATA/dev-credentials."""
        if not self.credentials:
            raise RuntimeError("no credentials yet: start the server first")
        return {
            "authorization": f"Bearer {self.credentials['api_key']}",
            "x-tenant-id": self.credentials["tenant"],
        }

    def _read_credentials(self) -> None:
        """DATA/dev-credentials, which `cfp start` writes on a data dir's first run (before it
        serves, so it exists once /ready answers)."""
        path = self.data_dir / "dev-credentials"
        try:
            self.credentials = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cfp wrote no readable {path}: {exc}") from exc

    def start(self, timeout: float = 60.0) -> Server:
        started = time.perf_counter()
        with self.log.open("wb") as sink:
            self.proc = subprocess.Popen(
                [
                    str(CFP),
                    "start",
                    "--project",
                    str(self.project),
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                    *self.args,
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.tmp,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cfp exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/ready", timeout=1) as resp:
                    if resp.status == 200:
                        self.ready_seconds = time.perf_counter() - started
                        self._read_credentials()
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"cfp not ready in {timeout}s:\n{self.log.read_text()}")

    def rss_mb(self) -> float:
        return rss_kb(self.pid) / 1024

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log.exists():
            self.log_tail = self.redact(self.log.read_text(errors="replace")[-3000:])
        shutil.rmtree(self.tmp, ignore_errors=True)

    def redact(self, text: str) -> str:
        """Text without the secrets of dev-credentials (the first-run banner prints them)."""
        for key in ("api_key", "password"):
            secret = self.credentials.get(key)
            if secret:
                text = text.replace(secret, f"<{key}>")
        return text

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- reading results straight from the data dir's SQLite file (read-only, WAL) -----------

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def count(self, collection: str) -> int:
        with self.connect() as conn:
            return conn.execute(
                "SELECT count(*) FROM docs WHERE collection = ?", (collection,)
            ).fetchone()[0]

    def wait_count(self, collection: str, n: int, timeout: float, poll: float = 0.05) -> int:
        """Poll until `collection` holds n docs or timeout; the count reached."""
        deadline = time.monotonic() + timeout
        got = 0
        while time.monotonic() < deadline:
            got = self.count(collection)
            if got >= n:
                return got
            time.sleep(poll)
        return got


def child_pids(pid: int) -> list[int]:
    """The direct children of a process, from /proc (those alive now)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # field 4 (ppid) follows the parenthesised command name, which may hold spaces
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry.name))
    return children


def pid_alive(pid: int) -> bool:
    """True while a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of values; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered) - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3) if ms else float("nan"),
    }


def get_json(url: str, headers: dict[str, str], timeout: float = 30) -> Any:
    """GET a URL with these headers (e.g. `Server.headers`); the decoded JSON body."""
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.load(resp)


def loadgen(**args: Any) -> dict[str, Any]:
    """Run bench/loadgen.py in its own process with these options; its JSON report.
    `headers={name: value}` becomes one `--header "name: value"` per entry."""
    argv = [str(PYTHON), str(BENCH / "loadgen.py")]
    for name, value in (args.pop("headers", None) or {}).items():
        argv += ["--header", f"{name}: {value}"]
    for key, value in args.items():
        if value is None or value is False:
            continue
        argv.append("--" + key.replace("_", "-"))
        if value is not True:
            argv.append(str(value))
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed ({out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def facts() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def result(name: str, figures: dict[str, Any]) -> None:
    """The machine-readable line bench/run.py collects."""
    print("BENCH_RESULT " + json.dumps({"bench": name, **figures}), flush=True)
