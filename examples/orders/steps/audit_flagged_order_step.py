config = {
    "type": "event",
    "name": "AuditFlaggedOrder",
    "description": "Files flagged orders with the risk service; fails for good on 'fail': true",
    "subscribes": ["order.flagged"],
    "emits": [],
    "infrastructure": {"queue": {"maxRetries": 1}},
    "flows": ["orders"],
}


async def handler(input, context):
    if input.get("fail"):
        # Not transient: every retry fails the same way, so the event ends as a dead letter.
        raise ValueError(f"risk service rejected order {input['orderId']}")

    await context.state.set("flagged", input["orderId"], {
        "orderId": input["orderId"],
        "customerId": input["customerId"],
        "total": input["total"],
    })
    context.logger.warn("Order flagged for review", {"orderId": input["orderId"]})
