"""``kind: task_budget``: the runaway-task guard.

One alert per task (label ``task_id``) whose running cost reaches ``max_cost``, or
``k`` times its scenario's p99 of cost per task over the previous ``baseline_days``
(from the daily histograms), or whose calls reach ``max_calls``, while the task is
active (an event within ``active_for``). It fires once per task and rule: the
instance's state lives in ``alert_events``, so a restart of ``alerts run`` does not
fire it again, and it resolves when the task goes quiet.

Stage 1 checks the absolute caps as calls arrive (:mod:`pipeline.join.task_caps`);
``alerts run`` checks ``p99_multiple`` and adopts, keeps and resolves the rest. Every
figure is the task's *as of the evaluation time*: the task table names the tasks over
a cap now, and their call rows before that time give the running cost and calls then
and the time each cap was reached (``details.crossed_at``), so a backtest or
``--at`` run never reports what happened after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipeline.alert_identity import lower_bound, task_alert_labels
from pipeline.alerts.rules import Money, PositiveDuration, RuleBase
from pipeline.alerts.state import Observation
from pipeline.alerts.tail_shift import BIN_BASE, quantile_bin
from pipeline.alerts.task_labels import check_task_labels
from pipeline.query.alert_inputs import AlertInputs, CallPoint

_MICRO = Decimal("0.000001")


class TaskBudgetRule(RuleBase):
    kind: Literal["task_budget"] = "task_budget"
    max_cost: Annotated[Money, Field(gt=0)] | None = None
    max_calls: Annotated[int, Field(ge=1)] | None = None
    # k x the scenario's p99 of cost per task (needs baseline_days of history).
    p99_multiple: Annotated[Decimal, Field(gt=1)] | None = None
    baseline_days: Annotated[int, Field(ge=1, le=90)] = 7
    min_baseline_tasks: Annotated[int, Field(ge=1)] = 100
    active_for: PositiveDuration = Field(default="1h", validate_default=True)

    @model_validator(mode="after")
    def _a_cap(self) -> TaskBudgetRule:
        check_task_labels([*self.group_by, *self.match], self.kind)
        if self.max_cost is None and self.max_calls is None and self.p99_multiple is None:
            raise ValueError("give max_cost, max_calls or p99_multiple")
        return self


def scenario_caps(rule: TaskBudgetRule, inputs: AlertInputs, at: datetime) -> dict[str, Decimal]:
    """Per scenario, ``p99_multiple`` x the upper bound of the bin holding its p99 task
    over the ``baseline_days`` whole days before ``at``'s (scenarios with fewer than
    ``min_baseline_tasks`` tasks get none)."""
    if rule.p99_multiple is None:
        return {}
    match = {d.value: v for d, v in rule.match.items()}
    today = at.date()
    hist = inputs.cost_histogram(["scenario_id"], match,
                                 today - timedelta(days=rule.baseline_days), today)  # fmt: skip
    caps = {}
    for (scenario,), bins in hist.items():
        b, n = quantile_bin(bins, 0.99)
        if n >= rule.min_baseline_tasks and b != -32768:
            p99 = Decimal(str(BIN_BASE ** (b + 1))).quantize(_MICRO)
            caps[scenario] = (rule.p99_multiple * p99).quantize(_MICRO)
    return caps


@dataclass(frozen=True)
class AsOf:
    """A task's running totals up to a time, and when each cap was first reached."""

    calls: int
    unpriced_calls: int
    cost: Decimal
    last_call_at: datetime | None
    crossed: dict[str, datetime]


def running(points: list[CallPoint], caps: dict[str, Decimal]) -> AsOf:
    """Sum a task's call rows (``ts`` order) and find the time each cap of ``caps``
    (``max_cost``, ``p99_multiple``: money; ``max_calls``: calls) was first reached:
    the rows of one ``ts`` together (a reprice's two rows share it)."""
    calls = unpriced = 0
    cost = Decimal(0)
    last: datetime | None = None
    crossed: dict[str, datetime] = {}
    for i, point in enumerate(points):
        calls, unpriced, cost = (
            calls + point.calls,
            unpriced + point.unpriced_calls,
            cost + point.cost,
        )
        if point.calls > 0:
            last = point.ts
        if i + 1 < len(points) and points[i + 1].ts == point.ts:
            continue
        for reason, limit in caps.items():
            value = Decimal(calls) if reason == "max_calls" else cost
            if reason not in crossed and value >= limit:
                crossed[reason] = point.ts
    return AsOf(calls, unpriced, cost, last, crossed)


def evaluate(rule: TaskBudgetRule, inputs: AlertInputs, at: datetime) -> list[Observation]:
    """Tasks over a cap at ``at`` and active then, one observation each: the cap
    reached first, the figures as of ``at``."""
    match = {d.value: v for d, v in rule.match.items()}
    p99 = scenario_caps(rule, inputs, at)
    costs = [c for c in [rule.max_cost, *p99.values()] if c is not None]
    lines = inputs.costly_tasks(match, at - rule.active_for, at,
                                min(costs) if costs else None, rule.max_calls)  # fmt: skip
    points = inputs.task_calls([task.task_id for task in lines], at)
    out = []
    for task in lines:
        caps = {reason: limit for reason, limit in (
            ("max_cost", rule.max_cost), ("p99_multiple", p99.get(task.scenario_id)),
            ("max_calls", Decimal(rule.max_calls) if rule.max_calls is not None else None),
        ) if limit is not None}  # fmt: skip
        now = running(points.get(task.task_id, []), caps)
        # Active: any event within active_for. The task row's last event when it is
        # before ``at``; else (a replay of the past) the last call before ``at``.
        seen = task.last_event_at if task.last_event_at < at else now.last_call_at
        if not now.crossed or seen is None or seen < at - rule.active_for:
            continue
        reason = min(now.crossed, key=lambda r: now.crossed[r])  # first reached (stable)
        by_calls = reason == "max_calls"
        limit = caps[reason]
        out.append(
            Observation(
                task_alert_labels(task.task_id),
                value=Decimal(now.calls) if by_calls else now.cost,
                expected=limit,
                impact=None if by_calls else max(now.cost - limit, Decimal(0)),
                details={
                    "cap": reason,
                    "crossed_at": now.crossed[reason].isoformat(),
                    "scenario_id": task.scenario_id,
                    "owner": task.owner,
                    "calls": str(now.calls),
                    "cost": str(now.cost),
                    "unpriced_calls": str(now.unpriced_calls),
                    "last_event_at": seen.isoformat(),
                    **({} if by_calls else lower_bound(now.unpriced_calls, now.calls)),
                },
            )
        )
    return out
