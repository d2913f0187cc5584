"""The `cfp` command: create, install, dev, start, build, emit, flows, generate, admin, audit."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from cfp.errors import CfpError, ProjectInvalid, SettingsError
from cfp.settings import ENV_NAMES, Settings

app = typer.Typer(
    help="CFP — the Coditect Flow Platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
generate = typer.Typer(help="Generate documents from a project.", no_args_is_help=True)
app.add_typer(generate, name="generate")
admin = typer.Typer(help="Offline administration of a data dir or backend.", no_args_is_help=True)
app.add_typer(admin, name="admin")
audit = typer.Typer(help="Verify audit evidence offline.", no_args_is_help=True)
app.add_typer(audit, name="audit")
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

ProjectOpt = Annotated[Path | None, typer.Option("--project", help="Project directory.")]
NameOpt = Annotated[str | None, typer.Option("--name", help="Project slug (default: folder).")]
EnvOpt = Annotated[str | None, typer.Option("--env", help="Environment name (default dev).")]
HostOpt = Annotated[str | None, typer.Option("--host", help="Bind address (default 127.0.0.1).")]
PortOpt = Annotated[int | None, typer.Option("--port", help="Port (default 8080).")]
DataOpt = Annotated[Path | None, typer.Option("--data-dir", help="Data dir (default .cfp/).")]
ModeOpt = Annotated[
    str | None, typer.Option("--validation-mode", help="strict or permissive (default).")
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="local (embedded, default), emulators (Google's emulators, started here) or gcp.",
    ),
]


def fail(message: str, problems: list[Any] | None = None, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    for problem in problems or []:
        if isinstance(problem, dict):
            key = f" [{problem['key']}]" if problem.get("key") else ""
            err.print(
                f"  - {problem.get('file')}{key}: {problem.get('message')}",
                highlight=False,
                markup=False,  # `[config.cron]` would read as a markup tag and vanish
            )
        else:
            err.print(f"  - {problem}", highlight=False, markup=False)
    raise typer.Exit(code)


def settings_from(**flags: Any) -> Settings:
    try:
        return Settings.load(**flags)
    except SettingsError as exc:
        fail(exc.message)
        raise AssertionError("unreachable") from None


def load(settings: Settings) -> Any:
    """The project, or a listing of every problem and exit 1."""
    from cfp.services.loader import load_project

    if settings.project_dir is None:
        fail("no project: pass --project DIR or set CFP_PROJECT")
    root = Path(settings.project_dir)
    if not root.is_dir():
        fail(f"--project: {root} is not a directory")
    try:
        project = load_project(root.resolve(), slug=settings.project_name)
    except ProjectInvalid as exc:
        fail(exc.message.splitlines()[0], exc.details)  # the details list every problem
    for warning in project.warnings:
        err.print(
            f"[yellow]warning:[/] {escape(warning['file'])}: {escape(warning['message'])}",
            highlight=False,
        )
    return project


def start_emulators_for(settings: Settings) -> tuple[Settings, Any]:
    """For `--backend emulators`: start the emulators the settings do not already point at
    (Firestore, Pub/Sub, Cloud Storage) on 127.0.0.1, and the settings that reach them."""
    if settings.backend != "emulators":
        return settings, None
    wanted = {
        "firestore": settings.firestore_emulator_host,
        "pubsub": settings.pubsub_emulator_host,
        "gcs": settings.storage_emulator_host,
    }
    missing = [name for name, host in wanted.items() if not host]
    if not missing:
        return settings, None
    from cfp.adapters.gcp.emulators import EmulatorError, start_emulators

    log_dir = Path(settings.data_dir).resolve() / "emulators"
    log_dir.mkdir(parents=True, exist_ok=True)
    out.print(f"starting emulators: {', '.join(missing)} (logs in {log_dir})")
    try:
        running = start_emulators(missing, project=settings.google_project, log_dir=log_dir)
    except EmulatorError as exc:
        fail(exc.message)
    update = {
        "firestore_emulator_host": running.firestore_host or settings.firestore_emulator_host,
        "pubsub_emulator_host": running.pubsub_host or settings.pubsub_emulator_host,
        "storage_emulator_host": running.gcs_url or settings.storage_emulator_host,
    }
    return settings.model_copy(update=update), running


def first_run_credentials(settings: Settings) -> None:
    """On the first run of a data dir, set up tenant, project, environment, a local admin and
    an API key (the platform writes them to DATA_DIR/dev-credentials, mode 0600), and print
    them, this once, to the terminal (never to a log)."""
    import asyncio

    from cfp.app import build

    if settings.backend == "gcp":
        return
    path = Path(settings.data_dir) / "dev-credentials"
    if path.exists():
        return

    async def setup() -> None:
        platform = build(settings, log_stream=io.StringIO())
        try:
            await platform.start(consume=False)
            bootstrapped = settings.bootstrap_admin_email and settings.bootstrap_admin_password
            await platform.local_setup(create_admin=not bootstrapped)
        finally:
            await platform.stop()

    try:
        asyncio.run(setup())
    except CfpError as exc:
        fail(exc.message)
    if not path.exists():  # an administrator came from CFP_BOOTSTRAP_*: nothing to print
        return
    creds = json.loads(path.read_text())
    out.print(f"[bold]first run[/]: local credentials (also in {path}, readable by you only):")
    if creds.get("password"):
        out.print(f"  admin     {creds['email']} / {creds['password']}", highlight=False)
    out.print(f"  api key   {creds['api_key']}", highlight=False)
    out.print(
        f"  use       -H 'authorization: Bearer <api key>' -H 'x-tenant-id: {creds['tenant']}'",
        highlight=False,
    )


def serve(settings: Settings, *, reload: bool) -> None:
    project = load(settings)
    if settings.backend == "gcp":  # before the server starts, not deep in its first request
        from cfp.adapters.gcp.errors import require_credentials

        try:
            require_credentials()
        except SettingsError as exc:
            fail(exc.message)
    settings, emulators = start_emulators_for(settings)
    try:
        first_run_credentials(settings)
    except BaseException:
        if emulators is not None:
            emulators.stop()
        raise
    if emulators is not None:
        # uvicorn re-raises SIGTERM after its shutdown; exit through `finally` instead of dying
        # of it, so the emulators stop with us
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        _serve(settings, project, reload=reload)
    finally:
        if emulators is not None:
            emulators.stop()


def _serve(settings: Settings, project: Any, *, reload: bool) -> None:
    import uvicorn

    from cfp.services.observability import PROCESS_IDENTITY, uvicorn_log_config

    PROCESS_IDENTITY.update(tenant=settings.tenant, project=project.slug, env=settings.env)
    for name, var in ENV_NAMES.items():  # the server process re-reads settings from these
        value = getattr(settings, name)
        if value is not None:
            os.environ[var] = str(
                Path(value).resolve() if name in ("project_dir", "data_dir") else value
            )
    url = f"http://{settings.host}:{settings.port}"
    base = f"{url}/v1/projects/{project.slug}/envs/{settings.env}"
    out.print(
        f"[bold green]CFP[/] serving project [bold]{project.slug}[/] "
        f"({len(project.steps)} steps, {len(project.streams)} streams) env {settings.env}"
    )
    out.print(f"  open      {url}/")
    out.print(
        "  api steps "
        + ", ".join(f"{s.route.method} {s.route.path}" for s in project.api_steps if s.route)
    )
    out.print(f"  runtime   {base}/flows · /traces · /logs · /dead-letters · /ws")
    out.print(
        f"  data dir  {Path(settings.data_dir).resolve()}  backend {settings.backend}"
        f"  validation {settings.validation_mode}" + ("  (reloads on change)" if reload else "")
    )
    if settings.backend != "local":
        where = (
            f"Firestore {settings.firestore_emulator_host} · Pub/Sub "
            f"{settings.pubsub_emulator_host} · Cloud Storage {settings.storage_emulator_host}"
            if settings.backend == "emulators"
            else f"project {settings.google_project} region {settings.google_region}"
        )
        out.print(
            f"  google    {where} · database {settings.database} · bucket {settings.bucket_name}"
        )
    sys.stdout.flush()
    kwargs: dict[str, Any] = dict(
        host=settings.host,
        port=settings.port,
        factory=True,
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        log_config=uvicorn_log_config("warning"),
        access_log=False,
        lifespan="on",
    )
    try:
        import uvloop  # noqa: F401

        kwargs["loop"] = "uvloop"
    except ImportError:
        pass
    if reload:
        kwargs.update(
            reload=True, reload_dirs=[str(project.root)], reload_includes=["*.py", ".env"]
        )
    uvicorn.run("cfp.api.server:app_from_env", **kwargs)


def server_command(*, reload: bool, doc: str) -> Any:
    """`cfp dev` and `cfp start`: the same flags, with or without reloading."""

    def command(
        project: ProjectOpt = None,
        name: NameOpt = None,
        env: EnvOpt = None,
        host: HostOpt = None,
        port: PortOpt = None,
        data_dir: DataOpt = None,
        validation_mode: ModeOpt = None,
        backend: BackendOpt = None,
    ) -> None:
        settings = settings_from(
            project_dir=project,
            project_name=name,
            env=env,
            host=host,
            port=port,
            data_dir=data_dir,
            validation_mode=validation_mode,
            backend=backend,
        )
        serve(settings, reload=reload)

    command.__doc__ = doc
    return command


app.command("dev")(
    server_command(reload=True, doc="Run a project locally; reload when its files change.")
)
app.command("start")(server_command(reload=False, doc="Run a project (no reload)."))


@app.command()
def build(
    project: ProjectOpt = None,
    name: NameOpt = None,
    env: EnvOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Output dir.")] = Path("build"),
) -> None:
    """Validate the project and write build/manifest.json, the deploy input."""
    from cfp.services.manifest import manifest

    settings = settings_from(project_dir=project, project_name=name, env=env)
    loaded = load(settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "manifest.json"
    tmp = target.with_suffix(".tmp")
    doc = manifest(loaded, tenant=settings.tenant, env=settings.env)
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(target)
    out.print(f"wrote {target} ({len(loaded.steps)} steps)")


@app.command()
def emit(
    topic: Annotated[str, typer.Option("--topic", help="Topic to emit.")],
    data: Annotated[str, typer.Option("--data", help="JSON payload.")] = "{}",
    url: Annotated[str, typer.Option("--url", help="Server URL.")] = "http://127.0.0.1:8080",
    project: Annotated[str | None, typer.Option("--project", help="Project slug.")] = None,
    env: Annotated[str, typer.Option("--env")] = "dev",
    event_id: Annotated[str | None, typer.Option("--id", help="Idempotency id.")] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="CFP_API_KEY",
            help="Credential (default: the one `cfp dev` wrote to DATA_DIR/dev-credentials).",
        ),
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", envvar="CFP_TENANT")] = None,
    data_dir: DataOpt = None,
) -> None:
    """Emit an event into a running server (POST R/events)."""
    import httpx

    try:
        payload = json.loads(data)
    except ValueError as exc:
        fail(f"--data is not valid JSON: {exc}")
    credentials = dev_credentials(data_dir)
    token = api_key or credentials.get("api_key")
    if not token:
        fail(
            "no credential: pass --api-key (or CFP_API_KEY), or run where `cfp dev` wrote "
            "DATA_DIR/dev-credentials (--data-dir)"
        )
    headers = {
        "authorization": f"Bearer {token}",
        "x-tenant-id": tenant or credentials.get("tenant") or "local",
    }
    try:
        with httpx.Client(base_url=url, timeout=10, headers=headers) as client:
            served = client.get("/v1/projects", headers={"x-tenant-id": ""})
            slug = project or served.json()["items"][0]["slug"]
            body: dict[str, Any] = {"topic": topic, "data": payload}
            if event_id:
                body["id"] = event_id
            resp = client.post(f"/v1/projects/{slug}/envs/{env}/events", json=body)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {exc} (is `cfp dev` running?)")
    if resp.status_code != 202:
        error = resp.json().get("error", {})
        fail(
            f"{resp.status_code} {error.get('message')}",
            error.get("details") and [json.dumps(error["details"])],
        )
    out.print_json(data=resp.json())


@admin.command("create-user")
def admin_create_user(
    email: Annotated[str, typer.Option("--email", help="The user's email.")],
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            envvar="CFP_ADMIN_PASSWORD",
            help="Prompted for when not given (never pass it where shell history keeps it).",
        ),
    ] = None,
    system_admin: Annotated[
        bool, typer.Option("--system-admin", help="Bind the system administrator role.")
    ] = False,
    data_dir: DataOpt = None,
    backend: BackendOpt = None,
) -> None:
    """Create a user directly in the store (e.g. the first system administrator), without a
    running server: the same as CFP_BOOTSTRAP_ADMIN_EMAIL/PASSWORD on first start."""
    import asyncio

    from cfp.app import open_control

    settings = settings_from(data_dir=data_dir, backend=backend)
    if password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)

    async def create() -> str:
        async with open_control(settings) as control:
            view = await control.identity.create_user(email, password=password)
            if system_admin:
                await control.tenancy.bind_system(view.id, "system_admin", "system")
            return view.id

    try:
        principal = asyncio.run(create())
    except CfpError as exc:
        fail(exc.message)
    role = " as system administrator" if system_admin else ""
    out.print(f"created user {email} ({principal}){role}")


def dev_credentials(data_dir: Path | None) -> dict[str, Any]:
    """What `cfp dev` wrote to DATA_DIR/dev-credentials (empty if nothing)."""
    folder = data_dir or Path(os.environ.get("CFP_DATA_DIR") or ".cfp")
    try:
        return json.loads((folder / "dev-credentials").read_text())
    except (OSError, ValueError):
        return {}


@app.command()
def flows(
    project: ProjectOpt = None,
    mermaid: Annotated[bool, typer.Option("--mermaid", help="Mermaid diagrams.")] = False,
) -> None:
    """List the project's flows (or print them as Mermaid diagrams)."""
    from cfp.domain.flows import build_flows, to_mermaid

    loaded = load(settings_from(project_dir=project))
    graphs = build_flows(loaded.steps.values())
    for graph in graphs.values():
        if mermaid:
            out.print(f"%% flow {graph['name']}", highlight=False)
            out.print(to_mermaid(graph), highlight=False, markup=False)
        else:
            out.print(
                f"[bold]{graph['name']}[/]: "
                + ", ".join(f"{n['name']} ({n['type']})" for n in graph["nodes"]),
                highlight=False,
            )


@generate.command("openapi")
def generate_openapi(
    project: ProjectOpt = None, output: Annotated[Path | None, typer.Option("--out")] = None
) -> None:
    """Write the OpenAPI 3.1 document of the project's api steps."""
    from cfp.services.manifest import openapi

    loaded = load(settings_from(project_dir=project))
    text = json.dumps(openapi(loaded), indent=2)
    if output:
        output.write_text(text + "\n")
        out.print(f"wrote {output}")
    else:
        sys.stdout.write(text + "\n")


@generate.command("rbac")
def generate_rbac(output: Annotated[Path | None, typer.Option("--out")] = None) -> None:
    """Write the roles and permissions table (docs/rbac.md) from the code's one table."""
    from cfp.domain.rbac import render_markdown

    text = render_markdown()
    if output:
        output.write_text(text)
        out.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


@audit.command("verify")
def audit_verify(
    bundle: Annotated[
        Path,
        typer.Argument(help="An export bundle (POST /v1/audit/export).", metavar="BUNDLE.zip"),
    ],
    keys: Annotated[
        list[Path] | None,
        typer.Option(
            "--key",
            metavar="KEY.json",
            help="Trust only this checkpoint key: a keys.json, or one key's JSON as the anchor "
            "sink publishes it (keys/*.json). Repeatable. Default: the bundle's own keys.json.",
        ),
    ] = None,
    checkpoints: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            metavar="NOTE",
            help="A signed checkpoint note fetched from the anchor sink: the bundle must reach "
            "its tree size and hash to its root. Repeatable.",
        ),
    ] = None,
    tsa_certs: Annotated[
        list[str] | None,
        typer.Option(
            "--tsa-cert",
            metavar="SHA256",
            help="Accept timestamps only from this TSA certificate "
            "(SHA-256 fingerprint, hex). Repeatable.",
        ),
    ] = None,
) -> None:
    """Verify an audit bundle offline: chain, Merkle roots, checkpoint signatures, consistency
    between checkpoints, anchors and timestamps. Exits 1 naming the first problem, 2 when the
    bundle or an option's file cannot be read."""
    import zipfile
    import zlib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from cfp.domain.bundles import keys_from_json, verify_bundle
    from cfp.domain.notes import Checkpoint, parse_signed_note

    trusted = None
    if keys:
        trusted = []
        for path in keys:
            try:
                raw = json.loads(path.read_text())
                entries = raw if isinstance(raw, list) else [raw]
                trusted += keys_from_json(json.dumps(entries).encode())
            except (OSError, ValueError) as exc:
                fail(f"--key {path}: {exc}", code=2)
    pinned: list[bytes] = []
    for path in checkpoints or []:
        try:
            note = path.read_bytes()
            body, _ = parse_signed_note(note)
            Checkpoint.parse(body)
        except (OSError, ValueError) as exc:
            fail(f"--checkpoint {path}: not a signed checkpoint note ({exc})", code=2)
        pinned.append(note)
    fingerprints = [f.strip().lower().replace(":", "") for f in tsa_certs or []]
    for fingerprint in fingerprints:
        if not re.fullmatch(r"[0-9a-f]{64}", fingerprint):
            fail(f"--tsa-cert {fingerprint!r}: a SHA-256 fingerprint is 64 hex digits", code=2)
    try:
        archive = zipfile.ZipFile(bundle)
    except (OSError, zipfile.BadZipFile) as exc:
        fail(f"{bundle}: not a readable zip bundle ({exc})", code=2)
    try:
        with (
            archive,
            Progress(
                TextColumn("verifying records"),
                BarColumn(),
                MofNCompleteColumn(),
                console=err,
                transient=True,
                disable=not err.is_terminal,
            ) as bar,
        ):
            task = bar.add_task("records", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            verdict = verify_bundle(
                _ZipBundle(archive),
                trusted=trusted,
                pinned=pinned,
                tsa_certificates=fingerprints,
                progress=progress,
            )
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError) as exc:
        fail(f"{bundle}: the bundle cannot be read ({type(exc).__name__}: {exc})", code=2)
    for warning in verdict.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if not verdict.ok:
        where = f"seq {verdict.first_bad_seq}: " if verdict.first_bad_seq is not None else ""
        fail(f"{bundle}: {where}{verdict.reason}")
    out.print(
        f"ok: {verdict.checked} records, {verdict.checkpoints} signed checkpoints, "
        f"{verdict.anchors} anchors, {verdict.timestamps} timestamps verified; "
        f"tree size {verdict.tree_size}, root {verdict.root}",
        highlight=False,
    )
    signers = sorted({(t.tsa_subject, t.certificate_sha256) for t in verdict.timestamp_info})
    for subject, fingerprint in signers:
        times = [t.gen_time for t in verdict.timestamp_info if t.certificate_sha256 == fingerprint]
        out.print(
            f"timestamps by {subject} (certificate sha256 {fingerprint}): "
            f"{min(times).isoformat()} to {max(times).isoformat()}",
            highlight=False,
            markup=False,
        )


class _ZipBundle:
    """A bundle read from its zip file."""

    def __init__(self, archive: Any) -> None:
        self.archive = archive

    def names(self) -> list[str]:
        return list(self.archive.namelist())

    def read(self, name: str) -> bytes:
        return bytes(self.archive.read(name))

    def lines(self, name: str) -> Any:
        with self.archive.open(name) as stream:
            yield from stream


@app.command()
def create(directory: Annotated[Path, typer.Argument(help="New project directory.")]) -> None:
    """Scaffold a runnable project."""
    from cfp.services.scaffold import scaffold

    if directory.exists() and any(directory.iterdir()):
        fail(f"{directory} exists and is not empty")
    scaffold(directory)
    out.print(f"created {directory}; run: cfp dev --project {directory}")


@app.command()
def install(project: ProjectOpt = None) -> None:
    """Install the project's requirements.txt into the environment that runs its steps."""
    if project is None or not project.is_dir():
        fail("--project DIR: a project directory is required")
    requirements = project / "requirements.txt"
    if not requirements.is_file():
        out.print(f"{requirements} not found; nothing to install")
        return
    pip = [sys.executable, "-m", "pip", "install", "-r", str(requirements)]
    if shutil.which("uv") and not (Path(sys.prefix) / "bin" / "pip").exists():
        pip = ["uv", "pip", "install", "--python", sys.executable, "-r", str(requirements)]
    code = subprocess.call(pip)
    if code:
        fail(f"installing {requirements} failed (exit {code})", code=code)
    out.print(f"installed {requirements}")


def main() -> None:
    try:
        app()
    except CfpError as exc:
        fail(exc.message, exc.details if isinstance(exc.details, list) else None)


if __name__ == "__main__":
    main()
