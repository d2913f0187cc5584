"""kill -9 in the middle of 2,000 events, then restart: every effect exactly once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from tests.conftest import write_project
from tests.reliability.conftest import CfpProcess

EVENTS = 2000
PROJECT = {
    "steps/first_step.py": """
        import asyncio
        config = {"type": "event", "name": "First", "subscribes": ["work"], "emits": ["more"],
                  "flows": ["crash"], "cfp": {"concurrency": 20}}

        async def handler(input, context):
            await asyncio.sleep(0.002)
            await context.state.increment("first", str(input["i"]))
            await context.emit({"topic": "more", "data": input})
    """,
    "steps/second_step.py": """
        config = {"type": "event", "name": "Second", "subscribes": ["more"], "flows": ["crash"],
                  "cfp": {"concurrency": 20}}

        async def handler(input, context):
            await context.state.increment("second", str(input["i"]))
    """,
}


def publish(client: httpx.Client, start: int, stop: int) -> int:
    accepted = 0
    for i in range(start, stop):
        resp = client.post(
            "/v1/projects/crash/envs/dev/events",
            json={"topic": "work", "data": {"i": i}, "id": f"evt-{i}"},
        )
        if resp.status_code != 202:
            break
        accepted += 1
    return accepted


def effects(db: Path, group: str) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT id, json_extract(data, '$.value') FROM docs WHERE collection = ?",
            (f"tenants/local/projects/crash/envs/dev/state/{group}/items",),
        ).fetchall()
    finally:
        conn.close()
    return dict(rows)


def test_kill_9_mid_run_then_restart_applies_every_effect_exactly_once(tmp_path, processes):
    project = write_project(tmp_path / "crash", PROJECT)
    data = tmp_path / "data"
    first = CfpProcess(project, data, tmp_path / "first.log")
    processes.append(first)
    with httpx.Client(base_url=first.url, timeout=10, headers=first.headers) as client:
        accepted = publish(client, 0, EVENTS // 2)
    assert accepted == EVENTS // 2
    first.kill9()  # while most of those are still being processed
    done_before = len(effects(data / "cfp.db", "second"))
    assert done_before < accepted, "the kill must land while accepted events are unfinished"

    second = CfpProcess(project, data, tmp_path / "second.log")
    processes.append(second)
    with httpx.Client(base_url=second.url, timeout=10, headers=second.headers) as client:
        # resend everything: ids make the already-accepted half idempotent
        assert publish(client, 0, EVENTS) == EVENTS
        deadline = 120
        import time

        start = time.monotonic()
        while time.monotonic() - start < deadline:
            if len(effects(data / "cfp.db", "second")) == EVENTS:
                break
            time.sleep(0.25)
    first_effects = effects(data / "cfp.db", "first")
    second_effects = effects(data / "cfp.db", "second")
    assert len(first_effects) == EVENTS and len(second_effects) == EVENTS
    assert set(first_effects.values()) == {1}, "an effect of First was applied twice"
    assert set(second_effects.values()) == {1}, "an effect of Second was applied twice"
