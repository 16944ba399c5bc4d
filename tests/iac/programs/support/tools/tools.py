"""Tools of the support example: they are deployed, never called, by the IaC tests."""


def refund_payment(order_id: str = "") -> dict[str, str]:
    """Refund an order."""
    return {"refunded": order_id}


def lookup_order(order_id: str = "") -> dict[str, str]:
    """Look an order up."""
    return {"order": order_id}
