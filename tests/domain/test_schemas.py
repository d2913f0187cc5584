import pytest
from cfp.domain.schemas import SchemaValidator, to_json_schema
from pydantic import BaseModel


class Address(BaseModel):
    city: str


class Customer(BaseModel):
    name: str
    age: int
    addresses: list[Address] = []


def test_dict_schema_is_kept():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}

    assert to_json_schema(schema) == schema


def test_pydantic_model_becomes_json_schema():
    schema = to_json_schema(Customer)

    assert schema["type"] == "object"
    assert set(schema["required"]) == {"name", "age"}
    assert schema["properties"]["age"]["type"] == "integer"
    assert "Address" in schema["$defs"]


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "objekt"}, "invalid JSON Schema at /type"),
        ({"properties": {"a": {"minimum": "one"}}}, "/properties/a/minimum"),
        ({"required": "name"}, "/required"),
    ],
)
def test_bad_json_schema_is_refused_with_its_location(schema, message):
    with pytest.raises(ValueError, match=message):
        to_json_schema(schema)


@pytest.mark.parametrize("schema", [5, "object", Customer(name="a", age=1), int])
def test_other_values_are_refused(schema):
    with pytest.raises(ValueError, match="JSON Schema dict or a pydantic model class"):
        to_json_schema(schema)


def test_validator_reports_nothing_for_valid_values():
    assert SchemaValidator(to_json_schema(Customer)).errors({"name": "a", "age": 3}) == []


def test_validator_reports_every_error_with_its_pointer():
    validator = SchemaValidator(to_json_schema(Customer))

    errors = validator.errors({"name": 5, "age": 3, "addresses": [{"city": "x"}, {"city": 7}]})

    assert [e["pointer"] for e in errors] == ["/addresses/1/city", "/name"]
    assert "is not of type 'string'" in errors[0]["message"]
    assert validator.is_valid({"name": "a", "age": 3}) is True
    assert validator.is_valid({"name": "a"}) is False


def test_missing_property_points_at_its_object():
    errors = SchemaValidator(to_json_schema(Customer)).errors({"name": "a"})

    assert errors == [{"pointer": "", "message": "'age' is a required property"}]


def test_pointer_escapes_slash_and_tilde():
    schema = {
        "type": "object",
        "properties": {"a/b": {"type": "string"}, "c~d": {"type": "string"}},
    }

    errors = SchemaValidator(schema).errors({"a/b": 1, "c~d": 2})

    assert [e["pointer"] for e in errors] == ["/a~1b", "/c~0d"]


def test_formats_are_checked():
    schema = {"type": "string", "format": "email"}

    assert SchemaValidator(schema).errors("not-an-email") != []
    assert SchemaValidator(schema).errors("a@example.com") == []
