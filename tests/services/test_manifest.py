"""`cfp build`'s manifest and `cfp generate openapi`'s document, from real loaded projects."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from cfp.services.loader import Project, load_project
from cfp.services.manifest import manifest, openapi, pubsub_name
from hypothesis import given
from hypothesis import strategies as st
from openapi_spec_validator import validate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "projects"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "orders"
PUBSUB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$")


@pytest.fixture(autouse=True)
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a project edits sys.path and PYTHONPATH; give them back afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))


def load_copy(tmp_path: Path, source: Path) -> Project:
    """Load a copy, so loading leaves no bytecode in the repository's fixtures."""
    target = tmp_path / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return load_project(target)


def write_project(root: Path, files: dict[str, str]) -> Project:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return load_project(root)


# -- manifest -------------------------------------------------------------------------------


def test_manifest_of_the_valid_fixture(tmp_path):
    project = load_copy(tmp_path, FIXTURES / "valid")

    doc = manifest(project)

    assert doc["version"] == 1
    assert doc["project"] == {"slug": "valid", "root": str(tmp_path / "valid")}
    steps = {s["name"]: s for s in doc["steps"]}
    assert [s["name"] for s in doc["steps"]] == sorted(steps)
    assert steps["CreateOrder"] == {
        "name": "CreateOrder",
        "type": "api",
        "target": "step_api",
        "file": "steps/api/create_order_step.py",
        "flows": ["orders"],
        "trigger": {"type": "http", "method": "POST", "path": "/orders"},
        "emits": ["order.created"],
        "queue": None,
        "timeout": 30.0,
        "concurrency": 10,
    }
    assert steps["ProcessOrder"] == {
        "name": "ProcessOrder",
        "type": "event",
        "target": "step_event",
        "file": "steps/events/process_order_step.py",
        "flows": ["orders"],
        "trigger": {"type": "topic", "topics": ["order.created"]},
        "emits": ["order.failed", "order.processed"],
        "queue": {"type": "fifo", "maxRetries": 2, "visibilityTimeout": 60, "delaySeconds": 1.5},
        "timeout": 5,
        "concurrency": 4,
    }
    assert steps["NightlyReport"]["trigger"] == {"type": "schedule", "cron": "30 2 * * *"}
    assert steps["NightlyReport"]["target"] == "step_cron"
    assert steps["HumanReview"]["trigger"] == {"type": "none"}
    assert steps["HumanReview"]["target"] is None
    assert steps["Notify"]["trigger"]["topics"] == [
        "order.failed",
        "order.processed",
        "report.requested",
    ]

    # Every topic emitted or subscribed, virtual ones (the noop's) included.
    assert doc["topics"] == [
        "order.created",
        "order.failed",
        "order.processed",
        "order.reviewed",
        "report.requested",
    ]
    assert doc["subscriptions"] == [
        {
            "name": f"cfp.local.valid.dev~Notify~{topic}",
            "topic": topic,
            "topic_id": f"cfp.local.valid.dev~{topic}",
            "step": "Notify",
            "fifo": False,
            "maxRetries": 3,
            "dead_letter_topic": "cfp.local.valid.dev~dlq~Notify",
        }
        for topic in ("order.failed", "order.processed", "report.requested")
    ] + [
        {
            "name": "cfp.local.valid.dev~ProcessOrder~order.created",
            "topic": "order.created",
            "topic_id": "cfp.local.valid.dev~order.created",
            "step": "ProcessOrder",
            "fifo": True,
            "maxRetries": 2,
            "dead_letter_topic": "cfp.local.valid.dev~dlq~ProcessOrder",
        }
    ]
    assert doc["schedules"] == [
        {
            "step": "NightlyReport",
            "cron": "30 2 * * *",
            "timezone": "UTC",
            "job": {
                "name": "cfp-local-valid-dev-NightlyReport",
                "schedule": "30 2 * * *",
                "time_zone": "Etc/UTC",
                "target": "step_cron",
                "http_method": "POST",
                "headers": {"content-type": "application/json"},
                "body": "",
                "retry_config": {"retry_count": 0},
                "attempt_deadline": "180s",
            },
        }
    ]
    assert doc["streams"] == [
        {"name": "orders", "file": "steps/orders_stream.py", "has_can_access": False}
    ]


def test_manifest_streams_report_can_access(tmp_path):
    project = load_copy(tmp_path, FIXTURES / "motia_style")

    streams = {s["name"]: s for s in manifest(project)["streams"]}

    assert streams["rbacMessage"]["has_can_access"] is True


def test_manifest_is_deterministic_and_json(tmp_path):
    first = json.dumps(manifest(load_copy(tmp_path / "a", EXAMPLE)), sort_keys=False)
    second = json.dumps(manifest(load_copy(tmp_path / "b", EXAMPLE)), sort_keys=False)

    assert first.replace(str(tmp_path / "a"), "") == second.replace(str(tmp_path / "b"), "")
    doc = json.loads(first)
    for key in ("topics",):
        assert doc[key] == sorted(doc[key])
    assert [s["name"] for s in doc["steps"]] == sorted(s["name"] for s in doc["steps"])
    assert doc["subscriptions"] == sorted(
        doc["subscriptions"], key=lambda s: (s["step"], s["topic"])
    )


def test_manifest_names_are_valid_pubsub_ids(tmp_path):
    project = write_project(
        tmp_path / "9 lives",
        {
            "steps/odd_step.py": """
                config = {"type": "event", "name": "Odd step/1", "subscribes": ["a topic!"],
                          "flows": ["f"]}

                async def handler(input, context):
                    pass
            """,
        },
    )

    doc = manifest(project)

    [sub] = doc["subscriptions"]
    assert project.slug == "9-lives"
    assert PUBSUB_NAME.match(sub["name"]) and PUBSUB_NAME.match(sub["dead_letter_topic"])
    assert sub["name"].startswith("cfp.local.9-lives.dev~Odd-step-1~a-topic-")
    assert sub["topic_id"] == doc["pubsub_topics"]["a topic!"]
    assert sub["topic"] == "a topic!"  # the CFP topic itself is unchanged


@given(st.text(min_size=1, max_size=400))
def test_pubsub_name_is_always_valid(raw):
    name = pubsub_name(raw)

    assert PUBSUB_NAME.match(name), name
    assert not name.lower().startswith("goog")


@given(st.text(min_size=1, max_size=300), st.text(min_size=1, max_size=300))
def test_pubsub_name_keeps_different_names_apart(a, b):
    if a != b:
        assert pubsub_name(a) != pubsub_name(b)


def test_pubsub_name_leaves_valid_names_alone():
    assert pubsub_name("orders.PriceOrder.order.created") == "orders.PriceOrder.order.created"
    assert pubsub_name("goog-x").startswith("cfp-goog-x-")


# -- OpenAPI --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source", [EXAMPLE, FIXTURES / "valid", FIXTURES / "motia_style", FIXTURES / "warnings"]
)
def test_openapi_documents_are_valid_openapi_3_1(tmp_path, source):
    doc = openapi(load_copy(tmp_path, source))

    validate(doc)
    assert doc["openapi"] == "3.1.0"


def test_openapi_of_the_example(tmp_path):
    doc = openapi(load_copy(tmp_path, EXAMPLE))

    assert list(doc["paths"]) == ["/orders", "/orders/{id}"]
    create = doc["paths"]["/orders"]["post"]
    assert create["operationId"] == "CreateOrder"
    assert create["tags"] == ["orders"]
    assert create["summary"] == "Accepts an order and starts the orders flow"
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["customerId", "items"]
    # The pydantic model's nested model moved to the components, and its reference with it.
    assert body["properties"]["items"]["items"] == {"$ref": "#/components/schemas/OrderItem"}
    assert "$defs" not in json.dumps(doc)
    assert doc["components"]["schemas"]["OrderItem"]["required"] == ["sku", "quantity", "unitPrice"]
    assert set(create["responses"]) == {"201", "400", "422"}
    assert create["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorEnvelope"
    }

    get = doc["paths"]["/orders/{id}"]["get"]
    assert get["parameters"] == [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert "requestBody" not in get
    assert set(get["responses"]) == {"200", "404"}
    assert doc["tags"] == [{"name": "orders"}]


def test_openapi_query_params_and_plain_json_schemas(tmp_path):
    doc = openapi(load_copy(tmp_path, FIXTURES / "valid"))

    create = doc["paths"]["/orders"]["post"]
    assert create["parameters"] == [
        {
            "name": "dryRun",
            "in": "query",
            "schema": {"type": "string"},
            "description": "validate only",
        }
    ]
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "type": "object",
        "required": ["id"],
    }
    get = doc["paths"]["/orders/{orderId}"]["get"]
    assert get["responses"] == {"default": {"description": "The response of GetOrder"}}


def test_openapi_keeps_same_named_models_of_different_steps_apart(tmp_path):
    project = write_project(
        tmp_path / "shop",
        {
            "steps/a_step.py": """
                from pydantic import BaseModel

                class Line(BaseModel):
                    sku: str

                class Cart(BaseModel):
                    lines: list[Line]

                config = {"type": "api", "name": "PutCart", "path": "/carts/:id",
                          "method": "PUT", "bodySchema": Cart}

                async def handler(req, context):
                    return {"status": 200, "body": {}}
            """,
            "steps/b_step.py": """
                from pydantic import BaseModel

                class Line(BaseModel):
                    text: str

                class Note(BaseModel):
                    lines: list[Line]

                config = {"type": "api", "name": "GetCart", "path": "/carts/:cartId",
                          "method": "GET", "responseSchema": {200: Note}}

                async def handler(req, context):
                    return {"status": 200, "body": {"lines": []}}
            """,
        },
    )

    doc = openapi(project)

    validate(doc)
    # Two methods of one route with different parameter names share one path template.
    assert list(doc["paths"]) == ["/carts/{cartId}"]
    get, put = doc["paths"]["/carts/{cartId}"]["get"], doc["paths"]["/carts/{cartId}"]["put"]
    assert put["parameters"][0]["name"] == get["parameters"][0]["name"] == "cartId"
    note = get["responses"]["200"]["content"]["application/json"]["schema"]
    cart = put["requestBody"]["content"]["application/json"]["schema"]
    note_ref = note["properties"]["lines"]["items"]["$ref"]
    cart_ref = cart["properties"]["lines"]["items"]["$ref"]
    assert note_ref != cart_ref
    schemas = doc["components"]["schemas"]
    assert schemas[note_ref.rpartition("/")[2]]["required"] == ["text"]
    assert schemas[cart_ref.rpartition("/")[2]]["required"] == ["sku"]


def test_cron_steps_become_cloud_scheduler_jobs_unless_they_tick_by_the_second(tmp_path):
    project = write_project(
        tmp_path / "ticks",
        {
            "steps/minute_step.py": """
                config = {"type": "cron", "name": "Every.Minute", "cron": "* * * * *",
                          "flows": ["f"]}

                async def handler(context):
                    pass
            """,
            "steps/second_step.py": """
                config = {"type": "cron", "name": "EverySecond", "cron": "*/5 * * * * *",
                          "flows": ["f"]}

                async def handler(context):
                    pass
            """,
        },
    )

    jobs = {s["step"]: s["job"] for s in manifest(project, tenant="acme", env="prod")["schedules"]}

    minute = jobs["Every.Minute"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,500}", minute["name"])
    assert minute["name"].startswith("cfp-acme-ticks-prod-Every-Minute-")  # hashed: it changed
    assert (minute["schedule"], minute["target"]) == ("* * * * *", "step_cron")
    assert jobs["EverySecond"]["name"] is None
    assert "seconds field" in jobs["EverySecond"]["unsupported"]
