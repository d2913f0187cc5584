# POST /ingest {id, t0}: starts one chain by emitting `a`, stamping when its handler ran.
import time

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
    data = {"id": body.get("id"), "t0": body.get("t0"), "t_ingest": time.time()}
    await context.emit({"topic": "a", "data": data})
    return {"status": 202, "body": {"ok": True}}
