"""``kind: anomaly``: an hourly metric per label set against its seasonal baseline.

The hour judged is the last whole hour before the evaluation time (an hour is
judged once its data is in). Its baseline is the same hour of the week over the
previous ``weeks`` weeks; with fewer than ``min_history`` of those, the same hour
of the previous seven days; with fewer still, no alert (too little history). Hours
before a label set's first call are not history; hours after it without calls count
as zero. The comparison is a robust z-score in log space (see
:func:`pipeline.alerts.stats.robust_log_baseline`), gated by a minimum absolute
impact and a minimum ratio, so a quiet series does not page for cents.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from pipeline.alert_identity import lower_bound
from pipeline.alerts.rules import Money, RuleBase
from pipeline.alerts.state import Observation
from pipeline.alerts.stats import robust_log_baseline
from pipeline.query.alert_inputs import HOUR, AlertInputs, Sums, floor_hour

_MICRO = Decimal("0.000001")


class Metric(StrEnum):
    spend = "spend"  # known cost, in the price book's currency
    calls = "calls"
    tokens = "tokens"
    retry_rate = "retry_rate"  # retried calls / calls
    unpriced_share = "unpriced_share"  # unpriced calls / calls


class Direction(StrEnum):
    up = "up"
    down = "down"
    both = "both"


# Added before the logarithm, in the metric's unit: below this, changes do not count.
DEFAULT_FLOOR = {
    Metric.spend: 0.01,
    Metric.calls: 1.0,
    Metric.tokens: 100.0,
    Metric.retry_rate: 0.01,
    Metric.unpriced_share: 0.01,
}


class AnomalyRule(RuleBase):
    """An hourly metric far from its seasonal baseline."""

    kind: Literal["anomaly"] = "anomaly"
    metric: Metric = Metric.spend
    direction: Direction = Direction.up
    weeks: Annotated[int, Field(ge=1, le=52)] = 4
    min_history: Annotated[int, Field(ge=1, le=52)] = 3
    z: Annotated[float, Field(gt=0)] = 4.0
    floor: Annotated[float, Field(gt=0)] | None = None
    min_scale: Annotated[float, Field(gt=0)] = 0.1
    min_impact: Annotated[Money, Field(ge=0)] = Decimal(0)
    min_ratio: Annotated[float, Field(ge=1)] = 1.0
    min_calls: Annotated[int, Field(ge=0)] = 0


def metric_value(metric: Metric, sums: Sums) -> float:
    """The metric of an hour's sums (rates are 0 for an hour without calls)."""
    if metric is Metric.spend:
        return float(sums.cost)
    if metric is Metric.calls:
        return float(sums.calls)
    if metric is Metric.tokens:
        return float(sums.tokens)
    if not sums.calls:
        return 0.0
    part = sums.retried_calls if metric is Metric.retry_rate else sums.unpriced_calls
    return part / sums.calls


def _spend_bounds(metric: Metric, current: Sums, history: list[Sums]) -> dict[str, str]:
    """For spend: which of the figures count unpriced calls as 0 (lower bounds)."""
    if metric is not Metric.spend:
        return {}
    out = lower_bound(current.unpriced_calls, current.calls)
    unpriced = sum(h.unpriced_calls for h in history)
    if unpriced:
        out["baseline_incomplete"] = (
            f"{unpriced} calls of the baseline hours have no price and count as 0: the "
            "expected spend is low by their cost"
        )
    return out


def history_hours(
    hour: datetime, series: dict[datetime, Sums], first: datetime, weeks: int, min_history: int
) -> list[datetime] | None:
    """The hours the baseline of ``hour`` is taken from (weekly, else daily), or None
    when there are fewer than ``min_history`` of them since ``first``."""
    weekly = [hour - timedelta(weeks=k) for k in range(1, weeks + 1)]
    weekly = [h for h in weekly if h >= first]
    if len(weekly) >= min_history:
        return weekly
    daily = [hour - timedelta(days=k) for k in range(1, 8)]
    daily = [h for h in daily if h >= first]
    return daily if len(daily) >= min_history else None


def evaluate(rule: AnomalyRule, inputs: AlertInputs, at: datetime) -> list[Observation]:
    """The label sets whose last whole hour before ``at`` is anomalous."""
    group_by = [d.value for d in rule.group_by]
    match = {d.value: v for d, v in rule.match.items()}
    hour = floor_hour(at) - HOUR
    start = hour - timedelta(weeks=rule.weeks)
    series_by_key = inputs.hourly(group_by, match, start, hour + HOUR)
    floor = rule.floor if rule.floor is not None else DEFAULT_FLOOR[rule.metric]
    out: list[Observation] = []
    for key, series in series_by_key.items():
        first = min(series)
        hours = history_hours(hour, series, first, rule.weeks, rule.min_history)
        if hours is None:
            continue
        current = series.get(hour, Sums())
        if current.calls < rule.min_calls:
            continue
        actual = metric_value(rule.metric, current)
        history = [metric_value(rule.metric, series.get(h, Sums())) for h in hours]
        base = robust_log_baseline(actual, history, floor, rule.min_scale)
        up = base.z >= rule.z and actual >= base.expected * rule.min_ratio
        down = -base.z >= rule.z and base.expected >= actual * rule.min_ratio
        fired = (rule.direction is not Direction.down and up) or (
            rule.direction is not Direction.up and down
        )
        if rule.metric is Metric.spend:
            expected: Decimal | float = Decimal(str(base.expected)).quantize(_MICRO)
            value: Decimal | float = current.cost
            impact: Decimal | None = current.cost - Decimal(str(expected))
        else:
            expected, value, impact = base.expected, actual, None
        gap = abs(Decimal(str(actual)) - Decimal(str(base.expected)))
        if not fired or gap < rule.min_impact:
            continue
        out.append(
            Observation(
                dict(zip(group_by, key, strict=True)),
                value=value,
                expected=expected,
                impact=impact,
                details={
                    "hour": hour.isoformat(),
                    "z": f"{base.z:.2f}",
                    "history_hours": str(base.points),
                    "metric": rule.metric.value,
                    **_spend_bounds(rule.metric, current, [series.get(h, Sums()) for h in hours]),
                },
            )
        )
    return out
