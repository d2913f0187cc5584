"""The CLI against real servers: `cfp emit` into `cfp start`, and `cfp dev` reloading edits."""

from __future__ import annotations

import subprocess
import time

import httpx

from tests.conftest import write_project
from tests.reliability.conftest import CFP, CfpProcess

PROJECT = {
    "steps/hello_step.py": """
        config = {"type": "api", "name": "Hello", "path": "/hello", "method": "GET",
                  "flows": ["cli"]}

        async def handler(req, context):
            return {"status": 200, "body": {"version": 1}}
    """,
    "steps/store_step.py": """
        config = {"type": "event", "name": "Store", "subscribes": ["note"], "flows": ["cli"]}

        async def handler(input, context):
            await context.state.set("notes", input["key"], input)
    """,
}


def test_cfp_emit_reaches_a_running_server(tmp_path, processes):
    project = write_project(tmp_path / "cli", PROJECT)
    server = CfpProcess(project, tmp_path / "data", tmp_path / "server.log")
    processes.append(server)
    done = subprocess.run(
        [
            str(CFP),
            "emit",
            "--topic",
            "note",
            "--data",
            '{"key": "k1", "text": "hi"}',
            "--url",
            server.url,
            "--data-dir",  # where `cfp start` wrote the dev credentials
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert '"event_id"' in done.stdout
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        resp = httpx.get(
            f"{server.url}/v1/projects/cli/envs/dev/state/notes/k1", headers=server.headers
        )
        if resp.status_code == 200:
            break
        time.sleep(0.1)
    assert resp.json()["value"] == {"key": "k1", "text": "hi"}
    bad = subprocess.run(
        [str(CFP), "emit", "--topic", "note", "--data", "{oops", "--url", server.url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 1 and "--data is not valid JSON" in bad.stderr


def test_cfp_dev_reloads_a_changed_step_file(tmp_path, processes):
    project = write_project(tmp_path / "cli", PROJECT)
    server = CfpProcess(project, tmp_path / "data", tmp_path / "dev.log", command="dev")
    processes.append(server)
    assert httpx.get(f"{server.url}/hello", headers=server.headers).json() == {"version": 1}
    step = project / "steps" / "hello_step.py"
    step.write_text(step.read_text().replace('{"version": 1}', '{"version": 2}'))
    deadline = time.monotonic() + 20
    body = None
    while time.monotonic() < deadline:
        try:
            body = httpx.get(f"{server.url}/hello", timeout=2, headers=server.headers).json()
        except (httpx.HTTPError, ValueError):
            body = None
        if body == {"version": 2}:
            break
        time.sleep(0.2)
    assert body == {"version": 2}
