# Event step B: ends the chain with one state write (group "done", key = chain id) holding every
# stamp of the chain and t_done, taken as the handler finishes.
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
    t_b = time.time()
    done = {**input, "t_b": t_b, "t_done": time.time()}
    await context.state.set("done", str(input["id"]), done)
