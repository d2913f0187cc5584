"""Step schemas: JSON Schema (Draft 2020-12) dicts or pydantic model classes, as dicts."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel


def to_json_schema(schema: dict | type) -> dict:
    """A JSON Schema dict for a schema dict or pydantic model class; ValueError if it is invalid."""
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        try:
            result = schema.model_json_schema()
        except Exception as exc:  # pydantic raises several types for unschematisable fields
            raise ValueError(f"cannot build a JSON Schema from {schema.__name__}: {exc}") from None
    elif isinstance(schema, dict):
        result = schema
    else:
        raise ValueError(
            f"schema must be a JSON Schema dict or a pydantic model class, not "
            f"{type(schema).__name__}"
        )
    try:
        Draft202012Validator.check_schema(result)
    except SchemaError as exc:
        where = _pointer(exc.absolute_path)
        raise ValueError(f"invalid JSON Schema at {where or '/'}: {exc.message}") from None
    return result


def _pointer(path: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


class SchemaValidator:
    """A JSON Schema compiled once, reporting every violation with its JSON pointer."""

    def __init__(self, schema: dict) -> None:
        self.schema = schema
        self._validator = Draft202012Validator(
            schema, format_checker=Draft202012Validator.FORMAT_CHECKER
        )

    def errors(self, value: Any) -> list[dict]:
        """`[{"pointer", "message"}]` for each violation, ordered by pointer; [] when valid."""
        found = [
            {"pointer": _pointer(err.absolute_path), "message": err.message}
            for err in self._validator.iter_errors(value)
        ]
        return sorted(found, key=lambda e: (e["pointer"], e["message"]))

    def is_valid(self, value: Any) -> bool:
        """True when `value` satisfies the schema."""
        return self._validator.is_valid(value)
