"""``kind: outcome_regression``: cost per accepted outcome, recent against baseline,
fired only outside the noise.

Decided tasks (outcome known, or outcome window closed by the evaluation time) first
seen in the ``recent`` window before the evaluation are compared with those of the
``baseline`` window before it, per label set, with the interval ``costflow compare``
computes (:func:`pipeline.query.noise.compare_arms`: the delta-method standard error
of a ratio of sums). It fires when the recent cost per accepted outcome is higher
beyond the 95% interval, by at least ``min_ratio``, with at least ``min_accepted``
accepted outcomes on each side. The money at stake: what the recent accepted outcomes
cost above the baseline rate.

A task with a call the price book could not price counts that call as 0: the recent
figure is then a lower bound (``details.value_bound``, ``details.incomplete``), and
a baseline with such tasks is low too (``details.baseline_incomplete``: the rise may
be overstated).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipeline.alert_identity import lower_bound
from pipeline.alerts.rules import Duration, RuleBase
from pipeline.alerts.state import Observation
from pipeline.alerts.task_labels import check_task_labels
from pipeline.query.alert_inputs import AlertInputs
from pipeline.query.noise import A_MORE, ArmSums, compare_arms

_MICRO = Decimal("0.000001")


def _bounds(now: ArmSums, before: ArmSums) -> dict[str, str]:
    """Which figures count unpriced calls as 0 (see the module docstring)."""
    out = lower_bound(now.unpriced_tasks, now.tasks,
                      "recent tasks have a call without a price (counted as 0)",
                      "the cost per accepted outcome")  # fmt: skip
    if before.unpriced_tasks:
        out["baseline_incomplete"] = (
            f"{before.unpriced_tasks} of {before.tasks} baseline tasks have a call without a "
            "price (counted as 0): the baseline cost per accepted outcome is low by their "
            "cost, so the rise may be overstated; price them and run `costflow reprice`"
        )
    return out


class OutcomeRegressionRule(RuleBase):
    kind: Literal["outcome_regression"] = "outcome_regression"
    recent: Duration = Field(default="1d", validate_default=True)
    baseline: Duration = Field(default="7d", validate_default=True)
    min_ratio: Annotated[Decimal, Field(ge=1)] = Decimal("1.2")
    min_accepted: Annotated[int, Field(ge=2)] = 30

    @model_validator(mode="after")
    def _task_labels(self) -> OutcomeRegressionRule:
        check_task_labels([*self.group_by, *self.match], self.kind)
        return self


def evaluate(rule: OutcomeRegressionRule, inputs: AlertInputs, at: datetime) -> list[Observation]:
    """Label sets whose recent cost per accepted outcome rose beyond the noise."""
    group_by = [d.value for d in rule.group_by]
    match = {d.value: v for d, v in rule.match.items()}
    split = at - rule.recent
    recent = inputs.decided_tasks(group_by, match, split, at, at)
    base = inputs.decided_tasks(group_by, match, split - rule.baseline, split, at)
    out: list[Observation] = []
    for key, now in recent.items():
        before = base.get(key)
        if before is None:
            continue
        diff = compare_arms(now, before, rule.min_accepted)
        r_now, r_before = now.cost_per_accepted_outcome, before.cost_per_accepted_outcome
        if diff.verdict != A_MORE or r_now is None or not r_before:
            continue
        if r_now < r_before * rule.min_ratio:
            continue
        out.append(
            Observation(
                dict(zip(group_by, key, strict=True)),
                value=r_now.quantize(_MICRO),
                expected=r_before.quantize(_MICRO),
                impact=((r_now - r_before) * now.accepted).quantize(_MICRO),
                details={
                    "recent_accepted": str(now.accepted),
                    "baseline_accepted": str(before.accepted),
                    "interval_low": f"{diff.low:.6f}",
                    "interval_high": f"{diff.high:.6f}",
                    **_bounds(now, before),
                },
            )
        )
    return out
