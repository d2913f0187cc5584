"""The project loader: imports a classic Motia 0.x Python project and validates all of it at once.

A project is a directory whose `steps/` and/or `src/` children hold `*_step.py` and
`*_stream.py` files. Each file is imported under a module name derived from its path relative to
the project root (`steps/sub/00-rbac-message_stream.py` -> `steps.sub.00-rbac-message_stream`),
so relative imports (`from .services.x import y`) and absolute ones (`from src.services.x import
y`, `from steps.services.x import y`) both work, and file names need not be identifiers.

Module names are process-global, so one process holds one project's code at a time: loading a
project (or reloading the same one after edits) first forgets the modules of the previous load.
StepDefs from an earlier load keep working; only imports their handlers make lazily would see the
new code. Loading mutates `sys.path`, `sys.modules` and `os.environ`: call it from one thread.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import re
import sys
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any

from dotenv import dotenv_values
from pydantic import ValidationError

from cfp.domain.cron import CronSpec, parse_cron
from cfp.domain.flows import build_flows, topic_warnings
from cfp.domain.routes import RoutePattern, compile_route
from cfp.domain.steps import (
    DEFAULT_CONCURRENCY,
    DEFAULT_HANDLER_TIMEOUT,
    STEP_CONFIG_MODELS,
    ApiStepConfig,
    ConfigKeyError,
    CronStepConfig,
    EmitSpec,
    EventStepConfig,
    QueueConfig,
    StepConfig,
    StreamConfig,
    parse_step_config,
    parse_stream_config,
    validation_problems,
)
from cfp.errors import ProjectInvalid

ApiHandler = Callable[[Any, Any], Awaitable[Any]]
"""`async def handler(req, context)` of an api step."""
EventHandler = Callable[[Any, Any], Awaitable[Any]]
"""`async def handler(input, context)` of an event step."""
CronHandler = Callable[[Any], Awaitable[Any]]
"""`async def handler(context)` of a cron step."""
Middleware = Callable[[Any, Any, Callable[[], Awaitable[Any]]], Awaitable[Any]]
"""`async def middleware(req, context, next)` around an api step's handler."""

SCAN_DIRS = ("steps", "src")
_HANDLER_PARAMS = {"api": "(req, context)", "event": "(input, context)", "cron": "(context)"}
_SKIP_DIRS = {"__pycache__", "node_modules"}


@dataclass
class StepDef:
    """A validated, imported step: its config plus everything the runtime needs, precomputed."""

    name: str
    type: str
    file: str
    config: StepConfig
    handler: Callable[..., Awaitable[Any]] | None
    middleware: list[Middleware]
    flows: list[str]
    emits: list[EmitSpec]
    subscribes: list[str]
    input_schema: dict | None
    body_schema: dict | None
    response_schemas: dict[int, dict]
    route: RoutePattern | None
    cron: CronSpec | None
    queue: QueueConfig
    timeout: float
    concurrency: int
    module: ModuleType
    description: str | None = None
    virtual_emits: list[EmitSpec] = field(default_factory=list)
    virtual_subscribes: list[str] = field(default_factory=list)
    source: Path | None = None  # absolute path of the file

    @property
    def emit_topics(self) -> set[str]:
        """Topics this step may emit for real (not virtual ones)."""
        return {e.topic for e in self.emits}


@dataclass
class StreamDef:
    """A validated, imported stream."""

    name: str
    file: str
    schema: dict | None
    can_access: Callable[[Any, Any], bool | Awaitable[bool]] | None
    config: StreamConfig
    module: ModuleType | None = None


@dataclass
class Project:
    """A loaded project: steps and streams by name, plus non-fatal warnings."""

    root: Path
    slug: str
    steps: dict[str, StepDef]
    streams: dict[str, StreamDef]
    warnings: list[dict] = field(default_factory=list)

    @cached_property
    def _by_topic(self) -> dict[str, list[StepDef]]:
        index: dict[str, list[StepDef]] = {}
        for step in self.event_steps:
            for topic in step.subscribes:
                index.setdefault(topic, []).append(step)
        return index

    def subscribers(self, topic: str) -> list[StepDef]:
        """Event steps subscribed to `topic` (virtual subscriptions excluded)."""
        return list(self._by_topic.get(topic, ()))

    @property
    def api_steps(self) -> list[StepDef]:
        """Steps of type api, in load order."""
        return [s for s in self.steps.values() if s.type == "api"]

    @property
    def event_steps(self) -> list[StepDef]:
        """Steps of type event, in load order."""
        return [s for s in self.steps.values() if s.type == "event"]

    @property
    def cron_steps(self) -> list[StepDef]:
        """Steps of type cron, in load order."""
        return [s for s in self.steps.values() if s.type == "cron"]

    @property
    def flows(self) -> dict[str, dict]:
        """The flow graphs of this project (see `cfp.domain.flows.build_flows`)."""
        return build_flows(self.steps.values())

    def match_route(self, method: str, path: str) -> tuple[StepDef, dict[str, str]] | None:
        """The api step serving `method path`, with its path parameters, or None."""
        for step in self.api_steps:
            if step.route is not None and step.route.method == method:
                params = step.route.match(path)
                if params is not None:
                    return step, params
        return None


class _Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, file: str, key: str | None, message: str) -> None:
        self.items.append({"file": file, "key": key, "message": message})

    def count(self, file: str) -> int:
        return sum(1 for p in self.items if p["file"] == file)


def slugify(name: str) -> str:
    """A lowercase, dash-separated slug of a folder name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "project"


def load_project(root: Path, *, slug: str | None = None) -> Project:
    """Import and validate a whole project; raise ProjectInvalid listing every problem."""
    root = Path(root).resolve()
    slug = slug or slugify(root.name)
    if not root.is_dir():
        raise ProjectInvalid(
            f"project {slug!r}: {root} is not a directory",
            details=[{"file": ".", "key": None, "message": f"{root} is not a directory"}],
        )
    scan = [root / d for d in SCAN_DIRS if (root / d).is_dir()]
    if not scan:
        message = "no steps/ or src/ directory"
        raise ProjectInvalid(
            f"project {slug!r}: {message} in {root}",
            details=[{"file": ".", "key": None, "message": message}],
        )

    _load_env(root)
    _forget_previous_load()
    _prepare_import_paths(root)
    importlib.invalidate_caches()
    before = set(sys.modules)

    problems = _Problems()
    warnings: list[dict] = []
    steps: list[StepDef] = []
    streams: list[StreamDef] = []
    for path in _find_files(scan):
        rel = path.relative_to(root).as_posix()
        module = _import_file(root, path, rel, problems)
        if module is None:
            continue
        if path.name.endswith("_step.py"):
            step = _build_step(path, rel, module, problems, warnings)
            if step is not None:
                steps.append(step)
        else:
            stream = _build_stream(rel, module, problems)
            if stream is not None:
                streams.append(stream)

    _remember_load(root, before)
    _check_duplicates(steps, streams, problems)
    if not steps and not streams and not problems.items:
        warnings.append({"file": ".", "key": None, "message": "no *_step.py or *_stream.py files"})
    warnings.extend(topic_warnings(steps))
    if problems.items:
        n = len(problems.items)
        lines = [f"project {slug!r} is invalid: {n} problem{'s' * (n != 1)}"]
        lines += [
            f"  {p['file']}{' ' + p['key'] if p['key'] else ''}: {p['message']}"
            for p in problems.items
        ]
        raise ProjectInvalid("\n".join(lines), details=problems.items)
    return Project(
        root=root,
        slug=slug,
        steps={s.name: s for s in steps},
        streams={s.name: s for s in streams},
        warnings=warnings,
    )


def _find_files(scan_dirs: list[Path]) -> list[Path]:
    found: list[Path] = []
    for top in scan_dirs:
        for dirpath, dirnames, filenames in os.walk(top):
            # Vendored and cache folders never hold steps; walking them is slow.
            dirnames[:] = sorted(
                d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".")
            )
            found.extend(
                Path(dirpath) / f
                for f in sorted(filenames)
                if f.endswith(("_step.py", "_stream.py"))
            )
    return found


# --- environment and import machinery -------------------------------------------------------

_dotenv_set: dict[str, str] = {}  # variables this loader put in os.environ, with their values
_loaded_modules: set[str] = set()  # module names the previous load imported
_added_paths: list[str] = []  # sys.path entries the previous load added
_pythonpath_added: list[str] = []  # PYTHONPATH entries the previous load added


def _load_env(root: Path) -> None:
    for key, value in dotenv_values(root / ".env").items():
        if value is None:
            continue
        # Never override the real environment, but a value we set from an earlier read of .env
        # may follow the file's edits on reload.
        if key not in os.environ or _dotenv_set.get(key) == os.environ[key]:
            os.environ[key] = value
            _dotenv_set[key] = value


def _forget_previous_load() -> None:
    stale = set(_loaded_modules)
    stale.update(
        name for name in sys.modules if name.partition(".")[0] in SCAN_DIRS
    )  # `steps.*`/`src.*` of any earlier project would shadow this one's
    for name in stale:
        sys.modules.pop(name, None)
    _loaded_modules.clear()
    for entry in _added_paths:
        while entry in sys.path:
            sys.path.remove(entry)
    _added_paths.clear()


def _prepare_import_paths(root: Path) -> None:
    root_s, parent_s = str(root), str(root.parent)
    if root_s not in sys.path:
        sys.path.insert(0, root_s)
        _added_paths.append(root_s)
    # The parent goes last: a sibling folder named like an installed package must not shadow it.
    if parent_s not in sys.path:
        sys.path.append(parent_s)
        _added_paths.append(parent_s)
    # Child processes (a step shelling out to `python -m ...`) import the same way.
    existing = [
        p
        for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if p and p not in (root_s, parent_s) and p not in _pythonpath_added
    ]
    _pythonpath_added[:] = [root_s, parent_s]
    os.environ["PYTHONPATH"] = os.pathsep.join([root_s, *existing, parent_s])


def _remember_load(root: Path, before: set[str]) -> None:
    for name in set(sys.modules) - before:
        module = sys.modules.get(name)
        if name.partition(".")[0] in SCAN_DIRS or _is_under(_origin(module), root):
            _loaded_modules.add(name)


def _origin(module: Any) -> str | None:
    try:
        namespace = vars(module)
    except TypeError:
        return None
    file = namespace.get("__file__")
    if file:
        return file
    paths = namespace.get("__path__")
    return next(iter(paths), None) if paths else None


def _is_under(path: str | None, root: Path) -> bool:
    return path is not None and Path(path).resolve().is_relative_to(root)


class _FreshSourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles from source every time: a cached .pyc keyed on (mtime in whole seconds, size)
    would hide an edit made in the same second as the previous load."""

    def get_code(self, fullname: str) -> Any:
        return self.source_to_code(self.get_data(self.path), self.path)


def _module_name(rel_parts: tuple[str, ...]) -> str:
    # A dot inside a folder or file name would read as a package boundary.
    return ".".join(part.replace(".", "_") for part in rel_parts)


def _import_file(root: Path, path: Path, rel: str, problems: _Problems) -> ModuleType | None:
    rel_parts = path.relative_to(root).with_suffix("").parts
    name = _module_name(rel_parts)
    package = _ensure_packages(root, rel_parts[:-1], problems)
    if package is None:
        problems.add(rel, None, "not loaded: a package above it failed to import")
        return None
    loader = _FreshSourceLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    setattr(package, name.rpartition(".")[2], module)
    try:
        loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        problems.add(rel, None, _import_error(exc, path))
        return None
    return module


def _ensure_packages(
    root: Path, dir_parts: tuple[str, ...], problems: _Problems
) -> ModuleType | None:
    """Register `steps`, `steps.sub`, ... as packages rooted in this project's folders."""
    parent: ModuleType | None = None
    for depth in range(1, len(dir_parts) + 1):
        name = _module_name(dir_parts[:depth])
        directory = root.joinpath(*dir_parts[:depth])
        module = sys.modules.get(name)
        if module is None or _origin(module) is None or not _is_under(_origin(module), directory):
            module = _new_package(name, directory, root, problems)
            if module is None:
                return None
        if parent is not None:
            setattr(parent, name.rpartition(".")[2], module)
        parent = module
    return parent


def _new_package(name: str, directory: Path, root: Path, problems: _Problems) -> ModuleType | None:
    init = directory / "__init__.py"
    if init.is_file():
        spec = importlib.util.spec_from_file_location(
            name, init, submodule_search_locations=[str(directory)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:
            sys.modules.pop(name, None)
            rel = init.relative_to(root).as_posix()
            if not problems.count(rel):
                problems.add(rel, None, _import_error(exc, init))
            return None
        return module
    # A folder without __init__.py is a namespace package, as Python would make it, but rooted
    # in this project only rather than in every `steps/` folder on sys.path.
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(directory)]
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    return module


def _import_error(exc: BaseException, path: Path) -> str:
    where = ""
    if isinstance(exc, SyntaxError) and exc.lineno:
        where = f" (line {exc.lineno})"
    else:
        lines = [
            f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)
        ]
        if lines:
            where = f" (line {lines[-1]})"
    detail = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    return f"import failed{where}: {type(exc).__name__}: {detail}"


# --- building and checking definitions ------------------------------------------------------


def _build_step(
    path: Path, rel: str, module: ModuleType, problems: _Problems, warnings: list[dict]
) -> StepDef | None:
    before = problems.count(rel)
    namespace = vars(module)
    raw = namespace.get("config")
    handler = namespace.get("handler")
    if raw is None:
        problems.add(rel, "config", "no module-level `config` dict")
        return None
    kind = raw.get("type") if isinstance(raw, dict) else None
    _check_handler(kind, handler, rel, problems, warnings)
    config = None
    try:
        config = parse_step_config(raw)
    except ConfigKeyError as exc:
        problems.add(rel, exc.key, str(exc))
    except ValidationError as exc:
        model = STEP_CONFIG_MODELS[kind]
        for p in validation_problems(exc, model):
            problems.add(rel, p["key"], p["message"])
    if config is None or problems.count(rel) > before:
        return None

    emits = list(getattr(config, "emits", []))
    queue = QueueConfig()
    timeout = DEFAULT_HANDLER_TIMEOUT
    if isinstance(config, EventStepConfig):
        queue = config.infrastructure.queue
        timeout = config.infrastructure.handler.timeout or DEFAULT_HANDLER_TIMEOUT
    options = getattr(config, "cfp", None)
    return StepDef(
        name=config.name,
        type=config.type,
        file=rel,
        config=config,
        handler=handler if config.type != "noop" else None,
        middleware=list(getattr(config, "middleware", [])),
        flows=list(config.flows),
        emits=emits,
        subscribes=list(getattr(config, "subscribes", [])),
        input_schema=getattr(config, "input", None),
        body_schema=getattr(config, "bodySchema", None),
        response_schemas=dict(getattr(config, "responseSchema", {})),
        route=(
            compile_route(config.method, config.path) if isinstance(config, ApiStepConfig) else None
        ),
        cron=parse_cron(config.cron) if isinstance(config, CronStepConfig) else None,
        queue=queue,
        timeout=timeout,
        concurrency=(options.concurrency if options else None) or DEFAULT_CONCURRENCY,
        module=module,
        description=config.description,
        virtual_emits=list(getattr(config, "virtualEmits", [])),
        virtual_subscribes=list(getattr(config, "virtualSubscribes", [])),
        source=path,
    )


def _check_handler(
    kind: Any, handler: Any, rel: str, problems: _Problems, warnings: list[dict]
) -> None:
    if kind == "noop":
        if handler is not None:
            warnings.append(
                {
                    "file": rel,
                    "key": "handler",
                    "message": "noop steps are never called; this handler is ignored",
                }
            )
        return
    params = _HANDLER_PARAMS.get(kind) if isinstance(kind, str) else None
    if params is None:
        return  # the type itself is reported by config validation
    if handler is None:
        problems.add(rel, "handler", f"missing `async def handler{params}`")
    elif not inspect.iscoroutinefunction(handler):
        problems.add(rel, "handler", f"handler must be declared `async def handler{params}`")
    elif not _accepts(handler, params.count(",") + 1):
        problems.add(rel, "handler", f"handler must accept {params}")


def _accepts(func: Callable[..., Any], n_args: int) -> bool:
    try:
        inspect.signature(func).bind(*range(n_args))
    except TypeError:
        return False
    except ValueError:  # no introspectable signature: trust it
        return True
    return True


def _build_stream(rel: str, module: ModuleType, problems: _Problems) -> StreamDef | None:
    raw = vars(module).get("config")
    if raw is None:
        problems.add(rel, "config", "no module-level `config` dict")
        return None
    try:
        config = parse_stream_config(raw)
    except ConfigKeyError as exc:
        problems.add(rel, exc.key, str(exc))
        return None
    except ValidationError as exc:
        for p in validation_problems(exc, StreamConfig):
            problems.add(rel, p["key"], p["message"])
        return None
    if config.canAccess is not None and not _accepts(config.canAccess, 2):
        problems.add(rel, "config.canAccess", "canAccess must accept (subscription, auth_context)")
        return None
    return StreamDef(
        name=config.name,
        file=rel,
        schema=config.schema_,
        can_access=config.canAccess,
        config=config,
        module=module,
    )


def _check_duplicates(steps: list[StepDef], streams: list[StreamDef], problems: _Problems) -> None:
    names: dict[str, str] = {}
    routes: dict[str, StepDef] = {}
    for step in steps:
        if step.name in names:
            problems.add(
                step.file,
                "config.name",
                f"step name {step.name!r} is already used by {names[step.name]}",
            )
        else:
            names[step.name] = step.file
        if step.route is not None:
            first = routes.setdefault(step.route.shape, step)
            if first is not step:
                problems.add(
                    step.file,
                    "config.path",
                    f"route {step.route.method} {step.route.path} is already served by "
                    f"{first.file} ({first.route.method} {first.route.path})",
                )
    stream_names: dict[str, str] = {}
    for stream in streams:
        first_file = stream_names.setdefault(stream.name, stream.file)
        if first_file != stream.file:
            problems.add(
                stream.file,
                "config.name",
                f"stream name {stream.name!r} is already used by {first_file}",
            )
