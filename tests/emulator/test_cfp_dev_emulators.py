"""`cfp start --backend emulators` (the same server as `cfp dev`, without reloading) runs the
example project on the Google adapters: it starts the emulators itself, on 127.0.0.1, provisions
the subscriptions, serves the flow, and stops the emulators when it is stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.emulator

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "orders"


def wait_for(check, within: float = 60.0, what: str = "", log: Path | None = None):
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.TransportError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    tail = log.read_text()[-4000:] if log else ""
    raise AssertionError(f"{what} not met within {within}s; last {last!r}\n{tail}")


def run_pids(data_dir: Path) -> list[int]:
    """Processes started for this run: cfp passes its environment (with CFP_DATA_DIR) on to
    the emulator scripts and the servers they exec, Java children included."""
    marker = f"CFP_DATA_DIR={data_dir}".encode() + b"\0"
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ:
                pids.append(int(entry.name))
    return pids


def test_the_example_project_runs_on_the_emulators(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    log = tmp_path / "cfp.log"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    env.update(CFP_LOG_LEVEL="warn", CFP_DATA_DIR=str(data_dir))
    cfp = Path(sys.executable).parent / "cfp"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                str(cfp),
                "start",
                *("--backend", "emulators", "--project", str(EXAMPLE), "--port", str(port)),
            ],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    p = f"{base}/v1/projects/orders/envs/dev"
    try:
        with httpx.Client(timeout=10) as client:
            wait_for(lambda: client.get(f"{base}/ready").status_code == 200, what="ready", log=log)
            creds = json.loads((data_dir / "dev-credentials").read_text())
            client.headers["authorization"] = f"Bearer {creds['api_key']}"
            client.headers["x-tenant-id"] = creds["tenant"]
            banner = log.read_text()
            assert "backend emulators" in banner and "Firestore 127.0.0.1:" in banner

            subs = client.get(f"{base}/v1/subscriptions").json()["items"]
            assert subs and {s["state"] for s in subs} == {"active"}
            assert {s["backend"] for s in subs} == {"emulators"}
            assert "cfp.local.orders.dev~PriceOrder~order.created" in {s["name"] for s in subs}

            created = client.post(
                f"{base}/orders",
                json={
                    "customerId": "alice",
                    "items": [{"sku": "tea", "quantity": 2, "unitPrice": 4.5}],
                },
            )
            assert created.status_code == 201, created.text
            order = created.json()["orderId"]
            booked = wait_for(
                lambda: client.get(f"{base}/orders/{order}").json().get("status") == "booked",
                what="order booked",
                log=log,
            )
            assert booked
            trace = client.get(f"{p}/traces/{created.json()['traceId']}").json()
            steps = {e["step"] for e in trace["executions"]}
            assert steps >= {"PriceOrder", "TrackOrderStatus", "AppendCustomerLedger"}
            ledger = client.get(f"{p}/state/ledgers/alice").json()
            assert ledger["value"][0]["orderId"] == order
            assert len(run_pids(data_dir)) > 3, "cfp and three emulators run"
    finally:
        proc.send_signal(signal.SIGTERM)  # as `kill` or a supervisor stops it
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    wait_for(lambda: not run_pids(data_dir), within=15, what="emulators stopped", log=log)
