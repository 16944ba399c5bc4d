"""The specialist's tool: an order's status, from a fixed table (no network needed)."""

ORDERS = {
    "A-1001": "shipped",
    "A-1002": "packing",
}


def order_status(order_id: str) -> dict[str, str]:
    """The status of an order (A-1001 or A-1002)."""
    status = ORDERS.get(order_id.strip().upper())
    if status is None:
        raise ValueError(f"no order {order_id!r}; known orders: {sorted(ORDERS)}")
    return {"order_id": order_id, "status": status, "answered_by": "order-status v1"}
