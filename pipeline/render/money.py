"""How money reads in every printed report: one rule, so the tables agree."""

from __future__ import annotations

from decimal import Decimal


def usd(value: Decimal | None, places: int = 4) -> str:
    """``$1,234.5678`` (``-$0.50``) at ``places`` decimals; ``n/a`` when there is no value."""
    if value is None:
        return "n/a"
    rounded = value.quantize(Decimal(1).scaleb(-places))
    return f"{'-' if rounded < 0 else ''}${abs(rounded):,}"
