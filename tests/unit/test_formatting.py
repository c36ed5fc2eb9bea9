"""Money as every printed table shows it."""

from __future__ import annotations

from decimal import Decimal

from pipeline.render.money import usd


def test_money_reads_the_same_everywhere() -> None:
    assert usd(Decimal("1234.5"), 2) == "$1,234.50"
    assert usd(Decimal("0.00374"), 4) == "$0.0037"
    # The sign before the currency; a nonzero amount never reads as zero: it gets the
    # places of its first two significant digits.
    assert usd(Decimal("-2.049"), 2) == "-$2.05"
    assert usd(Decimal("-0.00001"), 2) == "-$0.000010"
    assert usd(Decimal("0.000412"), 2) == "$0.00041"
    assert usd(Decimal("0"), 2) == "$0.00"
    assert usd(Decimal("1E-20"), 2) == "$0.000000000000000000"  # below Decimal(38, 18)
    assert usd(None) == "n/a"
