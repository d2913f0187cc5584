# Event step A: a -> b, stamping when its handler started.
import time

config = {
    "type": "event",
    "name": "A",
    "description": "Passes the chain on: emits b",
    "subscribes": ["a"],
    "emits": ["b"],
    "flows": ["chain"],
}


async def handler(input, context):
    await context.emit({"topic": "b", "data": {**input, "t_a": time.time()}})
