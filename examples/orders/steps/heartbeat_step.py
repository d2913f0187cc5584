from datetime import UTC, datetime

config = {
    "type": "cron",
    "name": "Heartbeat",
    "description": "Records a heartbeat every minute",
    "cron": "*/1 * * * *",
    "emits": ["housekeeping.tick"],
    "flows": ["housekeeping"],
}


async def handler(context):
    tick = {"at": datetime.now(UTC).isoformat(), "traceId": context.trace_id}
    await context.state.set("housekeeping", "last_tick", tick)
    await context.emit({"topic": "housekeeping.tick", "data": tick})
