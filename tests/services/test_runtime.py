"""The runtime on the embedded backend: handlers, context, guarantees. Real adapters, no mocks."""

from __future__ import annotations

import io
import json

import pytest
from cfp.domain.documents import Filter
from cfp.errors import ValidationFailed
from cfp.services.runtime import Origin, StepFailed

from tests.conftest import eventually

CHAIN = {
    "steps/start_step.py": """
        config = {"type": "api", "name": "Start", "path": "/start", "method": "POST",
                  "emits": ["a.happened"], "flows": ["f"]}

        async def handler(req, context):
            await context.state.set("seen", "api", req["body"])
            await context.emit({"topic": "a.happened", "data": {"n": req["body"]["n"]}})
            return {"status": 201, "body": {"trace": context.trace_id}}
    """,
    "steps/middle_step.py": """
        config = {"type": "event", "name": "Middle", "subscribes": ["a.happened"],
                  "emits": ["b.happened"], "flows": ["f"]}

        async def handler(input, context):
            await context.state.set("seen", "middle", {"n": input["n"], "trace": context.trace_id})
            await context.emit({"topic": "b.happened", "data": {"n": input["n"] + 1}})
    """,
    "steps/last_step.py": """
        config = {"type": "event", "name": "Last", "subscribes": ["b.happened"], "flows": ["f"]}

        async def handler(input, context):
            total = await context.state.increment("counters", "last", input["n"])
            await context.state.set("seen", "last", {"total": total, "trace": context.trace_id})
    """,
}


def api_req(body: object = None, **extra: object) -> dict:
    return {
        "body": body,
        "headers": {},
        "pathParams": {},
        "queryParams": {},
        "rawBody": "",
        **extra,
    }


async def test_api_event_event_chain_with_state_and_trace(make_platform):
    p = await make_platform(CHAIN)
    origin = Origin()
    resp = await p.runtime.handle_api(p.project.steps["Start"], api_req({"n": 1}), origin)
    assert resp.status == 201 and resp.body == {"trace": origin.trace_id}
    state = p.runtime.documents

    async def last():
        return await state.get(p.scope.state_item("seen", "last"))

    doc = await eventually(last)
    assert doc["value"] == {"total": 2, "trace": origin.trace_id}
    middle = await state.get(p.scope.state_item("seen", "middle"))
    assert middle["value"]["trace"] == origin.trace_id
    page = await state.list(p.scope.executions(), where=[Filter("trace_id", "==", origin.trace_id)])
    assert sorted(e["step"] for e in page.items) == ["Last", "Middle", "Start"]
    assert all(
        e["status"] == "ok" and e["correlation_id"] == origin.correlation_id for e in page.items
    )


MIDDLEWARE = {
    "steps/mw_step.py": """
        order = []

        async def first(req, context, next_fn):
            order.append("first")
            req["headers"]["x-added"] = "yes"
            response = await next_fn()
            response["headers"] = {**response.get("headers", {}), "x-edited": "by-first"}
            return response

        async def gate(req, context, next_fn):
            order.append("gate")
            if req["headers"].get("x-api-key") == "blocked":
                return {"status": 401, "body": {"error": "blocked"}}
            return await next_fn()

        config = {"type": "api", "name": "Mw", "path": "/mw", "method": "GET",
                  "middleware": [first, gate], "flows": ["f"]}

        async def handler(req, context):
            order.append("handler")
            return {"status": 200, "body": {"added": req["headers"].get("x-added"),
                                            "order": list(order)}}
    """,
}


async def test_middleware_order_short_circuit_mutation_and_response_edit(make_platform):
    p = await make_platform(MIDDLEWARE)
    step = p.project.steps["Mw"]
    module = step.module
    resp = await p.runtime.handle_api(step, api_req(), Origin())
    assert resp.status == 200
    assert resp.body == {"added": "yes", "order": ["first", "gate", "handler"]}
    assert resp.headers["x-edited"] == "by-first"
    module.order.clear()
    blocked = api_req(headers={"x-api-key": "blocked"})
    resp = await p.runtime.handle_api(step, blocked, Origin())
    assert resp.status == 401 and resp.headers["x-edited"] == "by-first"
    assert module.order == ["first", "gate"]


CONTEXT = {
    "steps/ctx_step.py": """
        config = {"type": "api", "name": "Ctx", "path": "/ctx", "method": "POST",
                  "emits": ["ctx.done"], "flows": ["f"]}

        async def handler(req, context):
            s = context.state
            out = {}
            await s.set("g", "k1", {"a": 1})
            out["get"] = await s.get("g", "k1")
            out["missing"] = await s.get("g", "nope")
            await s.set("g", "k2", [1, 2])
            out["group"] = await s.get_group("g")
            out["deleted"] = await s.delete("g", "k2")
            out["after_delete"] = await s.get("g", "k2")
            out["inc"] = await s.increment("g", "count", 5)
            out["inc2"] = await s.increment("g", "count")
            out["merge"] = await s.merge("g", "k1", {"b": 2})
            out["cas_ok"] = await s.compare_and_set("g", "flag", None, "on")
            out["cas_bad"] = await s.compare_and_set("g", "flag", "off", "x")
            await s.set("tmp", "x", 1)
            await s.clear("tmp")
            out["cleared"] = await s.get_group("tmp")
            item = await context.streams.status.set("grp", "i1", {"state": "new"})
            out["item"] = item
            out["item_get"] = await context.streams["status"].get("grp", "i1")
            await context.streams.status.set("grp", "i2", {"state": "other"})
            await context.streams.status.delete("grp", "i2")
            out["items"] = await context.streams.status.getGroup("grp")
            await context.streams.status.send({"groupId": "grp"}, {"type": "ping", "data": 1})
            context.logger.info("hello", {"level": "bogus", "msg": "bogus", "k": "v"})
            await context.emit({"topic": "ctx.done", "data": {"ok": True}})
            out["trace"] = context.trace_id
            out["flows"] = context.flows
            return {"status": 200, "body": out}
    """,
    "steps/status_stream.py": """
        config = {"name": "status", "schema": {"type": "object",
                  "properties": {"state": {"type": "string"}}, "required": ["state"]},
                  "baseConfig": {"storageType": "default"}}
    """,
    "steps/sink_step.py": """
        config = {"type": "event", "name": "Sink", "subscribes": ["ctx.done"], "flows": ["f"]}

        async def handler(input, context):
            await context.state.set("sink", "got", input)
    """,
}


async def test_every_context_call(make_platform):
    p = await make_platform(CONTEXT)
    log = io.StringIO()
    p.logbook.stream = log
    from cfp.services.streams import Subscriber

    sub = Subscriber()
    p.hub.join(sub, "status", "grp", None)
    origin = Origin()
    resp = await p.runtime.handle_api(p.project.steps["Ctx"], api_req({}), origin)
    out = resp.body
    assert out["get"] == {"a": 1} and out["missing"] is None
    assert out["group"] == [{"a": 1}, [1, 2]]
    assert out["deleted"] == [1, 2] and out["after_delete"] is None
    assert out["inc"] == 5 and out["inc2"] == 6
    assert out["merge"] == {"a": 1, "b": 2}
    assert out["cas_ok"] is True and out["cas_bad"] is False
    assert out["cleared"] == []
    assert out["item"] == {"state": "new", "id": "i1"} == out["item_get"]
    assert out["items"] == [{"state": "new", "id": "i1"}]
    assert out["trace"] == origin.trace_id and out["flows"] == ["f"]
    # committed state matches what the handler saw
    docs = p.documents
    assert (await docs.get(p.scope.state_item("g", "count")))["value"] == 6
    assert (await docs.get(p.scope.state_item("g", "k1")))["value"] == {"a": 1, "b": 2}
    assert (await docs.get(p.scope.state_item("g", "flag")))["value"] == "on"
    assert await docs.get(p.scope.state_item("g", "k2")) is None
    # the sink got the emit
    got = await eventually(lambda: docs.get(p.scope.state_item("sink", "got")))
    assert got["value"] == {"ok": True}
    # the logger line: reserved keys are not overwritten, ids present
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    hello = next(line for line in lines if line["msg"] == "hello")
    assert hello["level"] == "info" and hello["k"] == "v" and hello["step"] == "Ctx"
    assert hello["trace_id"] == origin.trace_id
    assert hello["correlation_id"] == origin.correlation_id and hello["flows"] == ["f"]
    # stream subscribers saw the ephemeral event and the committed changes
    seen = []
    while not sub.queue.empty():
        seen.append(sub.queue.get_nowait()["event"])
    assert {"type": "event", "event": {"type": "ping", "data": 1}} in seen
    assert [e["type"] for e in seen if e["type"] != "event"] == ["create", "create", "delete"]


FAILING = {
    "steps/flaky_step.py": """
        attempts = {}
        config = {"type": "event", "name": "Flaky", "subscribes": ["job"], "flows": ["f"],
                  "infrastructure": {"queue": {"maxRetries": 2}}}

        async def handler(input, context):
            key = input["id"]
            attempts[key] = attempts.get(key, 0) + 1
            await context.state.set("effects", f"{key}-{attempts[key]}", True)
            if attempts[key] <= input["fail_times"]:
                raise RuntimeError(f"boom {attempts[key]}")
            await context.state.increment("done", key)
    """,
    "steps/hang_step.py": """
        import asyncio
        config = {"type": "event", "name": "Hang", "subscribes": ["hang"], "flows": ["f"],
                  "infrastructure": {"handler": {"timeout": 0.2}, "queue": {"maxRetries": 0}}}

        async def handler(input, context):
            await asyncio.sleep(60)
    """,
}


async def test_retry_then_success_discards_failed_attempt_effects(make_platform):
    p = await make_platform(FAILING)
    await p.runtime.ingest("job", {"id": "j1", "fail_times": 2}, Origin())
    done = await eventually(lambda: p.documents.get(p.scope.state_item("done", "j1")))
    assert done["value"] == 1
    module = p.project.steps["Flaky"].module
    assert module.attempts["j1"] == 3
    # effects of the failed attempts were never committed; the successful one was
    assert await p.documents.get(p.scope.state_item("effects", "j1-1")) is None
    assert await p.documents.get(p.scope.state_item("effects", "j1-2")) is None
    assert await p.documents.get(p.scope.state_item("effects", "j1-3")) is not None
    page = await p.documents.list(
        p.scope.executions(), where=[Filter("step", "==", "Flaky")], order_by="attempt"
    )
    assert [(e["attempt"], e["status"]) for e in page.items] == [
        (1, "error"),
        (2, "error"),
        (3, "ok"),
    ]
    assert page.items[0]["error"] == "RuntimeError: boom 1"


async def test_dead_letter_after_max_retries_then_replay(make_platform):
    p = await make_platform(FAILING)
    await p.runtime.ingest("job", {"id": "j2", "fail_times": 5}, Origin())
    page = await eventually(lambda: _dead(p))
    letter = page[0]
    assert letter["step"] == "Flaky" and letter["attempts"] == 3
    assert letter["input"] == {"id": "j2", "fail_times": 5}
    assert letter["error"] == "RuntimeError: boom 3" and "RuntimeError" in letter["traceback"]
    # replay one: attempts 4 and 5 fail again, 6 would succeed but only 3 are allowed per run
    module = p.project.steps["Flaky"].module
    module.attempts["j2"] = 4  # the next attempt (5th) fails once more, then the 6th succeeds
    assert await p.queue.replay(ids=[letter["id"]]) == 1
    done = await eventually(lambda: p.documents.get(p.scope.state_item("done", "j2")))
    assert done["value"] == 1
    assert await _dead(p) == []


async def test_bulk_replay_by_step(make_platform):
    p = await make_platform(FAILING)
    for i in range(3):
        await p.runtime.ingest("job", {"id": f"b{i}", "fail_times": 3}, Origin())
    await eventually(lambda: _dead(p, 3))
    assert await p.queue.replay(step="Flaky") == 3
    for i in range(3):
        await eventually(lambda i=i: p.documents.get(p.scope.state_item("done", f"b{i}")))


async def _dead(p, n: int = 1):
    page = await p.queue.list_dead_letters()
    return page.items if len(page.items) >= n else []


async def test_hung_handler_is_cancelled_by_its_timeout(make_platform):
    p = await make_platform(FAILING)
    await p.runtime.ingest("hang", {"x": 1}, Origin())
    letters = await eventually(lambda: _dead(p))
    assert letters[0]["step"] == "Hang" and "timed out after 0.2 s" in letters[0]["error"]


FIFO = {
    "steps/fifo_step.py": """
        import asyncio, random
        config = {"type": "event", "name": "Ledger", "subscribes": ["entry"], "flows": ["f"],
                  "infrastructure": {"queue": {"type": "fifo", "maxRetries": 5}},
                  "cfp": {"concurrency": 8}}
        failed = set()

        async def handler(input, context):
            await asyncio.sleep(random.random() / 200)
            if input["seq"] % 7 == 3 and input["seq"] not in failed:
                failed.add(input["seq"])
                raise RuntimeError("transient")
            ledger = await context.state.get("ledger", input["group"]) or []
            await context.state.set("ledger", input["group"], ledger + [input["seq"]])
    """,
}


async def test_fifo_delivers_in_order_per_message_group_despite_retries(make_platform):
    p = await make_platform(FIFO)
    from cfp.domain.events import Event

    events = [
        Event(topic="entry", data={"group": f"g{i % 3}", "seq": i}, message_group_id=f"g{i % 3}")
        for i in range(30)
    ]
    await p.queue.publish(events)

    async def complete():
        docs = [await p.documents.get(p.scope.state_item("ledger", f"g{g}")) for g in range(3)]
        return docs if all(d and len(d["value"]) == 10 for d in docs) else None

    docs = await eventually(complete)
    for g, doc in enumerate(docs):
        assert doc["value"] == [i for i in range(30) if i % 3 == g]


EMITS = {
    "steps/emitter_step.py": """
        config = {"type": "event", "name": "Emitter", "subscribes": ["go"], "emits": ["ok.topic"],
                  "flows": ["f"], "infrastructure": {"queue": {"maxRetries": 0}}}

        async def handler(input, context):
            await context.emit({"topic": "other.topic", "data": {}})
            await context.state.set("emitter", "ran", True)
    """,
    "steps/other_step.py": """
        config = {"type": "event", "name": "Other", "subscribes": ["other.topic"], "flows": ["f"]}

        async def handler(input, context):
            await context.state.set("other", "ran", True)
    """,
}


async def test_undeclared_emit_is_dropped_when_permissive(make_platform):
    p = await make_platform(EMITS)
    await p.runtime.ingest("go", {}, Origin())
    await eventually(lambda: p.documents.get(p.scope.state_item("emitter", "ran")))
    await p.logbook.flush()
    assert await p.documents.get(p.scope.state_item("other", "ran")) is None
    logs = await p.logbook.query(level="warn")
    assert any("other.topic" in line["msg"] and "dropped" in line["msg"] for line in logs.items)


async def test_undeclared_emit_is_refused_when_strict(make_platform):
    p = await make_platform(EMITS, validation_mode="strict")
    await p.runtime.ingest("go", {}, Origin())
    letters = await eventually(lambda: _dead(p))
    assert "does not declare" in letters[0]["error"]
    assert await p.documents.get(p.scope.state_item("emitter", "ran")) is None


SCHEMAS = {
    "steps/typed_api_step.py": """
        from pydantic import BaseModel

        class Body(BaseModel):
            name: str
            qty: int

        config = {"type": "api", "name": "Typed", "path": "/typed", "method": "POST",
                  "bodySchema": Body, "emits": ["typed.event"], "flows": ["f"]}

        async def handler(req, context):
            await context.emit({"topic": "typed.event", "data": req["body"]})
            return {"status": 200, "body": {"ok": True}}
    """,
    "steps/typed_event_step.py": """
        config = {"type": "event", "name": "TypedEvent", "subscribes": ["typed.event"],
                  "flows": ["f"],
                  "input": {"type": "object", "properties": {"qty": {"type": "integer"}},
                            "required": ["qty"]}}

        async def handler(input, context):
            await context.state.set("typed", "got", input)
    """,
}


async def test_strict_mode_rejects_bad_api_body_with_pointers(make_platform):
    p = await make_platform(SCHEMAS, validation_mode="strict")
    with pytest.raises(ValidationFailed) as info:
        await p.runtime.handle_api(
            p.project.steps["Typed"], api_req({"name": "x", "qty": "many"}), Origin()
        )
    assert any(d["pointer"] == "/qty" for d in info.value.details)


async def test_strict_mode_does_not_deliver_bad_event(make_platform):
    p = await make_platform(SCHEMAS, validation_mode="strict")
    from cfp.domain.events import Event

    await p.queue.publish([Event(topic="typed.event", data={"qty": "x"})])
    letters = await eventually(lambda: _dead(p))
    assert letters[0]["step"] == "TypedEvent" and letters[0]["attempts"] == 1
    assert "schema" in letters[0]["error"]
    assert await p.documents.get(p.scope.state_item("typed", "got")) is None


async def test_permissive_mode_logs_and_continues_and_mode_switches_at_run_time(make_platform):
    p = await make_platform(SCHEMAS)
    resp = await p.runtime.handle_api(p.project.steps["Typed"], api_req({"name": "x"}), Origin())
    assert resp.status == 200
    got = await eventually(lambda: p.documents.get(p.scope.state_item("typed", "got")))
    assert got["value"] == {"name": "x"}  # delivered despite the missing qty
    logs = await p.logbook.query(level="warn")
    assert any("does not match its schema" in line["msg"] for line in logs.items)
    await p.runtime.set_validation_mode("strict")
    with pytest.raises(ValidationFailed):
        await p.runtime.handle_api(p.project.steps["Typed"], api_req({"name": "x"}), Origin())


async def test_redelivered_event_never_doubles_effects(make_platform):
    p = await make_platform(CHAIN, start=False)
    await p.runtime.load_settings()
    p.queue.set_subscriptions(p.runtime.subscriptions())
    from cfp.domain.events import Event

    event = Event(topic="b.happened", data={"n": 3}, id="fixed-id")
    step = p.project.steps["Last"]
    assert await p.runtime.execute(step, event, 1) is True
    assert await p.runtime.execute(step, event, 2) is False
    doc = await p.documents.get(p.scope.state_item("counters", "last"))
    assert doc["value"] == 3


async def test_failed_api_handler_commits_nothing(make_platform):
    files = {
        "steps/bad_step.py": """
        config = {"type": "api", "name": "Bad", "path": "/bad", "method": "POST", "flows": ["f"]}

        async def handler(req, context):
            await context.state.set("bad", "k", 1)
            raise ValueError("nope")
    """
    }
    p = await make_platform(files)
    with pytest.raises(StepFailed):
        await p.runtime.handle_api(p.project.steps["Bad"], api_req({}), Origin())
    assert await p.documents.get(p.scope.state_item("bad", "k")) is None


async def test_cron_tick_runs_once_per_scheduled_time(make_platform):
    files = {
        "steps/tick_step.py": """
        config = {"type": "cron", "name": "Tick", "cron": "* * * * * *", "flows": ["f"]}

        async def handler(context):
            await context.state.increment("ticks", "count")
    """
    }
    p = await make_platform(files, start=False)
    await p.start()
    from cfp.ports import Schedule

    schedule = Schedule("Tick", "* * * * * *")
    await p.runtime.fire_cron(schedule, 1_000_000_000.0)
    await p.runtime.fire_cron(schedule, 1_000_000_000.0)  # the same tick again: ignored
    await p.runtime.fire_cron(schedule, 1_000_000_001.0)
    page = await eventually(lambda: _executions(p, "cron:Tick:100000000", 2))
    assert sorted(e["event_id"] for e in page) == ["cron:Tick:1000000000", "cron:Tick:1000000001"]


async def _executions(p, prefix: str, n: int):
    page = await p.documents.list(
        p.scope.executions(), where=[Filter("status", "==", "ok")], limit=500
    )
    items = [e for e in page.items if str(e["event_id"]).startswith(prefix)]
    return items if len(items) >= n else None
