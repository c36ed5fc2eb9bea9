"""The arithmetic of alert rules: robust seasonal baselines, burn rates, forecasts.

Pure functions on plain numbers, each worked by hand in ``tests/unit/test_alert_stats.py``.

Sources:
- Robust z-score with the median and the median absolute deviation (MAD), the MAD
  scaled by 1.4826 so it estimates the standard deviation of normal data: Iglewicz
  and Hoaglin, *How to Detect and Handle Outliers* (1993); Rousseeuw and Croux (1993).
- Multiwindow, multi-burn-rate budget alerts (1h/5m at 14.4x, 6h/30m at 6x, 3d/6h at
  1x): Google, *The Site Reliability Workbook*, ch. 5 "Alerting on SLOs", applied
  to a money budget instead of an error budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

# MAD -> standard deviation of a normal distribution (1 / Phi^-1(3/4)).
MAD_TO_SIGMA = 1.4826


def median(values: Sequence[float]) -> float:
    """The median; raises ValueError on an empty sequence."""
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


@dataclass(frozen=True)
class Baseline:
    """What history says a value should be.

    ``expected``: the median of the history, in the value's unit; ``z``: how many
    robust standard deviations the actual value lies above (+) or below (-) it, in
    log space; ``scale``: the robust standard deviation used (log space, floored).
    """

    expected: float
    z: float
    scale: float
    points: int


def robust_log_baseline(
    actual: float, history: Sequence[float], floor: float, min_scale: float
) -> Baseline:
    """Robust z of ``actual`` against ``history`` in log space.

    Values are taken as ``ln(x + floor)`` so that zero hours are allowed and a
    doubling means the same at any size; ``floor`` is in the value's unit (for
    spend, e.g. 0.01 of the currency). The scale is ``1.4826 * MAD``, never below
    ``min_scale`` (a flat history has MAD 0: without the floor any change would be
    infinitely significant). Raises ValueError when the history is empty.
    """
    logs = [math.log(x + floor) for x in history]
    centre = median(logs)
    mad = median([abs(v - centre) for v in logs])
    scale = max(MAD_TO_SIGMA * mad, min_scale)
    z = (math.log(actual + floor) - centre) / scale
    return Baseline(expected=math.exp(centre) - floor, z=z, scale=scale, points=len(logs))


def burn_rate(spend: Decimal, budget: Decimal, window: timedelta, period: timedelta) -> Decimal:
    """How many times faster than an even pace ``spend`` over ``window`` uses a
    ``budget`` meant for ``period``: 1 spends exactly the budget by the period's end.

    Raises ValueError for a budget or window that is not positive.
    """
    if budget <= 0 or window <= timedelta(0):
        raise ValueError("burn rate needs a positive budget and window")
    allowed = budget * Decimal(window.total_seconds()) / Decimal(period.total_seconds())
    return spend / allowed


def overrun_at(
    spent: Decimal, budget: Decimal, period_start: datetime, now: datetime, period_end: datetime
) -> datetime | None:
    """When the budget runs out at the period's average pace so far, if before
    ``period_end``; None if it does not (or nothing was spent yet). Already overrun:
    ``now``."""
    if spent >= budget:
        return now
    elapsed = (now - period_start).total_seconds()
    if spent <= 0 or elapsed <= 0:
        return None
    # Compared before it becomes a date: a large budget's forecast is past any date.
    seconds_to_budget = budget / spent * Decimal(elapsed)
    if seconds_to_budget >= Decimal((period_end - period_start).total_seconds()):
        return None
    return period_start + timedelta(seconds=int(seconds_to_budget))  # to the second


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed exactly in log space from k up.

    Used one-sided, to ask whether ``k`` of ``n`` is more than chance at rate ``p``:
    below the mean (``k <= n * p``) the tail is at least about a half and 1.0 is
    returned, since no rule acts on it. Raises ValueError outside 0 <= k, 0 < p < 1.
    """
    if k < 0 or not 0 < p < 1:
        raise ValueError("binomial tail needs k >= 0 and 0 < p < 1")
    if k == 0:
        return 1.0
    if k > n:
        return 0.0
    if k <= n * p:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    # Terms fall from k on (k is above the mode): stop once they no longer count.
    for i in range(k, n + 1):
        term = math.exp(
            math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
            + i * log_p + (n - i) * log_q
        )  # fmt: skip
        total += term
        if term < total * 1e-16:
            break
    return min(total, 1.0)
