# Event step Probe: records when its handler ran, for emit -> handler-done latency.
import time

config = {
    "type": "event",
    "name": "Probe",
    "description": "Records handler-done time against the emit time in the payload",
    "subscribes": ["probe"],
    "emits": [],
    "flows": ["probe"],
}


async def handler(input, context):
    await context.state.set("probe", str(input["id"]), {"t0": input["t0"], "t_done": time.time()})
