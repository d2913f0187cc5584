"""A flow's canvas layout (`GET`/`PUT R/flows/{flow}/layout`): saved per project environment and
flow for every user of the project, validated strictly, guarded by `If-Match`, and audited with
counts (never coordinates)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import R, error_of, ok_json
from tests.api.test_runtime_auth import member

pytestmark = pytest.mark.api

LAYOUT = f"{R}/flows/demo/layout"
SAVED = {
    "nodes": {"Echo": {"x": 10.5, "y": -20}, "Record": {"x": 300, "y": 0}},
    "viewport": {"x": -12.25, "y": 40, "zoom": 0.75},
}


def records(client: Any, action: str = "flow.layout.update") -> list[dict[str, Any]]:
    audit = client.app.state.platform.control.audit
    page = client.portal.call(lambda: audit.list("tenant/local", action=action, limit=100))
    return page.items


def test_a_saved_layout_reads_back_for_the_flow_with_its_version_as_etag(serve) -> None:
    client = serve()

    empty = client.get(LAYOUT)
    assert ok_json(empty) == {
        "flow": "demo",
        "nodes": {},
        "viewport": None,
        "version": 0,
        "updated_at": None,
        "updated_by": None,
    }
    assert empty.headers["etag"] == '"0"'

    saved = client.put(LAYOUT, json=SAVED)
    body = ok_json(saved)
    assert saved.headers["etag"] == '"1"'
    assert body["version"] == 1 and body["updated_at"] and body["updated_by"]
    assert body["nodes"] == {"Echo": {"x": 10.5, "y": -20.0}, "Record": {"x": 300.0, "y": 0.0}}
    assert body["viewport"] == {"x": -12.25, "y": 40.0, "zoom": 0.75}

    again = client.get(LAYOUT)
    assert ok_json(again) == body and again.headers["etag"] == '"1"'
    # per flow: the other flow's layout is untouched
    assert ok_json(client.get(f"{R}/flows/ops/layout"))["version"] == 0


def test_saving_is_audited_with_counts_not_coordinates_and_unchanged_saves_record_nothing(
    serve,
) -> None:
    client = serve()

    ok_json(client.put(LAYOUT, json=SAVED))
    unchanged = ok_json(client.put(LAYOUT, json=SAVED))

    assert unchanged["version"] == 1
    [record] = records(client)
    assert record["target"] == {"type": "flow", "id": "demo"}
    assert record["scope"] == "tenant/local/project/proj"
    assert record["outcome"] == "success"
    assert record["details"] == {
        "env": "dev",
        "nodes": 2,
        "steps": 3,
        "viewport": True,
        "version": 1,
    }
    assert "10.5" not in str(record)

    cleared = ok_json(client.put(LAYOUT, json={}))  # `{}` clears it: the canvas lays out itself
    assert cleared["nodes"] == {} and cleared["viewport"] is None and cleared["version"] == 2
    assert [r["details"]["nodes"] for r in records(client)] == [0, 2]


def test_if_match_guards_the_version_read(serve) -> None:
    client = serve()
    ok_json(client.put(LAYOUT, json=SAVED))

    stale = client.put(LAYOUT, json={"nodes": {}}, headers={"if-match": '"0"'})
    assert error_of(stale, 412, "precondition_failed")["details"] == {"version": 1}
    error_of(client.put(LAYOUT, json={}, headers={"if-match": "soon"}), 400, "bad_request")

    moved = {"nodes": {"Echo": {"x": 1, "y": 2}}}
    fresh = client.put(LAYOUT, json=moved, headers={"if-match": '"1"'})
    assert ok_json(fresh)["version"] == 2 and fresh.headers["etag"] == '"2"'
    assert len(records(client)) == 2


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"nodes": {"Echo": {"x": "1", "y": 0}}}, "/nodes/Echo/x"),
        ({"nodes": {"Echo": {"x": True, "y": 0}}}, "/nodes/Echo/x"),
        ({"nodes": {"Echo": {"x": 1}}}, "/nodes/Echo/y"),
        ({"nodes": {"Echo": {"x": 1, "y": 2, "z": 3}}}, "/nodes/Echo/z"),
        ({"nodes": {"Echo": {"x": 1e300, "y": 0}}}, "/nodes/Echo/x"),
        ({"nodes": {"Echo": [1, 2]}}, "/nodes/Echo"),
        ({"nodes": [], "viewport": None}, "/nodes"),
        ({"viewport": {"x": 0, "y": 0, "zoom": 0}}, "/viewport/zoom"),
        ({"viewport": {"x": 0, "y": 0}}, "/viewport/zoom"),
        ({"positions": {}}, "/positions"),
        ([], "/"),
    ],
)
def test_malformed_layouts_are_refused_with_pointers(serve, body: Any, pointer: str) -> None:
    client = serve()

    error = error_of(client.put(LAYOUT, json=body), 422, "validation_failed")

    assert pointer in [d["pointer"] for d in error["details"]], error
    assert ok_json(client.get(LAYOUT))["version"] == 0
    assert records(client) == []


def test_non_finite_numbers_and_malformed_json_are_refused(serve) -> None:
    client = serve()
    headers = {"content-type": "application/json"}

    for raw in (
        '{"nodes": {"Echo": {"x": NaN, "y": 0}}}',
        '{"nodes": {"Echo": {"x": 0, "y": Infinity}}}',
    ):
        error = error_of(client.put(LAYOUT, content=raw, headers=headers), 422, "validation_failed")
        assert error["details"][0]["pointer"].startswith("/nodes/Echo/")
    error_of(client.put(LAYOUT, content="{nodes", headers=headers), 400, "bad_request")
    assert records(client) == []


def test_steps_must_be_steps_of_the_flow_and_the_error_names_the_unknown_ones(serve) -> None:
    client = serve()
    body = {
        "nodes": {
            "Echo": {"x": 0, "y": 0},
            "Typed": {"x": 0, "y": 0},  # a step of another flow
            "Ghost/1": {"x": 0, "y": 0},
        }
    }

    error = error_of(client.put(LAYOUT, json=body), 422, "validation_failed")

    assert "'Ghost/1'" in error["message"] and "'Typed'" in error["message"]
    assert "Echo" not in error["message"]
    assert [d["pointer"] for d in error["details"]] == ["/nodes/Ghost~11", "/nodes/Typed"]
    assert records(client) == []


def test_at_most_2000_nodes(serve) -> None:
    client = serve()
    many = {"nodes": {f"s{i}": {"x": i, "y": 0} for i in range(2001)}}

    error = error_of(client.put(LAYOUT, json=many), 422, "validation_failed")

    assert error["details"][0]["pointer"] == "/nodes"


def test_an_unknown_flow_is_404(serve) -> None:
    client = serve()

    error = error_of(client.get(f"{R}/flows/nope/layout"), 404, "not_found")
    assert error["details"] == {"flows": ["demo", "ops"]}
    error_of(client.put(f"{R}/flows/nope/layout", json=SAVED), 404, "not_found")
    assert records(client) == []


def test_a_viewer_reads_the_layout_but_cannot_save_it(serve) -> None:
    client = serve()
    ok_json(client.put(LAYOUT, json=SAVED))
    viewer = member(client, "viewer@example.com", "project_viewer")

    assert ok_json(client.get(LAYOUT, headers=viewer))["nodes"]["Echo"] == {"x": 10.5, "y": -20.0}
    refused = client.put(LAYOUT, json={}, headers=viewer)

    assert error_of(refused, 403, "forbidden")["details"]["action"] == "flow.edit"
    assert ok_json(client.get(LAYOUT))["version"] == 1
    assert len(records(client)) == 1
    editor = member(client, "editor@example.com", "project_editor")
    assert ok_json(client.put(LAYOUT, json={}, headers=editor))["version"] == 2


def test_the_layout_is_in_the_openapi_document(serve) -> None:
    client = serve()

    document = ok_json(client.get("/v1/openapi.json"))
    item = document["paths"]["/v1/projects/{project}/envs/{env}/flows/{flow}/layout"]

    assert item["get"]["operationId"] == "getFlowLayout"
    assert item["put"]["operationId"] == "putFlowLayout"
    assert "412" in item["put"]["responses"] and "422" in item["put"]["responses"]
