# POST /ingest {id, t0}: starts one chain by emitting `a` (the api -> event -> event benchmark).
config = {
    "type": "api",
    "name": "Ingest",
    "description": "Starts one chain: emits a",
    "path": "/ingest",
    "method": "POST",
    "emits": ["a"],
    "flows": ["chain"],
}


async def handler(req, context):
    body = req["body"] or {}
    await context.emit({"topic": "a", "data": {"id": body.get("id"), "t0": body.get("t0")}})
    return {"status": 202, "body": {"ok": True}}
