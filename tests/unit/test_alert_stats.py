"""The alert arithmetic, each figure worked by hand in the comments."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pipeline.alerts.stats import (
    MAD_TO_SIGMA,
    binomial_upper_tail,
    burn_rate,
    median,
    overrun_at,
    robust_log_baseline,
)


def test_median_of_odd_and_even_counts() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError):
        median([])


def test_robust_z_in_log_space() -> None:
    # ln of the history: 0, 1, 2, 3, 4 -> median 2; |deviations| 2, 1, 0, 1, 2 -> MAD 1;
    # scale 1.4826; actual e^5 -> z = (5 - 2) / 1.4826 = 2.0235; expected e^2.
    history = [math.exp(k) for k in range(5)]
    base = robust_log_baseline(math.exp(5), history, floor=0.0, min_scale=0.1)
    assert base.scale == pytest.approx(1.4826)
    assert base.z == pytest.approx(3 / 1.4826)
    assert base.expected == pytest.approx(math.exp(2))
    assert base.points == 5
    assert MAD_TO_SIGMA == 1.4826


def test_a_flat_history_uses_the_minimum_scale() -> None:
    # MAD 0: the scale is the floor 0.1; actual e over a history of ones: z = 1 / 0.1.
    base = robust_log_baseline(math.e, [1.0, 1.0, 1.0, 1.0], floor=0.0, min_scale=0.1)
    assert base.scale == 0.1
    assert base.z == pytest.approx(10.0)
    assert base.expected == pytest.approx(1.0)


def test_zero_hours_are_allowed_by_the_floor() -> None:
    # ln(0 + 1) = 0 for every history hour; actual 0 -> z 0, expected 0.
    base = robust_log_baseline(0.0, [0.0, 0.0, 0.0], floor=1.0, min_scale=0.1)
    assert base.z == 0.0
    assert base.expected == 0.0


def test_burn_rate_against_an_even_pace() -> None:
    # $720 over a 30-day month is $1 per hour, $1/12 per 5 minutes.
    month = timedelta(days=30)
    assert burn_rate(Decimal("14.4"), Decimal(720), timedelta(hours=1), month) == Decimal("14.4")
    assert burn_rate(Decimal("1.2"), Decimal(720), timedelta(minutes=5), month) == Decimal("14.4")
    assert burn_rate(Decimal(0), Decimal(720), timedelta(hours=1), month) == 0
    with pytest.raises(ValueError):
        burn_rate(Decimal(1), Decimal(0), timedelta(hours=1), month)


def test_overrun_forecast_at_the_period_pace() -> None:
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    now = datetime(2026, 11, 11, tzinfo=UTC)
    # $150 in 10 days: $15 a day, $300 after 20 days -> 21 November.
    assert overrun_at(Decimal(150), Decimal(300), start, now, end) == datetime(
        2026, 11, 21, tzinfo=UTC
    )
    # $50 in 10 days: $300 after 60 days, past the period's end.
    assert overrun_at(Decimal(50), Decimal(300), start, now, end) is None
    assert overrun_at(Decimal(300), Decimal(300), start, now, end) == now
    assert overrun_at(Decimal(0), Decimal(300), start, now, end) is None
    # A budget far beyond the pace (a company-wide one, a month's first minutes): no
    # date at all, not an overflow. 1 cent in 1 s against 5 x 10^30: never this month.
    early = start + timedelta(seconds=1)
    assert overrun_at(Decimal("0.01"), Decimal("5E30"), start, early, end) is None
    # To the second: $7 in 7 s of a $10 budget -> 10 s after the start (not 10.000001).
    assert overrun_at(Decimal(7), Decimal(10), start, start + timedelta(seconds=7), end) == (
        start + timedelta(seconds=10)
    )


def test_binomial_upper_tail() -> None:
    # n 20, p 0.05: P(0..3) = 0.358486 + 0.377354 + 0.188677 + 0.059582 = 0.984099,
    # so P(X >= 4) = 0.015901.
    assert binomial_upper_tail(4, 20, 0.05) == pytest.approx(0.015901, rel=1e-4)
    assert binomial_upper_tail(20, 20, 0.05) == pytest.approx(0.05**20)
    assert binomial_upper_tail(1, 20, 0.05) == 1.0  # below the mean: not acted on
    assert binomial_upper_tail(0, 20, 0.05) == 1.0
    assert binomial_upper_tail(21, 20, 0.05) == 0.0
    # Large n stays finite and small: 200 of 1,000,000 at 0.0001 (mean 100).
    assert 0 < binomial_upper_tail(200, 1_000_000, 0.0001) < 1e-15
