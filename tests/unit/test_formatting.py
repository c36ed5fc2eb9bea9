"""Money as every printed table shows it."""

from __future__ import annotations

from decimal import Decimal

from pipeline.render.money import usd


def test_money_reads_the_same_everywhere() -> None:
    assert usd(Decimal("1234.5"), 2) == "$1,234.50"
    assert usd(Decimal("0.00374"), 4) == "$0.0037"
    # The sign before the currency; a negative that rounds to zero is zero.
    assert usd(Decimal("-2.049"), 2) == "-$2.05"
    assert usd(Decimal("-0.00001"), 2) == "$0.00"
    assert usd(None) == "n/a"
