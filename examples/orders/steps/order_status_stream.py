from pydantic import BaseModel


class OrderStatus(BaseModel):
    orderId: str
    customerId: str
    status: str
    total: float
    currency: str


def can_access(subscription, auth_context):
    """Who may watch a group: anyone may follow a customer's orders (groupId = customer id),
    except the reserved group "private"; auth_context is the caller's principal, if any."""
    return subscription.get("groupId") != "private"


config = {
    "name": "order_status",
    "schema": OrderStatus,
    "baseConfig": {"storageType": "default"},
    "canAccess": can_access,
}
