"""Strict models of step and stream `config` dicts, in classic Motia 0.x's format.

Every model forbids unknown keys and coerces nothing (`strict=True`): a misspelt key or a string
where a number belongs is a load error naming the key, never silently ignored or converted.
CFP's own options live under the single extra key `cfp`.
"""

from __future__ import annotations

import difflib
import inspect
import types
import typing
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
)

from cfp.domain.cron import parse_cron
from cfp.domain.routes import compile_route
from cfp.domain.schemas import to_json_schema

StepType = Literal["api", "event", "cron", "noop"]
HttpMethod = Literal["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]

DEFAULT_HANDLER_TIMEOUT = 30.0
"""Seconds a handler may run when `infrastructure.handler.timeout` is not set (Motia's default)."""

DEFAULT_CONCURRENCY = 10
"""Handlers of one step running at once per worker when `cfp.concurrency` is not set."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class EmitSpec(_Strict):
    """A topic a step emits; `conditional` marks a branch the step takes only sometimes."""

    topic: str = Field(min_length=1)
    label: str | None = None
    conditional: bool = False


def _topic_as_spec(value: Any) -> Any:
    # Motia accepts a bare topic string wherever an emit object may appear.
    return {"topic": value} if isinstance(value, str) else value


EmitItem = Annotated[EmitSpec, BeforeValidator(_topic_as_spec)]
Topic = Annotated[str, Field(min_length=1)]
JsonSchema = Annotated[dict[str, Any], PlainValidator(to_json_schema)]


def _response_schemas(value: Any) -> dict[int, dict[str, Any]]:
    if not isinstance(value, dict):
        raise ValueError("responseSchema must be a dict of HTTP status -> schema")
    result: dict[int, dict[str, Any]] = {}
    for key, schema in value.items():
        status = key if isinstance(key, int) and not isinstance(key, bool) else None
        if isinstance(key, str) and key.isdigit():
            status = int(key)
        if status is None or not 100 <= status <= 599:
            raise ValueError(f"responseSchema key {key!r} is not an HTTP status code")
        try:
            result[status] = to_json_schema(schema)
        except ValueError as exc:
            raise ValueError(f"responseSchema[{key!r}]: {exc}") from None
    return result


ResponseSchemas = Annotated[dict[int, dict[str, Any]], PlainValidator(_response_schemas)]


def _async_callables(value: list[Any]) -> list[Any]:
    for index, item in enumerate(value):
        if not inspect.iscoroutinefunction(item):
            raise ValueError(f"middleware[{index}] must be an `async def` function, got {item!r}")
    return value


def _callable(value: Any) -> Any:
    if not callable(value):
        raise ValueError(f"must be a function, got {type(value).__name__}")
    return value


class QueryParam(_Strict):
    """A documented query parameter of an API step (documentation only; not validated)."""

    name: str = Field(min_length=1)
    description: str | None = None


class HandlerInfra(_Strict):
    """`infrastructure.handler`: the handler's time limit and, in the cloud, its machine size.

    `timeout` is in seconds; when unset the runtime uses `DEFAULT_HANDLER_TIMEOUT` (30 s).
    """

    timeout: float | None = Field(default=None, gt=0)
    ram: int | None = Field(default=None, gt=0)
    cpu: float | None = Field(default=None, gt=0)


class QueueConfig(_Strict):
    """`infrastructure.queue`: delivery options of an event step's subscription queue."""

    type: Literal["standard", "fifo"] = "standard"
    maxRetries: int = Field(default=3, ge=0)
    visibilityTimeout: float = Field(default=900.0, gt=0)
    delaySeconds: float = Field(default=0.0, ge=0)


class Infrastructure(_Strict):
    """`infrastructure` of an event step."""

    handler: HandlerInfra = Field(default_factory=HandlerInfra)
    queue: QueueConfig = Field(default_factory=QueueConfig)


class CfpOptions(_Strict):
    """CFP's additions to classic Motia, under the `cfp` key.

    `concurrency` bounds how many invocations of the step run at once per worker (default
    `DEFAULT_CONCURRENCY`); a fifo queue additionally runs one message per group at a time.
    """

    concurrency: int | None = Field(default=None, ge=1)


class StepConfig(_Strict):
    """Keys every step type has; parse with `parse_step_config`, which picks the subclass."""

    type: StepType
    name: str = Field(min_length=1)
    description: str | None = None
    flows: list[Topic] = Field(default_factory=list)


class ApiStepConfig(StepConfig):
    """An HTTP endpoint: `handler(req, context)`."""

    type: Literal["api"]
    path: str
    method: HttpMethod
    emits: list[EmitItem] = Field(default_factory=list)
    virtualEmits: list[EmitItem] = Field(default_factory=list)
    virtualSubscribes: list[Topic] = Field(default_factory=list)
    bodySchema: JsonSchema | None = None
    responseSchema: ResponseSchemas = Field(default_factory=dict)
    queryParams: list[QueryParam] = Field(default_factory=list)
    middleware: Annotated[list[Any], AfterValidator(_async_callables)] = Field(default_factory=list)
    includeFiles: list[str] = Field(default_factory=list)
    cfp: CfpOptions = Field(default_factory=CfpOptions)

    @field_validator("path")
    @classmethod
    def _route(cls, path: str) -> str:
        compile_route("GET", path)
        return path


class EventStepConfig(StepConfig):
    """A subscriber: `handler(input, context)` for each event on its `subscribes` topics."""

    type: Literal["event"]
    subscribes: list[Topic] = Field(min_length=1)
    emits: list[EmitItem] = Field(default_factory=list)
    input: JsonSchema | None = None
    virtualEmits: list[EmitItem] = Field(default_factory=list)
    virtualSubscribes: list[Topic] = Field(default_factory=list)
    includeFiles: list[str] = Field(default_factory=list)
    infrastructure: Infrastructure = Field(default_factory=Infrastructure)
    cfp: CfpOptions = Field(default_factory=CfpOptions)


class CronStepConfig(StepConfig):
    """A schedule: `handler(context)` on each tick of `cron` (UTC)."""

    type: Literal["cron"]
    cron: str
    emits: list[EmitItem] = Field(default_factory=list)
    virtualEmits: list[EmitItem] = Field(default_factory=list)
    virtualSubscribes: list[Topic] = Field(default_factory=list)
    includeFiles: list[str] = Field(default_factory=list)
    cfp: CfpOptions = Field(default_factory=CfpOptions)

    @field_validator("cron")
    @classmethod
    def _cron(cls, cron: str) -> str:
        parse_cron(cron)
        return cron


class NoopStepConfig(StepConfig):
    """A diagram-only node (a person, an external system): no handler."""

    type: Literal["noop"]
    virtualEmits: list[EmitItem] = Field(default_factory=list)
    virtualSubscribes: list[Topic] = Field(default_factory=list)


AnyStepConfig = ApiStepConfig | EventStepConfig | CronStepConfig | NoopStepConfig

STEP_CONFIG_MODELS: dict[str, type[StepConfig]] = {
    "api": ApiStepConfig,
    "event": EventStepConfig,
    "cron": CronStepConfig,
    "noop": NoopStepConfig,
}


class StreamBaseConfig(_Strict):
    """`baseConfig` of a stream: where its items are stored."""

    storageType: Literal["default"]


class StreamConfig(_Strict):
    """A `*_stream.py` config; `canAccess(subscription, auth_context) -> bool`, sync or async."""

    name: str = Field(min_length=1)
    # `schema` would shadow a BaseModel attribute, hence the alias.
    schema_: JsonSchema = Field(alias="schema")
    baseConfig: StreamBaseConfig
    canAccess: Annotated[Any, AfterValidator(_callable)] = None


class ConfigKeyError(ValueError):
    """A config problem found before model validation; `key` names the offending key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def parse_step_config(raw: dict) -> StepConfig:
    """Validate a step's `config` into its type's model; ValidationError or ConfigKeyError."""
    if not isinstance(raw, dict):
        raise ConfigKeyError("config", f"config must be a dict, not {type(raw).__name__}")
    kind = raw.get("type")
    model = STEP_CONFIG_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        allowed = ", ".join(STEP_CONFIG_MODELS)
        if "type" not in raw:
            raise ConfigKeyError("config.type", f"required key is missing (one of {allowed})")
        raise ConfigKeyError("config.type", f"must be one of {allowed}, not {kind!r}")
    return model.model_validate(raw)


def parse_stream_config(raw: dict) -> StreamConfig:
    """Validate a stream's `config`; ValidationError or ConfigKeyError."""
    if not isinstance(raw, dict):
        raise ConfigKeyError("config", f"config must be a dict, not {type(raw).__name__}")
    return StreamConfig.model_validate(raw)


def validation_problems(
    exc: ValidationError, model: type[BaseModel], prefix: str = "config"
) -> list[dict[str, str]]:
    """`[{"key": "config.emits.0.topic", "message": ...}]` for each error of a config model."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        key = ".".join([prefix, *map(str, loc)])
        if err["type"] == "extra_forbidden":
            message = _unknown_key(str(loc[-1]), _allowed_keys(model, loc[:-1]))
        elif err["type"] == "missing":
            message = "required key is missing"
        else:
            message = err["msg"].removeprefix("Value error, ")
        problems.append({"key": key, "message": message})
    return problems


def _unknown_key(key: str, allowed: list[str]) -> str:
    message = f"unknown key {key!r}"
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    if allowed:
        message += f" (allowed: {', '.join(allowed)})"
    return message


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return []
        if isinstance(part, int):
            continue  # a list index: the item model is already `current`
        fields = {f.alias or name: f for name, f in current.model_fields.items()}
        field = fields.get(part)
        current = _model_in(field.annotation) if field is not None else None
    if current is None:
        return []
    return [f.alias or name for name, f in current.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, types.UnionType, typing.Union, Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
