"""Real `cfp start` processes for crash and multi-process tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

CFP = Path(sys.executable).parent / "cfp"


class CfpProcess:
    """One `cfp start` serving `project` on its own port."""

    def __init__(
        self, project: Path, data_dir: Path, log: Path, *extra: str, command: str = "start"
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.data_dir = data_dir
        env = {
            **os.environ,
            "CFP_RETRY_BASE_SECONDS": "0.05",
            "CFP_POLL_SECONDS": "0.05",
            "CFP_LOG_LEVEL": "warn",
        }
        with log.open("ab") as sink:
            self.proc = subprocess.Popen(
                [
                    str(CFP),
                    command,
                    "--project",
                    str(project),
                    "--data-dir",
                    str(data_dir),
                    "--port",
                    str(self.port),
                    *extra,
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"cfp exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"cfp not ready in {timeout}s:\n{self.log.read_text()}")

    @property
    def headers(self) -> dict[str, str]:
        """Credentials as a `cfp dev` user has them: the API key and tenant the server wrote
        to its data dir's dev-credentials on first start."""
        creds = json.loads((self.data_dir / "dev-credentials").read_text())
        return {"authorization": f"Bearer {creds['api_key']}", "x-tenant-id": creds["tenant"]}

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def processes() -> Iterator[list[CfpProcess]]:
    started: list[CfpProcess] = []
    yield started
    for proc in started:
        proc.stop()
