"""``kind: task_budget``: the runaway-task guard.

One alert per task (label ``task_id``) whose running cost reaches ``max_cost``, or
``k`` times its scenario's p99 of cost per task over the previous ``baseline_days``
(from the daily histograms), or whose calls reach ``max_calls``, while the task is
active (an event within ``active_for``). It fires once per task and rule: the
instance's state lives in ``alert_events``, so a restart of ``alerts run`` does not
fire it again, and it resolves when the task goes quiet.

Evaluated by ``alerts run`` over the task table the sink keeps current, within a
cycle of the sink's write (the group's ``interval`` plus the sink's flush): a
loop of calls is caught while it runs, not in the next day's report.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipeline.alert_identity import lower_bound, task_alert_labels
from pipeline.alerts.rules import Duration, Money, RuleBase
from pipeline.alerts.state import Observation
from pipeline.alerts.tail_shift import BIN_BASE, quantile_bin
from pipeline.alerts.task_labels import check_task_labels
from pipeline.query.alert_inputs import AlertInputs, TaskLine

_MICRO = Decimal("0.000001")


class TaskBudgetRule(RuleBase):
    kind: Literal["task_budget"] = "task_budget"
    max_cost: Annotated[Money, Field(gt=0)] | None = None
    max_calls: Annotated[int, Field(ge=1)] | None = None
    # k x the scenario's p99 of cost per task (needs baseline_days of history).
    p99_multiple: Annotated[Decimal, Field(gt=1)] | None = None
    baseline_days: Annotated[int, Field(ge=1, le=90)] = 7
    min_baseline_tasks: Annotated[int, Field(ge=1)] = 100
    active_for: Duration = Field(default="1h", validate_default=True)

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


def evaluate(rule: TaskBudgetRule, inputs: AlertInputs, at: datetime) -> list[Observation]:
    """Active tasks over a cap, one observation each."""
    match = {d.value: v for d, v in rule.match.items()}
    caps = scenario_caps(rule, inputs, at)
    costs = [c for c in [rule.max_cost, *caps.values()] if c is not None]
    lines = inputs.costly_tasks(match, at - rule.active_for, at,
                                min(costs) if costs else None, rule.max_calls)  # fmt: skip
    out = []
    for task in lines:
        reason, limit = _over(rule, task, caps.get(task.scenario_id))
        if reason is None:
            continue
        cost_cap = reason != "max_calls"
        out.append(
            Observation(
                task_alert_labels(task.task_id),
                value=task.cost if reason != "max_calls" else Decimal(task.calls),
                expected=limit,
                impact=max(task.cost - limit, Decimal(0)) if reason != "max_calls" else None,
                details={
                    "cap": reason,
                    "scenario_id": task.scenario_id,
                    "owner": task.owner,
                    "calls": str(task.calls),
                    "cost": str(task.cost),
                    "unpriced_calls": str(task.unpriced_calls),
                    "last_event_at": task.last_event_at.isoformat(),
                    **(lower_bound(task.unpriced_calls, task.calls) if cost_cap else {}),
                },
            )
        )
    return out


def _over(
    rule: TaskBudgetRule, task: TaskLine, p99_cap: Decimal | None
) -> tuple[str | None, Decimal]:
    if rule.max_cost is not None and task.cost >= rule.max_cost:
        return "max_cost", rule.max_cost
    if p99_cap is not None and task.cost >= p99_cap:
        return "p99_multiple", p99_cap
    if rule.max_calls is not None and task.calls >= rule.max_calls:
        return "max_calls", Decimal(rule.max_calls)
    return None, Decimal(0)
