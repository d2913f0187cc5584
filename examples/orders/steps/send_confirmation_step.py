config = {
    "type": "event",
    "name": "SendConfirmation",
    "description": "Sends the order confirmation; the mail server fails once, the retry succeeds",
    "subscribes": ["order.ready"],
    "emits": [],
    "infrastructure": {"handler": {"timeout": 10}, "queue": {"maxRetries": 3}},
    "flows": ["orders"],
}

# Attempts per order live in the module, not in state: a failed attempt's state writes are
# discarded with the rest of its effects, so a counter in state would never get past 1.
_attempts: dict[str, int] = {}


async def handler(input, context):
    order_id = input["orderId"]
    _attempts[order_id] = _attempts.get(order_id, 0) + 1
    if _attempts[order_id] == 1:
        raise ConnectionError(f"mail server unavailable (simulated) for {order_id}")

    await context.state.set("confirmations", order_id, {
        "orderId": order_id,
        "customerId": input["customerId"],
        "attempts": _attempts[order_id],
    })
    context.logger.info("Confirmation sent", {"orderId": order_id, "attempts": _attempts[order_id]})
