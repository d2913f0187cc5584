from pydantic import BaseModel


class Order(BaseModel):
    orderId: str
    customerId: str
    status: str
    items: list[dict]
    total: float | None = None
    currency: str | None = None


class Problem(BaseModel):
    error: str


config = {
    "type": "api",
    "name": "GetOrder",
    "description": "Returns an order as the flow has recorded it so far",
    "path": "/orders/:id",
    "method": "GET",
    "responseSchema": {200: Order, 404: Problem},
    "emits": [],
    "flows": ["orders"],
}


async def handler(req, context):
    order_id = req["pathParams"]["id"]
    order = await context.state.get("orders", order_id)
    if order is None:
        return {"status": 404, "body": {"error": f"no order {order_id}"}}
    return {"status": 200, "body": order}
