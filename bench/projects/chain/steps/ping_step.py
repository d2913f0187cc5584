# GET /ping: the lightweight api step (tiny body, no emits, no state).
config = {
    "type": "api",
    "name": "Ping",
    "description": "Answers a tiny body",
    "path": "/ping",
    "method": "GET",
    "emits": [],
    "flows": ["ping"],
}


async def handler(req, context):
    return {"status": 200, "body": {"ok": True}}
