config = {
    "type": "event",
    "name": "TrackOrderStatus",
    "description": "Publishes the order's status to the order_status stream and releases it",
    "subscribes": ["order.priced"],
    "emits": ["order.ready"],
    "flows": ["orders"],
}


async def handler(input, context):
    customer_id = input["customerId"]
    status = await context.streams.order_status.set(customer_id, input["orderId"], {
        "orderId": input["orderId"],
        "customerId": customer_id,
        "status": "ready",
        "total": input["total"],
        "currency": input["currency"],
    })
    context.logger.info("Order status published", {"streamItem": status["id"]})

    # One message group per customer: the fifo ledger sees each customer's orders in order.
    await context.emit({"topic": "order.ready", "data": input, "messageGroupId": customer_id})
