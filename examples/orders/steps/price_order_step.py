import os

from .services.pricing import needs_review, price

config = {
    "type": "event",
    "name": "PriceOrder",
    "description": "Prices a new order, records it and flags large ones for review",
    "subscribes": ["order.created"],
    "emits": [
        "order.priced",
        {"topic": "order.flagged", "label": "over limit", "conditional": True},
    ],
    "input": {
        "type": "object",
        "properties": {
            "orderId": {"type": "string"},
            "customerId": {"type": "string"},
            "items": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "sku": {"type": "string"},
                        "quantity": {"type": "integer", "exclusiveMinimum": 0},
                        "unitPrice": {"type": "number", "minimum": 0},
                    },
                    "required": ["sku", "quantity", "unitPrice"],
                },
            },
            "fail": {"type": "boolean"},
        },
        "required": ["orderId", "customerId", "items"],
    },
    "flows": ["orders"],
    "cfp": {"concurrency": 20},  # CFP only: up to 20 orders priced at once (default 10)
}


async def handler(input, context):
    total = price(input["items"])
    currency = os.environ.get("ORDERS_CURRENCY", "EUR")
    priced = {**input, "total": total, "currency": currency}

    await context.state.set("orders", input["orderId"], {**priced, "status": "priced"})
    orders_seen = await context.state.increment("stats", "orders", 1)
    context.logger.info("Order priced", {"orderId": input["orderId"], "total": total,
                                         "ordersSeen": orders_seen})

    await context.emit({"topic": "order.priced", "data": priced})
    if needs_review(total):
        await context.emit({"topic": "order.flagged", "data": priced})
