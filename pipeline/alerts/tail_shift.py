"""``kind: tail_shift``: the cost-per-task tail moved up.

From the daily histograms of cost per task (1% bins, ``task_cost_histogram_daily``):
the baseline's ``quantile`` (default p95) is the bin holding its nearest-rank task.
Under no change, a recent task lands above that bin with probability at most
``1 - quantile``; with ``k`` of ``n`` recent tasks above it, the one-sided binomial
test gives ``p = P(X >= k)``. It fires when ``p < alpha``, the recent quantile is at
least ``min_ratio`` times the baseline's, and there are ``min_tasks`` recent tasks.
Windows are whole UTC days before the evaluation's day (a day is judged once over).
The money at stake: what the recent tasks above the baseline quantile cost beyond it.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipeline.alerts.rules import RuleBase
from pipeline.alerts.state import Observation
from pipeline.alerts.stats import binomial_upper_tail
from pipeline.alerts.task_labels import check_task_labels
from pipeline.query.alert_inputs import AlertInputs

BIN_BASE = 1.01  # task_cost_histogram_daily: floor(ln(cost) / ln(1.01))
_MICRO = Decimal("0.000001")


class TailShiftRule(RuleBase):
    kind: Literal["tail_shift"] = "tail_shift"
    quantile: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    recent_days: Annotated[int, Field(ge=1, le=90)] = 1
    baseline_days: Annotated[int, Field(ge=1, le=365)] = 14
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.01
    min_ratio: Annotated[float, Field(ge=1)] = 1.2
    min_tasks: Annotated[int, Field(ge=1)] = 50

    @model_validator(mode="after")
    def _task_labels(self) -> TailShiftRule:
        check_task_labels([*self.group_by, *self.match], self.kind)
        return self


def quantile_bin(bins: dict[int, tuple[int, Decimal]], q: float) -> tuple[int, int]:
    """(the bin of the nearest-rank task at quantile ``q``, tasks in all bins)."""
    total = sum(n for n, _ in bins.values())
    rank = max(1, math.ceil(q * total))
    seen = 0
    for b in sorted(bins):
        seen += bins[b][0]
        if seen >= rank:
            return b, total
    raise ValueError("quantile of an empty histogram")


def bin_floor(b: int) -> Decimal:
    """The lowest cost of bin ``b`` (0 for the bin of tasks that cost nothing)."""
    return Decimal(0) if b == -32768 else Decimal(str(BIN_BASE**b)).quantize(_MICRO)


def evaluate(rule: TailShiftRule, inputs: AlertInputs, at: datetime) -> list[Observation]:
    """Label sets whose recent tail of cost per task moved above the baseline's."""
    group_by = [d.value for d in rule.group_by]
    match = {d.value: v for d, v in rule.match.items()}
    today = at.date()
    split = today - timedelta(days=rule.recent_days)
    recent = inputs.cost_histogram(group_by, match, split, today)
    base = inputs.cost_histogram(group_by, match, split - timedelta(days=rule.baseline_days),
                                 split)  # fmt: skip
    out: list[Observation] = []
    for key, bins in recent.items():
        if key not in base:
            continue
        base_bin, _ = quantile_bin(base[key], rule.quantile)
        recent_bin, n = quantile_bin(bins, rule.quantile)
        if n < rule.min_tasks:
            continue
        above = [(count, cost) for b, (count, cost) in bins.items() if b > base_bin]
        k = sum(count for count, _ in above)
        p = binomial_upper_tail(k, n, 1 - rule.quantile)
        ratio = BIN_BASE ** (recent_bin - base_bin)
        if p >= rule.alpha or ratio < rule.min_ratio:
            continue
        threshold = bin_floor(base_bin + 1)  # the first cost above the baseline's bin
        excess = sum((cost for _, cost in above), Decimal(0)) - threshold * k
        out.append(
            Observation(
                dict(zip(group_by, key, strict=True)),
                value=bin_floor(recent_bin),
                expected=bin_floor(base_bin),
                impact=excess.quantize(_MICRO),
                details={
                    "quantile": str(rule.quantile),
                    "recent_tasks": str(n),
                    "tasks_above_baseline": str(k),
                    "p_value": f"{p:.2e}",
                    "window": f"{split.isoformat()}..{today.isoformat()}",
                },
            )
        )
    return out
