from steps.services.pricing import format_amount

config = {
    "type": "event",
    "name": "AppendCustomerLedger",
    "description": "Appends each ready order to its customer's ledger, in order",
    "subscribes": ["order.ready"],
    "emits": [],
    "infrastructure": {"queue": {"type": "fifo"}},
    "flows": ["orders"],
}


async def handler(input, context):
    customer_id = input["customerId"]
    # Read-modify-write is safe here: fifo runs one event at a time per messageGroupId.
    ledger = await context.state.get("ledgers", customer_id) or []
    entry = {"orderId": input["orderId"], "amount": format_amount(input["total"], input["currency"])}
    ledger.append(entry)
    await context.state.set("ledgers", customer_id, ledger)
    await context.state.merge("orders", input["orderId"], {"status": "booked"})

    await context.streams.order_status.send(
        {"groupId": customer_id}, {"type": "ledger.appended", "data": {**entry, "position": len(ledger)}}
    )
