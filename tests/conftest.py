"""Shared fixtures: real platforms on the embedded backend, built from projects written to
a temporary directory."""

from __future__ import annotations

import asyncio
import io
import socket
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cfp.app import Platform, build
from cfp.settings import Settings

pytest_plugins = ["tests.emulators"]  # Google emulators, started only when a test asks


def free_port() -> int:
    """A port the kernel says is free on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_project(root: Path, files: dict[str, str]) -> Path:
    """Write `{relative path: source}` under root (sources are dedented)."""
    for rel, source in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip())
    return root


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    """Poll `check` until it returns a truthy value; fail with its last value on timeout."""
    deadline = asyncio.get_running_loop().time() + within
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met within {within}s; last value: {last!r}")


@pytest.fixture
async def make_platform(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Platform]]]:
    started: list[Platform] = []

    async def make(files: dict[str, str], *, start: bool = True, **overrides: Any) -> Platform:
        root = write_project(tmp_path / f"proj{len(started)}", files)
        values: dict[str, Any] = dict(
            project_dir=root,
            data_dir=tmp_path / "data",
            retry_base_seconds=0.01,
            poll_seconds=0.02,
            project_name="proj",
        )
        values.update(overrides)
        platform = build(Settings(**values), log_stream=io.StringIO())
        if start:
            await platform.start()
        started.append(platform)
        return platform

    yield make
    for platform in started:
        await platform.stop()
