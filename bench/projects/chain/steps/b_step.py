# Event step B: ends the chain with one state write (group "done", key = chain id).
import time

config = {
    "type": "event",
    "name": "B",
    "description": "Ends the chain: writes state",
    "subscribes": ["b"],
    "emits": [],
    "flows": ["chain"],
}


async def handler(input, context):
    done = {"t0": input.get("t0"), "t_done": time.time()}
    await context.state.set("done", str(input["id"]), done)
