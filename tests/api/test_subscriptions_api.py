"""`/v1/subscriptions` on the embedded backend: every subscription a step needs, named as a
deploy names it, active at once (the embedded queue has nothing to create)."""

from __future__ import annotations

import pytest

from tests.api.conftest import error_of, ok_json

pytestmark = pytest.mark.api


def test_subscriptions_are_listed_active_with_their_names(serve):
    client = serve()

    body = ok_json(client.get("/v1/subscriptions"))

    by_step = {(s["step"], s["topic"]): s for s in body["items"]}
    assert sorted(by_step) == [
        ("Board", "board.op"),
        ("Flaky", "job"),
        ("Record", "echo.seen"),
        ("Record", "note"),
    ]
    record = by_step[("Record", "echo.seen")]
    assert record["name"] == "cfp.local.proj.dev~Record~echo.seen"
    assert record["topic_id"] == "cfp.local.proj.dev~echo.seen"
    assert record["dead_letter_topic_id"] == "cfp.local.proj.dev~dlq~Record"
    assert (record["state"], record["error"], record["backend"]) == ("active", None, "local")
    assert (record["project"], record["env"]) == ("proj", "dev")
    assert body["next_cursor"] is None
    assert ok_json(client.get("/v1/subscriptions?state=failed"))["items"] == []


def test_provisioning_again_changes_nothing(serve):
    client = serve()
    before = ok_json(client.get("/v1/subscriptions"))["items"]

    again = ok_json(client.post("/v1/subscriptions/provision"))

    assert again["failed"] == 0
    strip = {"updated_at"}
    after = ok_json(client.get("/v1/subscriptions"))["items"]
    assert [{k: v for k, v in s.items() if k not in strip} for s in after] == [
        {k: v for k, v in s.items() if k not in strip} for s in before
    ]


def test_an_unknown_state_filter_is_a_400(serve):
    client = serve()

    error = error_of(client.get("/v1/subscriptions?state=sleeping"), 400, "bad_request")

    assert error["details"] == {"parameter": "state"}
