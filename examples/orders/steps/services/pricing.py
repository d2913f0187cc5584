"""Order pricing shared by several steps: plain functions, no I/O."""

import os


def price(items: list[dict]) -> float:
    """The order total: quantity times unit price, summed, rounded to cents."""
    return round(sum(item["quantity"] * item["unitPrice"] for item in items), 2)


def needs_review(total: float) -> bool:
    """Orders above ORDERS_REVIEW_LIMIT (from .env) go to a human before anything else."""
    return total > float(os.environ.get("ORDERS_REVIEW_LIMIT", "1000"))


def format_amount(amount: float, currency: str) -> str:
    return f"{amount:,.2f} {currency}"
