"""``kind: budget``: an amount per calendar period per label set.

Two conditions, each its own alert instance:

- a threshold (share of the amount, e.g. 0.8) reached in the current period: label
  ``threshold`` and ``period``, so each fires once per period and resolves when the
  period ends;
- a burn-rate pair (long and short window both spending at least ``factor`` times
  the even pace that uses the amount exactly by the period's end): label
  ``burn_window`` (``1h/5m``). The pairs default to the SRE workbook's
  (see :mod:`pipeline.alerts.stats`).

Every alert carries the forecast overrun time at the period's average pace so far.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.alert_identity import lower_bound
from pipeline.alerts.rules import Duration, Money, RuleBase, format_duration
from pipeline.alerts.state import Observation
from pipeline.alerts.stats import burn_rate, overrun_at
from pipeline.query.alert_inputs import AlertInputs

_MONEY = Annotated[Money, Field(gt=0)]
_NANO, _MICRO = Decimal("0.000000001"), Decimal("0.000001")
_SHARE = Annotated[Decimal, Field(gt=0, le=10)]


class Period(StrEnum):
    day = "day"
    week = "week"  # Monday to Monday, ISO 8601
    month = "month"


class BurnWindow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    long: Duration
    short: Duration
    factor: Annotated[Decimal, Field(gt=0)]

    @model_validator(mode="after")
    def _short_within_long(self) -> BurnWindow:
        if not timedelta(0) < self.short < self.long:
            raise ValueError("a burn window's short window must be shorter than its long one")
        return self


# The Site Reliability Workbook, ch. 5, table 5-8.
SRE_WORKBOOK_BURN_WINDOWS = [
    BurnWindow(long=timedelta(hours=1), short=timedelta(minutes=5), factor=Decimal("14.4")),
    BurnWindow(long=timedelta(hours=6), short=timedelta(minutes=30), factor=Decimal(6)),
    BurnWindow(long=timedelta(days=3), short=timedelta(hours=6), factor=Decimal(1)),
]


class BudgetRule(RuleBase):
    """A spend budget (``amount``, in the price book's currency) per period."""

    kind: Literal["budget"] = "budget"
    amount: _MONEY
    period: Period = Period.month
    timezone: str = Field(default="UTC", description="IANA time zone the periods start in")
    thresholds: list[_SHARE] = Field(
        default_factory=lambda: [Decimal("0.5"), Decimal("0.8"), Decimal("0.95"), Decimal(1)]
    )
    burn_windows: list[BurnWindow] = Field(default_factory=lambda: list(SRE_WORKBOOK_BURN_WINDOWS))

    @model_validator(mode="after")
    def _can_fire(self) -> BudgetRule:
        if not self.thresholds and not self.burn_windows:
            raise ValueError("give thresholds, burn_windows or both: with neither it never fires")
        return self

    @field_validator("thresholds")
    @classmethod
    def _distinct(cls, value: list[Decimal]) -> list[Decimal]:
        if len(set(value)) != len(value):
            raise ValueError("thresholds repeat: each fires once per period, give it once")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name like Europe/Berlin)"
            ) from None
        return value


def period_bounds(at: datetime, period: Period, zone: str) -> tuple[datetime, datetime, str]:
    """The period holding ``at`` (aware) in ``zone``: its start and end (in UTC) and
    its name (``2026-11-30``, ``2026-W49``, ``2026-11``)."""
    tz = ZoneInfo(zone)
    local = at.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.day:
        start, name = midnight, midnight.strftime("%Y-%m-%d")
        end_naive = start.replace(tzinfo=None) + timedelta(days=1)
    elif period is Period.week:
        start = midnight - timedelta(days=midnight.weekday())
        iso = start.isocalendar()
        name = f"{iso.year}-W{iso.week:02d}"
        end_naive = start.replace(tzinfo=None) + timedelta(days=7)
    else:
        start, name = midnight.replace(day=1), midnight.strftime("%Y-%m")
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        end_naive = start.replace(tzinfo=None, year=year, month=month)
    # Wall-clock arithmetic, then the zone, then UTC: a day across a DST change is 23
    # or 25 h, which subtracting two datetimes of one zone would not show.
    start = start.replace(tzinfo=None).replace(tzinfo=tz)
    return start.astimezone(UTC), end_naive.replace(tzinfo=tz).astimezone(UTC), name


def evaluate(rule: BudgetRule, inputs: AlertInputs, at: datetime) -> list[Observation]:
    """The budget's conditions that hold at ``at``."""
    group_by = [d.value for d in rule.group_by]
    match = {d.value: v for d, v in rule.match.items()}
    start, end, name = period_bounds(at, rule.period, rule.timezone)
    length = end - start
    spent = inputs.sums(group_by, match, start, at)
    out: list[Observation] = []
    for key, sums in spent.items():
        labels = dict(zip(group_by, key, strict=True))
        overrun = overrun_at(sums.cost, rule.amount, start, at, end)
        details = {
            "period": name,
            "spent": str(sums.cost),
            "budget": str(rule.amount),
            "forecast_overrun_at": overrun.isoformat() if overrun else "",
            "unpriced_calls": str(sums.unpriced_calls),
            **lower_bound(sums.unpriced_calls, sums.calls),
        }
        for threshold in rule.thresholds:
            level = rule.amount * threshold
            if sums.cost >= level:
                out.append(
                    Observation(
                        {**labels, "threshold": str(threshold), "period": name},
                        value=sums.cost,
                        expected=level,
                        impact=max(sums.cost - rule.amount, Decimal(0)),
                        details=details,
                    )
                )
    for window in rule.burn_windows:
        long = inputs.sums(group_by, match, at - window.long, at)
        short = inputs.sums(group_by, match, at - window.short, at)
        for key, sums in long.items():
            fast = short.get(key)
            if fast is None:
                continue
            long_rate = burn_rate(sums.cost, rule.amount, window.long, length)
            short_rate = burn_rate(fast.cost, rule.amount, window.short, length)
            if long_rate >= window.factor and short_rate >= window.factor:
                labels = dict(zip(group_by, key, strict=True))
                # To the nano-unit, as prices are given: not 28 digits of a division.
                pace = (
                    rule.amount
                    * Decimal(window.long.total_seconds())
                    / Decimal(length.total_seconds())
                ).quantize(_NANO)
                tag = f"{format_duration(window.long)}/{format_duration(window.short)}"
                out.append(
                    Observation(
                        {**labels, "burn_window": tag},
                        value=long_rate.quantize(_MICRO),
                        expected=window.factor,
                        impact=sums.cost - pace,
                        details={
                            "short_window_burn_rate": str(short_rate.quantize(_MICRO)),
                            "window_spend": str(sums.cost),
                            "period": name,
                            # A burn rate of known cost only: a lower bound too.
                            **lower_bound(sums.unpriced_calls, sums.calls),
                        },
                    )
                )
    return out
