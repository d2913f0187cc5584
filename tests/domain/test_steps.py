import pytest
from cfp.domain.steps import (
    ApiStepConfig,
    ConfigKeyError,
    CronStepConfig,
    EmitSpec,
    EventStepConfig,
    NoopStepConfig,
    QueueConfig,
    StepConfig,
    StreamConfig,
    parse_step_config,
    parse_stream_config,
    validation_problems,
)
from pydantic import BaseModel, ValidationError


class Body(BaseModel):
    item: str


async def mw(req, context, next):
    return await next()


def problems(raw: dict, model: type = EventStepConfig) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        parse_step_config(raw)
    return validation_problems(info.value, model)


def keys(raw: dict, model: type = EventStepConfig) -> set[str]:
    return {p["key"] for p in problems(raw, model)}


EVENT = {"type": "event", "name": "E", "subscribes": ["a"]}


def test_event_defaults():
    config = parse_step_config(EVENT)

    assert isinstance(config, EventStepConfig)
    assert isinstance(config, StepConfig)
    assert config.flows == [] and config.emits == [] and config.input is None
    assert config.infrastructure.queue == QueueConfig(
        type="standard", maxRetries=3, visibilityTimeout=900.0, delaySeconds=0.0
    )
    assert config.infrastructure.handler.timeout is None
    assert config.cfp.concurrency is None


def test_emits_accept_strings_and_objects():
    config = parse_step_config(
        {
            **EVENT,
            "emits": ["plain", {"topic": "branch", "label": "if odd", "conditional": True}],
            "virtualEmits": [{"topic": "v"}],
        }
    )

    assert config.emits == [
        EmitSpec(topic="plain"),
        EmitSpec(topic="branch", label="if odd", conditional=True),
    ]
    assert config.virtualEmits == [EmitSpec(topic="v")]


def test_full_event_config():
    config = parse_step_config(
        {
            **EVENT,
            "description": "d",
            "flows": ["f"],
            "input": Body,
            "virtualSubscribes": ["vs"],
            "includeFiles": ["data/*.json"],
            "infrastructure": {
                "handler": {"timeout": 5, "ram": 512, "cpu": 1},
                "queue": {
                    "type": "fifo",
                    "maxRetries": 0,
                    "visibilityTimeout": 30,
                    "delaySeconds": 2.5,
                },
            },
            "cfp": {"concurrency": 3},
        }
    )

    assert config.input["properties"]["item"] == {"title": "Item", "type": "string"}
    assert config.infrastructure.handler.timeout == 5.0
    assert config.infrastructure.queue.type == "fifo"
    assert config.infrastructure.queue.delaySeconds == 2.5
    assert config.cfp.concurrency == 3


def test_api_config():
    config = parse_step_config(
        {
            "type": "api",
            "name": "A",
            "path": "/orders/:id",
            "method": "PATCH",
            "bodySchema": Body,
            "responseSchema": {200: Body, "404": {"type": "object"}},
            "queryParams": [{"name": "q", "description": "search"}, {"name": "page"}],
            "middleware": [mw],
            "emits": ["x"],
            "includeFiles": [],
            "cfp": {"concurrency": 1},
        }
    )

    assert isinstance(config, ApiStepConfig)
    assert config.bodySchema["required"] == ["item"]
    assert set(config.responseSchema) == {200, 404}  # string statuses become ints
    assert config.middleware == [mw]
    assert config.queryParams[1].description is None


def test_cron_and_noop_configs():
    cron = parse_step_config({"type": "cron", "name": "C", "cron": "*/5 * * * * *"})
    noop = parse_step_config({"type": "noop", "name": "N", "virtualEmits": ["a"]})

    assert isinstance(cron, CronStepConfig) and cron.cron == "*/5 * * * * *"
    assert isinstance(noop, NoopStepConfig) and noop.virtualEmits == [EmitSpec(topic="a")]


def test_unknown_key_is_named_with_a_suggestion():
    [problem] = problems({**EVENT, "emit": ["x"]})

    assert problem["key"] == "config.emit"
    assert "unknown key 'emit'; did you mean 'emits'?" in problem["message"]
    assert "allowed: type, name, description, flows, subscribes" in problem["message"]


def test_nested_unknown_key_suggests_from_its_own_model():
    [problem] = problems({**EVENT, "infrastructure": {"queue": {"retries": 5}}})

    assert problem["key"] == "config.infrastructure.queue.retries"
    assert "did you mean 'maxRetries'?" in problem["message"]
    assert "allowed: type, maxRetries, visibilityTimeout, delaySeconds" in problem["message"]


def test_unknown_key_in_an_emit_object():
    [problem] = problems({**EVENT, "emits": [{"topic": "a", "when": "x"}]})

    assert problem["key"] == "config.emits.0.when"
    assert "allowed: topic, label, conditional" in problem["message"]


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"flows": "orders"}, "config.flows"),
        ({"name": ""}, "config.name"),
        ({"name": 5}, "config.name"),
        ({"subscribes": []}, "config.subscribes"),
        ({"subscribes": "a"}, "config.subscribes"),
        ({"emits": [5]}, "config.emits.0"),
        ({"emits": [{"label": "x"}]}, "config.emits.0.topic"),
        ({"emits": [{"topic": "a", "conditional": "yes"}]}, "config.emits.0.conditional"),
        (
            {"infrastructure": {"queue": {"maxRetries": "3"}}},
            "config.infrastructure.queue.maxRetries",
        ),
        (
            {"infrastructure": {"queue": {"maxRetries": -1}}},
            "config.infrastructure.queue.maxRetries",
        ),
        ({"infrastructure": {"queue": {"type": "priority"}}}, "config.infrastructure.queue.type"),
        ({"infrastructure": {"handler": {"timeout": 0}}}, "config.infrastructure.handler.timeout"),
        ({"cfp": {"concurrency": 0}}, "config.cfp.concurrency"),
        ({"cfp": {"concurrency": True}}, "config.cfp.concurrency"),  # strict: bool is not an int
        ({"cfp": {"workers": 2}}, "config.cfp.workers"),
        ({"input": {"type": "objekt"}}, "config.input"),
        ({"input": "Body"}, "config.input"),
    ],
)
def test_wrong_values_name_their_key(patch, key):
    assert key in keys({**EVENT, **patch})


def test_every_problem_is_reported_at_once():
    found = keys({"type": "event", "name": 1, "flows": "f", "bogus": 1})

    assert found == {"config.name", "config.flows", "config.bogus", "config.subscribes"}


def test_missing_required_key():
    assert problems({"type": "cron", "name": "C"}, CronStepConfig) == [
        {"key": "config.cron", "message": "required key is missing"}
    ]


@pytest.mark.parametrize(
    ("patch", "key", "message"),
    [
        ({"method": "get"}, "config.method", "Input should be 'GET'"),
        ({"path": "users"}, "config.path", "must start with '/'"),
        ({"path": "/users/{id}"}, "config.path", "not supported"),
        ({"responseSchema": {"ok": {}}}, "config.responseSchema", "not an HTTP status code"),
        ({"responseSchema": {700: {}}}, "config.responseSchema", "not an HTTP status code"),
        ({"responseSchema": {200: {"type": 1}}}, "config.responseSchema", "responseSchema[200]"),
        ({"responseSchema": [200]}, "config.responseSchema", "must be a dict"),
        ({"middleware": [lambda req, ctx, nxt: None]}, "config.middleware", "middleware[0]"),
        ({"queryParams": [{"name": "q", "type": "int"}]}, "config.queryParams.0.type", "unknown"),
        ({"subscribes": ["a"]}, "config.subscribes", "unknown key"),
        ({"infrastructure": {}}, "config.infrastructure", "unknown key"),
    ],
)
def test_api_problems(patch, key, message):
    raw = {"type": "api", "name": "A", "path": "/a", "method": "GET", **patch}

    found = {p["key"]: p["message"] for p in problems(raw, ApiStepConfig)}

    assert message in found[key]


def test_bad_cron_is_a_config_problem():
    [problem] = problems({"type": "cron", "name": "C", "cron": "61 * * * *"}, CronStepConfig)

    assert problem["key"] == "config.cron"
    assert "invalid cron expression" in problem["message"]


def test_noop_has_only_virtual_keys():
    found = keys(
        {"type": "noop", "name": "N", "emits": ["a"], "subscribes": ["b"], "cfp": {}},
        NoopStepConfig,
    )

    assert found == {"config.emits", "config.subscribes", "config.cfp"}


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ({"name": "x"}, "config.type", "required key is missing"),
        ({"type": "webhook", "name": "x"}, "config.type", "must be one of api, event, cron, noop"),
        ({"type": ["api"], "name": "x"}, "config.type", "must be one of"),
        ([("type", "api")], "config", "config must be a dict"),
    ],
)
def test_type_is_checked_first(raw, key, message):
    with pytest.raises(ConfigKeyError, match=message) as info:
        parse_step_config(raw)
    assert info.value.key == key


def test_configs_are_immutable():
    config = parse_step_config(EVENT)

    with pytest.raises(ValidationError):
        config.name = "other"


def test_stream_config():
    def can_access(subscription, auth):
        return True

    config = parse_stream_config(
        {
            "name": "messages",
            "schema": Body,
            "baseConfig": {"storageType": "default"},
            "canAccess": can_access,
        }
    )

    assert isinstance(config, StreamConfig)
    assert config.schema_["properties"]["item"]["type"] == "string"
    assert config.canAccess is can_access


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"baseConfig": {"storageType": "redis"}}, "config.baseConfig.storageType"),
        ({"baseConfig": {}}, "config.baseConfig.storageType"),
        ({"schema": {"type": "nope"}}, "config.schema"),
        ({"canAccess": True}, "config.canAccess"),
        ({"storage": "x"}, "config.storage"),
    ],
)
def test_stream_problems(patch, key):
    raw = {"name": "s", "schema": {"type": "object"}, "baseConfig": {"storageType": "default"}}
    with pytest.raises(ValidationError) as info:
        parse_stream_config({**raw, **patch})

    assert key in {p["key"] for p in validation_problems(info.value, StreamConfig)}


def test_stream_missing_keys():
    with pytest.raises(ValidationError) as info:
        parse_stream_config({})

    assert {p["key"] for p in validation_problems(info.value, StreamConfig)} == {
        "config.name",
        "config.schema",
        "config.baseConfig",
    }
