"""The `cfp` command's offline commands: build, flows, generate openapi, create."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cfp.cli import app
from cfp.domain.flows import build_flows, to_mermaid
from cfp.errors import ProjectInvalid
from cfp.services.loader import load_project
from cfp.services.manifest import manifest
from openapi_spec_validator import validate
from typer.testing import CliRunner

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "projects"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "orders"
CFP = Path(sys.executable).parent / "cfp"


@pytest.fixture(autouse=True)
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a project edits sys.path and PYTHONPATH; give them back afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    for var in ("CFP_PROJECT", "CFP_NAME", "CFP_ENV", "GREETING"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def copy_of(tmp_path: Path, source: Path) -> Path:
    target = tmp_path / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_build_writes_the_manifest(runner, tmp_path):
    project = copy_of(tmp_path, EXAMPLE)
    out = tmp_path / "build"

    result = runner.invoke(app, ["build", "--project", str(project), "--out", str(out)])

    assert result.exit_code == 0, result.output
    written = json.loads((out / "manifest.json").read_text())
    assert written == manifest(load_project(project))
    assert written["project"] == {"slug": "orders", "root": str(project)}
    assert f"({len(written['steps'])} steps)" in result.stdout
    assert not (out / "manifest.tmp").exists()


def test_build_names_the_project_with_name(runner, tmp_path):
    project = copy_of(tmp_path, FIXTURES / "valid")

    result = runner.invoke(
        app,
        [
            "build",
            *("--project", str(project), "--name", "shop", "--env", "prod"),
            *("--out", str(tmp_path / "b")),
        ],
    )

    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert written["project"]["slug"] == "shop"
    assert {s["dead_letter_topic"] for s in written["subscriptions"]} == {
        "cfp.local.shop.prod~dlq~Notify",
        "cfp.local.shop.prod~dlq~ProcessOrder",
    }


@pytest.mark.parametrize("fixture", ["invalid_config", "duplicates"])
def test_build_of_an_invalid_project_lists_every_problem(tmp_path, fixture):
    project = copy_of(tmp_path, FIXTURES / fixture)
    with pytest.raises(ProjectInvalid) as invalid:
        load_project(project)
    out = tmp_path / "build"

    # The real command, so what a developer sees is what is tested.
    result = subprocess.run(
        [str(CFP), "build", "--project", str(project), "--out", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
    )

    assert result.returncode == 1
    problems = invalid.value.details
    assert len(problems) >= 3
    lines = [line.strip() for line in result.stderr.splitlines()]
    assert lines[0] == f"error: project '{project.name.replace('_', '-')}' is invalid: " + (
        f"{len(problems)} problems"
    )
    listed = [line for line in lines if line.startswith("- ")]
    expected = []
    for p in problems:
        key = f" [{p['key']}]" if p["key"] else ""
        expected.append(f"- {p['file']}{key}: {p['message']}")
    assert listed == expected
    assert not out.exists()


def test_build_shows_warnings_and_succeeds(runner, tmp_path):
    project = copy_of(tmp_path, FIXTURES / "warnings")

    result = runner.invoke(app, ["build", "--project", str(project), "--out", str(tmp_path / "b")])

    assert result.exit_code == 0, result.output
    assert "warning: src/start_step.py: topic 'nobody.listens' is emitted" in result.stderr
    assert (tmp_path / "b" / "manifest.json").is_file()


def test_build_without_a_project_fails(runner, tmp_path):
    result = runner.invoke(app, ["build", "--out", str(tmp_path / "b")])

    assert result.exit_code == 1
    assert "no project" in result.stderr


def test_flows_mermaid(runner, tmp_path):
    project = copy_of(tmp_path, EXAMPLE)

    result = runner.invoke(app, ["flows", "--project", str(project), "--mermaid"])

    assert result.exit_code == 0, result.output
    expected = "".join(
        f"%% flow {name}\n{to_mermaid(graph)}\n"
        for name, graph in build_flows(load_project(project).steps.values()).items()
    )
    assert result.stdout == expected
    assert "%% flow housekeeping" in result.stdout and "%% flow orders" in result.stdout


def test_flows_lists_steps(runner, tmp_path):
    project = copy_of(tmp_path, FIXTURES / "valid")

    result = runner.invoke(app, ["flows", "--project", str(project)])

    assert result.exit_code == 0, result.output
    assert "reports: NightlyReport (cron), Notify (event)" in result.stdout


def test_generate_openapi(runner, tmp_path):
    project = copy_of(tmp_path, EXAMPLE)

    result = runner.invoke(app, ["generate", "openapi", "--project", str(project)])

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate(doc)
    assert doc["paths"]["/orders/{id}"]["get"]["operationId"] == "GetOrder"

    target = tmp_path / "openapi.json"
    result = runner.invoke(
        app, ["generate", "openapi", "--project", str(project), "--out", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text()) == doc


def test_create_then_load_and_build(runner, tmp_path):
    root = tmp_path / "hello"

    result = runner.invoke(app, ["create", str(root)])

    assert result.exit_code == 0, result.output
    project = load_project(root)
    assert sorted(project.steps) == ["RememberHello", "SayHello"]
    result = runner.invoke(app, ["build", "--project", str(root), "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert [s["name"] for s in written["subscriptions"]] == [
        "cfp.local.hello.dev~RememberHello~hello.said"
    ]


def test_create_refuses_a_directory_that_is_not_empty(runner, tmp_path):
    root = tmp_path / "busy"
    root.mkdir()
    (root / "notes.txt").write_text("keep me\n")

    result = runner.invoke(app, ["create", str(root)])

    assert result.exit_code == 1
    assert "not empty" in result.stderr
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]


def test_install_runs_pip_on_the_projects_requirements(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "requirements.txt").write_text("httpx\n")  # already in this environment
    done = subprocess.run(
        [str(CFP), "install", "--project", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Requirement already satisfied: httpx" in done.stdout
    assert f"installed {project / 'requirements.txt'}" in done.stdout


def test_install_reports_a_failing_requirements_file(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "requirements.txt").write_text("this is === not a requirement\n")
    done = subprocess.run(
        [str(CFP), "install", "--project", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "installing" in done.stderr and "failed" in done.stderr


def test_install_without_a_project_dir_fails(tmp_path):
    done = subprocess.run(
        [str(CFP), "install", "--project", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "--project DIR" in done.stderr


def test_admin_create_user_makes_a_system_admin_offline(runner, tmp_path, monkeypatch):
    import asyncio

    from cfp.app import open_control
    from cfp.domain.rbac import AccessScope
    from cfp.settings import Settings

    monkeypatch.setenv("CFP_ADMIN_PASSWORD", "correct horse battery staple")
    args = ["admin", "create-user", "--email", "ops@example.com", "--system-admin"]

    made = runner.invoke(app, [*args, "--data-dir", str(tmp_path)])
    again = runner.invoke(app, [*args, "--data-dir", str(tmp_path)])
    weak_args = ["admin", "create-user", "--email", "x@example.com", "--password", "short"]
    weak = runner.invoke(app, [*weak_args, "--data-dir", str(tmp_path)])

    assert made.exit_code == 0, made.output
    assert again.exit_code == 1 and "exists" in again.output
    assert weak.exit_code == 1 and "at least 12 characters" in weak.output

    async def signin():
        async with open_control(Settings(data_dir=tmp_path)) as control:
            tokens = await control.identity.signin(
                "ops@example.com", "correct horse battery staple"
            )
            caller = await control.authenticate(tokens.access_token)
            return caller.may("tenant.manage", AccessScope.system())

    assert asyncio.run(signin())
