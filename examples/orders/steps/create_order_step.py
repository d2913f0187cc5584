import uuid

from pydantic import BaseModel, Field, ValidationError

from .middleware import reject_blocked_key, timing


class OrderItem(BaseModel):
    sku: str
    quantity: int = Field(gt=0)
    unitPrice: float = Field(ge=0)


class NewOrder(BaseModel):
    customerId: str
    items: list[OrderItem] = Field(min_length=1)
    fail: bool = False  # demo switch: the flagged-order audit step raises for good


class OrderAccepted(BaseModel):
    orderId: str
    traceId: str


class Problem(BaseModel):
    error: str
    details: list = []


config = {
    "type": "api",
    "name": "CreateOrder",
    "description": "Accepts an order and starts the orders flow",
    "path": "/orders",
    "method": "POST",
    "bodySchema": NewOrder,
    "responseSchema": {201: OrderAccepted, 400: Problem},
    "middleware": [timing, reject_blocked_key],
    "emits": ["order.created"],
    "flows": ["orders"],
}


async def handler(req, context):
    try:
        new_order = NewOrder.model_validate(req["body"])
    except ValidationError as exc:
        # In permissive mode an invalid body reaches the handler; answer 400 ourselves.
        details = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return {"status": 400, "body": {"error": "invalid order", "details": details}}

    order = {"orderId": f"ord_{uuid.uuid4().hex[:12]}", **new_order.model_dump()}
    await context.state.set("orders", order["orderId"], {**order, "status": "received"})
    await context.emit({"topic": "order.created", "data": order})
    context.logger.info("Order received", {"orderId": order["orderId"]})

    return {"status": 201, "body": {"orderId": order["orderId"], "traceId": context.trace_id}}
