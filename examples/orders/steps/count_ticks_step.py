config = {
    "type": "event",
    "name": "CountTicks",
    "description": "Counts heartbeats and reports how many orders the project has seen",
    "subscribes": ["housekeeping.tick"],
    "emits": [],
    "flows": ["housekeeping"],
}


async def handler(input, context):
    ticks = await context.state.increment("housekeeping", "ticks")
    orders = await context.state.get("stats", "orders") or 0
    context.logger.info("Heartbeat", {"at": input["at"], "ticks": ticks, "orders": orders})
