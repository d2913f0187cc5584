"""`cfp create`'s project: it loads cleanly and runs end to end on the embedded backend."""

from __future__ import annotations

import io
import os
import sys

import pytest
from cfp.app import build
from cfp.errors import BadRequest
from cfp.services.loader import load_project
from cfp.services.runtime import Origin
from cfp.services.scaffold import scaffold
from cfp.settings import Settings

from tests.conftest import eventually


@pytest.fixture(autouse=True)
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading edits sys.path, PYTHONPATH and (from .env) GREETING; give them back."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    monkeypatch.delenv("GREETING", raising=False)


def test_scaffold_writes_the_files(tmp_path):
    root = tmp_path / "hello"

    written = scaffold(root)

    assert sorted(p.relative_to(root).as_posix() for p in written) == [
        ".env",
        ".gitignore",
        "README.md",
        "requirements.txt",
        "steps/hello_api_step.py",
        "steps/hello_event_step.py",
    ]
    assert "# hello" in (root / "README.md").read_text()
    assert "GREETING=Hello" in (root / ".env").read_text()


def test_scaffold_loads_cleanly(tmp_path):
    root = tmp_path / "hello"
    scaffold(root)

    project = load_project(root)

    assert project.warnings == []
    assert sorted(project.steps) == ["RememberHello", "SayHello"]
    api = project.steps["SayHello"]
    assert (api.route.method, api.route.path) == ("POST", "/hello")
    assert api.emit_topics == {"hello.said"}
    assert project.steps["RememberHello"].subscribes == ["hello.said"]
    assert project.flows["hello"]["edges"][0]["topic"] == "hello.said"


async def test_scaffolded_project_runs(tmp_path, monkeypatch):
    root = tmp_path / "hello"
    scaffold(root)
    monkeypatch.setenv("GREETING", "Howdy")  # the real environment wins over .env
    settings = Settings(project_dir=root, data_dir=tmp_path / "data", poll_seconds=0.02)
    platform = build(settings, log_stream=io.StringIO())
    await platform.start()
    try:
        api = platform.project.steps["SayHello"]
        req = {"body": {"name": "Ada"}, "headers": {}, "pathParams": {}, "queryParams": {}}

        response = await platform.runtime.handle_api(api, req, Origin())
        assert (response.status, response.body["message"]) == (200, "Howdy, Ada!")
        await platform.runtime.handle_api(api, req, Origin())

        # the two events may run at the same time: the atomic increment counts both
        counts = platform.scope.state_item("greeting_counts", "Ada")

        async def counted():
            doc = await platform.documents.get(counts)
            return doc and doc["value"] == 2

        assert await eventually(counted)
        greeting = await platform.documents.get(platform.scope.state_item("greetings", "Ada"))
        assert greeting["value"] == {"message": "Howdy, Ada!"}

        invalid = await platform.runtime.handle_api(api, {**req, "body": {"nom": "Ada"}}, Origin())
        assert invalid.status == 400
        assert invalid.body["details"][0]["loc"] == ["name"]
    finally:
        await platform.stop()


def test_scaffold_refuses_to_overwrite(tmp_path):
    root = tmp_path / "hello"
    (root / "steps").mkdir(parents=True)
    (root / "steps" / "hello_api_step.py").write_text("# mine\n")

    with pytest.raises(BadRequest) as raised:
        scaffold(root)

    assert raised.value.details == ["steps/hello_api_step.py"]
    assert (root / "steps" / "hello_api_step.py").read_text() == "# mine\n"
    assert not (root / "README.md").exists()
