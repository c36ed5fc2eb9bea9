"""How money reads in every printed report: one rule, so the tables agree."""

from __future__ import annotations

from decimal import Decimal


def usd(value: Decimal | None, places: int = 4) -> str:
    """``$1,234.5678`` (``-$0.50``) at ``places`` decimals; ``n/a`` when there is no value.
    A nonzero amount never reads as zero: one too small for ``places`` gets the places
    its first two significant digits need (``$0.00041``, not ``$0.00``)."""
    if value is None:
        return "n/a"
    rounded = value.quantize(Decimal(1).scaleb(-places))
    if rounded == 0 and value != 0:
        rounded = value.quantize(Decimal(1).scaleb(max(-18, value.adjusted() - 1)))
    return f"{'-' if rounded < 0 else ''}${abs(rounded):,f}"
