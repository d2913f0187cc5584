"""Two processes on one data dir: each cron tick runs exactly once."""

from __future__ import annotations

import sqlite3
import time

from tests.conftest import write_project
from tests.reliability.conftest import CfpProcess

PROJECT = {
    "steps/tick_step.py": """
        config = {"type": "cron", "name": "Tick", "cron": "* * * * * *", "flows": ["cron"]}

        async def handler(context):
            await context.state.increment("ticks", "count")
    """,
}


def test_each_tick_runs_once_with_two_processes(tmp_path, processes):
    project = write_project(tmp_path / "cron", PROJECT)
    data = tmp_path / "data"
    processes.append(CfpProcess(project, data, tmp_path / "a.log"))
    processes.append(CfpProcess(project, data, tmp_path / "b.log"))
    time.sleep(4.5)
    for proc in processes:
        proc.stop()
    conn = sqlite3.connect(data / "cfp.db")
    rows = conn.execute(
        "SELECT json_extract(data, '$.event_id'), count(*) FROM docs WHERE collection = ?"
        " AND json_extract(data, '$.status') = 'ok' GROUP BY 1",
        ("tenants/local/projects/cron/envs/dev/executions",),
    ).fetchall()
    count = conn.execute(
        "SELECT json_extract(data, '$.value') FROM docs WHERE collection = ?",
        ("tenants/local/projects/cron/envs/dev/state/ticks/items",),
    ).fetchone()
    conn.close()
    assert len(rows) >= 3, f"expected at least 3 ticks in 4.5 s, got {rows}"
    assert all(n == 1 for _, n in rows), f"a tick ran more than once: {rows}"
    assert count[0] == len(rows)
