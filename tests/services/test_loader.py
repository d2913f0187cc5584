import os
import shutil
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cfp.domain.steps import DEFAULT_CONCURRENCY, DEFAULT_HANDLER_TIMEOUT, EmitSpec, QueueConfig
from cfp.errors import ProjectInvalid
from cfp.services.loader import load_project

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "projects"


@pytest.fixture(autouse=True)
def isolated_imports():
    """Undo what loading does to the interpreter: sys.path, project modules, the environment."""
    path, env = list(sys.path), dict(os.environ)
    yield
    sys.path[:] = path
    os.environ.clear()
    os.environ.update(env)
    for name in [n for n in sys.modules if n.partition(".")[0] in ("steps", "src")]:
        del sys.modules[name]


@pytest.fixture
def copy_fixture(tmp_path):
    """Copy a fixture project into tmp_path so tests may edit it and leave no bytecode behind."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(FIXTURES / name, target)
        return target

    return copy


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def load_problems(root: Path) -> list[dict]:
    with pytest.raises(ProjectInvalid) as info:
        load_project(root)
    return info.value.details


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


# --- a valid project --------------------------------------------------------------------------


def test_valid_project_loads_every_step_and_stream(copy_fixture):
    project = load_project(copy_fixture("valid"))

    assert project.slug == "valid"
    assert project.warnings == []
    assert set(project.steps) == {
        "CreateOrder",
        "GetOrder",
        "ProcessOrder",
        "Notify",
        "NightlyReport",
        "HumanReview",
    }
    assert [s.name for s in project.api_steps] == ["CreateOrder", "GetOrder"]
    assert [s.name for s in project.event_steps] == ["Notify", "ProcessOrder"]
    assert [s.name for s in project.cron_steps] == ["NightlyReport"]
    assert project.steps["CreateOrder"].file == "steps/api/create_order_step.py"
    assert list(project.streams) == ["orders"]
    assert project.streams["orders"].file == "steps/orders_stream.py"
    assert project.streams["orders"].schema == {
        "type": "object",
        "properties": {"status": {"type": "string"}},
    }
    assert project.streams["orders"].can_access is None


def test_api_step_definition(copy_fixture):
    step = load_project(copy_fixture("valid")).steps["CreateOrder"]

    assert step.type == "api"
    assert step.route.method == "POST" and step.route.starlette_path == "/orders"
    assert step.body_schema["required"] == ["item", "quantity"]  # from the pydantic model
    assert set(step.response_schemas) == {201, 400}
    assert [m.__name__ for m in step.middleware] == ["require_json"]
    assert step.emits == [EmitSpec(topic="order.created")]
    assert step.subscribes == [] and step.input_schema is None and step.cron is None
    assert step.timeout == DEFAULT_HANDLER_TIMEOUT and step.concurrency == DEFAULT_CONCURRENCY
    assert step.queue == QueueConfig()
    assert step.description == "Accept an order"
    assert step.module.__name__ == "steps.api.create_order_step"
    assert step.handler is step.module.handler
    assert step.source.is_absolute() and step.source.name == "create_order_step.py"


def test_event_step_definition(copy_fixture):
    step = load_project(copy_fixture("valid")).steps["ProcessOrder"]

    assert step.subscribes == ["order.created"]
    assert step.virtual_subscribes == ["order.reviewed"]
    assert step.emits[1] == EmitSpec(topic="order.failed", label="out of stock", conditional=True)
    assert step.input_schema["required"] == ["item", "quantity"]
    assert step.queue == QueueConfig(
        type="fifo", maxRetries=2, visibilityTimeout=60, delaySeconds=1.5
    )
    assert step.timeout == 5.0
    assert step.concurrency == 4
    assert step.route is None


def test_cron_and_noop_definitions(copy_fixture):
    project = load_project(copy_fixture("valid"))
    cron, noop = project.steps["NightlyReport"], project.steps["HumanReview"]

    assert cron.cron.next_after(ts(2024, 5, 1, 3, 0)) == ts(2024, 5, 2, 2, 30)
    assert noop.handler is None
    assert noop.virtual_emits == [EmitSpec(topic="order.reviewed", label="approved")]


def test_subscribers_and_routes(copy_fixture):
    project = load_project(copy_fixture("valid"))

    assert [s.name for s in project.subscribers("order.created")] == ["ProcessOrder"]
    assert [s.name for s in project.subscribers("order.failed")] == ["Notify"]  # not the noop
    assert project.subscribers("order.reviewed") == []  # virtual subscriptions never deliver
    assert project.subscribers("nothing") == []
    step, params = project.match_route("GET", "/orders/o-1")
    assert (step.name, params) == ("GetOrder", {"orderId": "o-1"})
    assert project.match_route("DELETE", "/orders/o-1") is None


def test_flows_of_a_loaded_project(copy_fixture):
    flows = load_project(copy_fixture("valid")).flows

    assert set(flows) == {"orders", "reports"}
    orders = {
        (e["source"], e["target"], e["topic"], e["virtual"]) for e in flows["orders"]["edges"]
    }
    assert orders == {
        ("CreateOrder", "ProcessOrder", "order.created", False),
        ("ProcessOrder", "Notify", "order.processed", False),
        ("ProcessOrder", "Notify", "order.failed", False),
        ("ProcessOrder", "HumanReview", "order.failed", True),
        ("HumanReview", "ProcessOrder", "order.reviewed", True),
    }
    assert [n["id"] for n in flows["reports"]["nodes"]] == ["NightlyReport", "Notify"]


async def test_loaded_handlers_run(copy_fixture):
    project = load_project(copy_fixture("valid"))
    emitted = []

    class Context:
        async def emit(self, event):
            emitted.append(event)

    result = await project.steps["CreateOrder"].handler({"body": {"item": "a"}}, Context())

    assert result == {"status": 201, "body": {"id": "o1"}}
    assert emitted == [{"topic": "order.created", "data": {"item": "a"}}]


def test_slug_defaults_to_the_slugified_folder_name(tmp_path):
    root = write(
        tmp_path / "My Shop_v2", {"steps/a_step.py": "config = {'type': 'noop', 'name': 'A'}\n"}
    )

    assert load_project(root).slug == "my-shop-v2"
    assert load_project(root, slug="shop").slug == "shop"


# --- a classic Motia project, unchanged -------------------------------------------------------


def test_motia_style_project_loads(copy_fixture):
    project = load_project(copy_fixture("motia_style"))

    assert project.warnings == []
    assert set(project.steps) == {
        "CreatePet",
        "ProcessFoodOrder",
        "StateAuditJob",
        "Notification",
        "SendMessage",
        "HumanModerator",
        "DailyReport",
    }
    assert project.steps["DailyReport"].file == "src/reports/daily_report_step.py"
    assert project.steps["SendMessage"].file == "steps/chat/01-send-message_step.py"
    assert list(project.streams) == ["rbacMessage"]


def test_odd_file_names_import_under_their_path(copy_fixture):
    project = load_project(copy_fixture("motia_style"))
    stream = project.streams["rbacMessage"]

    assert stream.file == "steps/chat/00-rbac-message_stream.py"
    assert stream.module.__name__ == "steps.chat.00-rbac-message_stream"
    assert stream.module.__package__ == "steps.chat"
    assert sys.modules["steps.chat.00-rbac-message_stream"] is stream.module
    assert project.steps["SendMessage"].module.__name__ == "steps.chat.01-send-message_step"


def test_relative_and_absolute_imports_resolve_to_one_module(copy_fixture):
    project = load_project(copy_fixture("motia_style"))
    pet_store = sys.modules["steps.services.pet_store"]
    inventory = sys.modules["src.services.inventory"]

    # `from ..services.pet_store`, `from .services.pet_store` and `from steps.services.pet_store`
    assert project.steps["CreatePet"].module.create_pet is pet_store.create_pet
    assert project.steps["Notification"].module.greeting is pet_store.greeting
    assert project.steps["StateAuditJob"].module.greeting is pet_store.greeting
    # `from src.services.inventory` (absolute) and `from ..services.inventory` (inside src/)
    assert project.steps["ProcessFoodOrder"].module.reserve is inventory.reserve
    assert project.steps["DailyReport"].module.stock_level is inventory.stock_level


def test_pydantic_schemas_and_motia_options(copy_fixture):
    project = load_project(copy_fixture("motia_style"))
    create, process = project.steps["CreatePet"], project.steps["ProcessFoodOrder"]

    assert set(create.body_schema["required"]) == {"name", "photoUrl"}  # a model class
    assert set(create.response_schemas) == {200, 400}
    assert create.response_schemas[200]["title"] == "Pet"
    assert set(process.input_schema["properties"]) == {"id", "quantity", "petId"}
    assert process.emits == [EmitSpec(topic="notification", label="Order placed", conditional=True)]
    assert (process.timeout, process.queue.maxRetries) == (10.0, 5)
    assert project.streams["rbacMessage"].schema["title"] == "Message"


def test_six_field_cron_of_a_motia_project(copy_fixture):
    cron = load_project(copy_fixture("motia_style")).steps["StateAuditJob"].cron

    assert cron.next_after(ts(2024, 1, 1, 10, 1, 30)) == ts(2024, 1, 1, 10, 5, 0)


async def test_async_can_access(copy_fixture):
    can_access = load_project(copy_fixture("motia_style")).streams["rbacMessage"].can_access

    assert await can_access({"groupId": "r1"}, {"rooms": ["r1"]}) is True
    assert await can_access({"groupId": "r2"}, {"rooms": ["r1"]}) is False


async def test_motia_handlers_run_with_their_imports(copy_fixture):
    project = load_project(copy_fixture("motia_style"))
    logged, emitted = [], []

    class Logger:
        def info(self, message, extra=None):
            logged.append(message)

    class Context:
        logger = Logger()

        async def emit(self, event):
            emitted.append(event["topic"])

    req = {"body": {"name": "Rex", "photoUrl": "http://x/rex.png"}}
    result = await project.steps["CreatePet"].handler(req, Context())
    await project.steps["Notification"].handler({"orderId": "o1"}, Context())

    assert result["body"]["name"] == "Rex"
    assert emitted == ["process-food-order"]
    assert logged[-1] == "hello from .env"


def test_env_file_fills_but_never_overrides(copy_fixture, monkeypatch):
    monkeypatch.setenv("MOTIA_STYLE_PRESET", "from the shell")
    monkeypatch.delenv("MOTIA_STYLE_GREETING", raising=False)

    load_project(copy_fixture("motia_style"))

    assert os.environ["MOTIA_STYLE_GREETING"] == "hello from .env"
    assert os.environ["MOTIA_STYLE_PRESET"] == "from the shell"


def test_project_root_and_parent_are_importable(copy_fixture):
    root = copy_fixture("motia_style")

    load_project(root)

    assert sys.path[0] == str(root)
    assert str(root.parent) in sys.path
    assert os.environ["PYTHONPATH"].split(os.pathsep)[0] == str(root)
    assert str(root.parent) in os.environ["PYTHONPATH"].split(os.pathsep)


# --- reloading --------------------------------------------------------------------------------


def test_reload_sees_edited_added_and_removed_files(copy_fixture):
    root = copy_fixture("motia_style")
    first = load_project(root)

    step = root / "steps/notification_step.py"
    step.write_text(step.read_text().replace('"Checks a state change"', '"Edited"'))
    helper = root / "steps/services/pet_store.py"
    helper.write_text(helper.read_text() + "\n\ndef added() -> int:\n    return 2\n")
    os.utime(helper, (1, 1))  # an mtime unlike the cached bytecode's, whatever the clock says
    (root / "steps/chat/human_moderator_step.py").unlink()
    write(
        root,
        {
            "steps/extra_step.py": """
        from .services.pet_store import added

        config = {"type": "event", "name": "Extra", "subscribes": ["notification"]}


        async def handler(input, context):
            return added()
        """
        },
    )
    second = load_project(root)

    assert second.steps["Notification"].description == "Edited"
    assert first.steps["Notification"].description == "Checks a state change"
    assert "HumanModerator" not in second.steps
    assert second.steps["Extra"].module.added() == 2
    assert second.steps["Notification"].module is not first.steps["Notification"].module
    assert sys.modules["steps.notification_step"] is second.steps["Notification"].module


def test_same_second_edit_of_a_step_file_is_seen(copy_fixture, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as on a developer's machine
    root = copy_fixture("valid")
    step = root / "steps/events/notify_step.py"
    load_project(root)
    stat = step.stat()

    step.write_text(step.read_text().replace('"Notify"', '"Notifz"'))  # same size
    os.utime(step, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    assert "Notifz" in load_project(root).steps


def test_another_projects_modules_do_not_leak(tmp_path):
    helper = "def value():\n    return {!r}\n"
    step = """
        from .lib.helper import value

        config = {"type": "noop", "name": "N"}
        VALUE = value()
        """
    a = write(tmp_path / "a", {"steps/lib/helper.py": helper.format("a"), "steps/n_step.py": step})
    b = write(tmp_path / "b", {"steps/lib/helper.py": helper.format("b"), "steps/n_step.py": step})

    assert load_project(a).steps["N"].module.VALUE == "a"
    assert load_project(b).steps["N"].module.VALUE == "b"
    assert str(a) not in sys.path


# --- an invalid project: every problem at once ------------------------------------------------


def test_invalid_project_reports_every_problem(copy_fixture):
    with pytest.raises(ProjectInvalid) as info:
        load_project(copy_fixture("invalid_config"))
    details = info.value.details
    found = {(p["file"], p["key"]) for p in details}

    assert {
        ("steps/typo_step.py", "config.subscribe"),
        ("steps/typo_step.py", "config.subscribes"),
        ("steps/bad_cron_step.py", "config.cron"),
        ("steps/bad_schema_step.py", "config.input"),
        ("steps/sync_handler_step.py", "handler"),
        ("steps/no_handler_step.py", "handler"),
        ("steps/wrong_types_step.py", "config.flows"),
        ("steps/wrong_types_step.py", "config.infrastructure.queue.maxRetries"),
        ("steps/wrong_types_step.py", "config.infrastructure.queue.type"),
        ("steps/bad_path_step.py", "config.path"),
        ("steps/bad_path_step.py", "config.method"),
        ("steps/broken_stream.py", "config.storage"),
        ("steps/broken_stream.py", "config.baseConfig"),
    } == found
    assert info.value.message.startswith(
        f"project 'invalid-config' is invalid: {len(details)} problems"
    )
    assert "steps/bad_cron_step.py config.cron: invalid cron expression" in info.value.message
    assert info.value.status == 422 and info.value.code == "project_invalid"
    assert all(set(p) == {"file", "key", "message"} for p in details)


NOOP = "config = {'type': 'noop', 'name': 'Fine'}\n"


@pytest.mark.parametrize(
    ("source", "key", "message"),
    [
        (
            "config = {'type': 'event', 'name': 'X', 'subscribes': ['a'], 'retries': 3}\n"
            "async def handler(input, context): pass\n",
            "config.retries",
            "unknown key 'retries'",
        ),
        (
            "config = {'type': 'event', 'name': 'X', 'subscribes': 'a'}\n"
            "async def handler(input, context): pass\n",
            "config.subscribes",
            "valid list",
        ),
        (
            "config = {'type': 'cron', 'name': 'X', 'cron': '* * *'}\n"
            "async def handler(context): pass\n",
            "config.cron",
            "has 3 fields",
        ),
        (
            "config = {'type': 'api', 'name': 'X', 'path': '/x', 'method': 'POST',\n"
            "          'bodySchema': {'type': 'object', 'required': 'name'}}\n"
            "async def handler(req, context): pass\n",
            "config.bodySchema",
            "invalid JSON Schema at /required",
        ),
        (
            "config = {'type': 'event', 'name': 'X', 'subscribes': ['a']}\n",
            "handler",
            "missing `async def handler(input, context)`",
        ),
        (
            "config = {'type': 'cron', 'name': 'X', 'cron': '* * * * *'}\n"
            "def handler(context): pass\n",
            "handler",
            "must be declared `async def handler(context)`",
        ),
        (
            "config = {'type': 'api', 'name': 'X', 'path': '/x', 'method': 'GET'}\n"
            "async def handler(req): pass\n",
            "handler",
            "must accept (req, context)",
        ),
        (
            "config = {'type': 'api', 'name': 'X', 'path': '/x', 'method': 'GET'}\n"
            "handler = 'not a function'\n",
            "handler",
            "must be declared `async def",
        ),
        ("config = {'type': 'trigger', 'name': 'X'}\n", "config.type", "must be one of"),
        ("config = ['type', 'api']\n", "config", "config must be a dict"),
        ("handler = None\n", "config", "no module-level `config` dict"),
    ],
)
def test_each_kind_of_step_problem_names_its_file(tmp_path, source, key, message):
    root = write(tmp_path / "p", {"steps/ok_step.py": NOOP, "steps/sub/bad_step.py": source})

    problems = load_problems(root)

    assert [(p["file"], p["key"]) for p in problems] == [("steps/sub/bad_step.py", key)]
    assert message in problems[0]["message"]


@pytest.mark.parametrize(
    ("source", "key", "message"),
    [
        ("config = {'name': 's', 'schema': {}}\n", "config.baseConfig", "required key is missing"),
        (
            "config = {'name': 's', 'schema': {'type': 5},\n"
            "          'baseConfig': {'storageType': 'default'}}\n",
            "config.schema",
            "invalid JSON Schema",
        ),
        (
            "def can(sub): return True\n"
            "config = {'name': 's', 'schema': {}, 'baseConfig': {'storageType': 'default'},\n"
            "          'canAccess': can}\n",
            "config.canAccess",
            "must accept (subscription, auth_context)",
        ),
        ("schema = {}\n", "config", "no module-level `config` dict"),
    ],
)
def test_each_kind_of_stream_problem_names_its_file(tmp_path, source, key, message):
    root = write(tmp_path / "p", {"steps/ok_step.py": NOOP, "steps/chat_stream.py": source})

    [problem] = load_problems(root)

    assert (problem["file"], problem["key"]) == ("steps/chat_stream.py", key)
    assert message in problem["message"]


def test_sync_can_access_is_allowed(tmp_path):
    root = write(
        tmp_path / "p",
        {
            "steps/chat_stream.py": """
        def can_access(subscription, auth_context):
            return auth_context.get("admin", False)

        config = {"name": "chat", "schema": {}, "baseConfig": {"storageType": "default"},
                  "canAccess": can_access}
        """
        },
    )

    assert load_project(root).streams["chat"].can_access(None, {"admin": True}) is True


def test_import_failures_are_problems_of_their_own_files(tmp_path):
    root = write(
        tmp_path / "p",
        {
            "steps/ok_step.py": NOOP,
            "steps/syntax_step.py": "config = {\n    'type': 'noop',\n    'name' 'X'\n",
            "steps/missing_dep_step.py": "import not_a_real_module_xyz\n",
            "steps/raises_step.py": "x = 1\nraise RuntimeError('database unreachable')\n",
            "steps/exits_step.py": "import sys\nsys.exit(3)\n",
            "steps/relative_step.py": "from .nowhere import thing\n",
            "steps/typo_step.py": "config = {'type': 'noop', 'nam': 'T'}\n",
        },
    )

    problems = {p["file"]: p for p in load_problems(root)}

    assert set(problems) == {
        "steps/syntax_step.py",
        "steps/missing_dep_step.py",
        "steps/raises_step.py",
        "steps/exits_step.py",
        "steps/relative_step.py",
        "steps/typo_step.py",
    }
    assert problems["steps/syntax_step.py"]["message"].startswith("import failed (line ")
    assert "SyntaxError" in problems["steps/syntax_step.py"]["message"]
    assert (
        "No module named 'not_a_real_module_xyz'"
        in problems["steps/missing_dep_step.py"]["message"]
    )
    assert problems["steps/raises_step.py"]["message"] == (
        "import failed (line 2): RuntimeError: database unreachable"
    )
    assert "SystemExit: 3" in problems["steps/exits_step.py"]["message"]
    assert "steps.nowhere" in problems["steps/relative_step.py"]["message"]
    assert problems["steps/typo_step.py"]["key"] in {"config.nam", "config.name"}
    assert "steps.raises_step" not in sys.modules


def test_a_failing_package_init_is_reported_once(tmp_path):
    root = write(
        tmp_path / "p",
        {
            "steps/ok_step.py": NOOP,
            "steps/broken/__init__.py": "raise ImportError('half-installed')\n",
            "steps/broken/one_step.py": NOOP,
            "steps/broken/two_step.py": NOOP,
        },
    )

    problems = load_problems(root)

    assert [(p["file"], p["key"]) for p in problems] == [
        ("steps/broken/__init__.py", None),
        ("steps/broken/one_step.py", None),
        ("steps/broken/two_step.py", None),
    ]
    assert "ImportError: half-installed" in problems[0]["message"]
    assert "package above it failed" in problems[1]["message"]


def test_duplicates_are_problems_of_the_later_files(copy_fixture):
    problems = load_problems(copy_fixture("duplicates"))

    assert [(p["file"], p["key"]) for p in problems] == [
        ("steps/b/get_user_step.py", "config.name"),
        ("steps/b/get_user_step.py", "config.path"),
        ("steps/b/users_stream.py", "config.name"),
    ]
    assert "'GetUser' is already used by steps/a/get_user_step.py" in problems[0]["message"]
    assert (
        "GET /users/:userId/ is already served by steps/a/get_user_step.py (GET /users/:id)"
        in (problems[1]["message"])
    )
    assert "'users' is already used by steps/a/users_stream.py" in problems[2]["message"]


def test_same_path_with_another_method_is_not_a_duplicate(tmp_path):
    root = write(
        tmp_path / "p",
        {
            f"steps/{m.lower()}_step.py": f"""
        config = {{"type": "api", "name": "{m}", "path": "/items/:id", "method": "{m}"}}
        async def handler(req, context): pass
        """
            for m in ("GET", "PUT", "DELETE")
        },
    )

    assert len(load_project(root).api_steps) == 3


# --- warnings ---------------------------------------------------------------------------------


def test_dangling_topics_and_noop_handlers_are_warnings(copy_fixture):
    project = load_project(copy_fixture("warnings"))

    assert set(project.steps) == {"Start", "Work", "Person"}
    assert project.steps["Person"].handler is None
    assert [(w["file"], w["key"], w["message"]) for w in project.warnings] == [
        ("src/person_step.py", "handler", "noop steps are never called; this handler is ignored"),
        (
            "src/start_step.py",
            "config.emits",
            "topic 'nobody.listens' is emitted but no step subscribes to it",
        ),
        (
            "src/start_step.py",
            "config.virtualEmits",
            "topic 'virtual.nobody' is emitted but no step subscribes to it",
        ),
        (
            "src/work_step.py",
            "config.subscribes",
            "topic 'never.emitted' is subscribed to but no step emits it",
        ),
        (
            "src/work_step.py",
            "config.virtualSubscribes",
            "topic 'virtual.never' is subscribed to but no step emits it",
        ),
    ]


# --- project layout ---------------------------------------------------------------------------


def test_both_steps_and_src_are_scanned_and_other_files_ignored(tmp_path):
    root = write(
        tmp_path / "p",
        {
            "steps/a_step.py": "config = {'type': 'noop', 'name': 'A'}\n",
            "src/deep/er/b_step.py": "config = {'type': 'noop', 'name': 'B'}\n",
            "steps/helper.py": "raise RuntimeError('not a step: never imported')\n",
            "steps/node_modules/x_step.py": "raise RuntimeError('vendored')\n",
            "steps/.hidden/y_step.py": "raise RuntimeError('hidden')\n",
            "lib/c_step.py": "raise RuntimeError('outside steps/ and src/')\n",
        },
    )

    project = load_project(root)

    assert {s.file for s in project.steps.values()} == {"steps/a_step.py", "src/deep/er/b_step.py"}


def test_project_without_steps_or_src_is_invalid(tmp_path):
    (tmp_path / "lib").mkdir()

    [problem] = load_problems(tmp_path)

    assert problem == {"file": ".", "key": None, "message": "no steps/ or src/ directory"}


def test_missing_root_is_invalid(tmp_path):
    [problem] = load_problems(tmp_path / "nope")

    assert "is not a directory" in problem["message"]


def test_empty_project_loads_with_a_warning(tmp_path):
    (tmp_path / "steps").mkdir()

    project = load_project(tmp_path)

    assert project.steps == {} and project.streams == {}
    assert project.warnings == [
        {"file": ".", "key": None, "message": "no *_step.py or *_stream.py files"}
    ]
