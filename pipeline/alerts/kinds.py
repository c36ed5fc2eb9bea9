"""Every rule kind, registered in :data:`pipeline.alerts.RULE_KINDS`, and the
evaluator of each."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pipeline.alerts import (
    RULE_KINDS,
    anomaly,
    budget,
    outcome_regression,
    pipeline_health,
    tail_shift,
    task_budget,
    unpriced,
)
from pipeline.alerts.state import Observation
from pipeline.query.alert_inputs import AlertInputs

Evaluator = Callable[[Any, AlertInputs, datetime], list[Observation]]

EVALUATORS: dict[str, Evaluator] = {
    "budget": budget.evaluate,
    "anomaly": anomaly.evaluate,
    "unpriced": unpriced.evaluate,
    "outcome_regression": outcome_regression.evaluate,
    "tail_shift": tail_shift.evaluate,
    "task_budget": task_budget.evaluate,
}
RULE_KINDS.update(
    budget=budget.BudgetRule,
    anomaly=anomaly.AnomalyRule,
    unpriced=unpriced.UnpricedRule,
    outcome_regression=outcome_regression.OutcomeRegressionRule,
    tail_shift=tail_shift.TailShiftRule,
    task_budget=task_budget.TaskBudgetRule,
    pipeline_lag=pipeline_health.PipelineLagRule,
    dead_letters=pipeline_health.DeadLettersRule,
)


def evaluate(
    rule: Any, inputs: AlertInputs, at: datetime, now: datetime | None = None
) -> list[Observation]:
    """The observations of ``rule`` at the data's time ``at`` (its kind's evaluator);
    ``now``: the clock, for the pipeline-health kinds (default ``at``: a backtest)."""
    clock = now if now is not None else at
    if rule.kind == "pipeline_lag":
        return pipeline_health.evaluate_lag(rule, at, clock)
    if rule.kind == "dead_letters":
        return pipeline_health.evaluate_dead_letters(rule, inputs, clock)
    return EVALUATORS[rule.kind](rule, inputs, at)


# The labels a kind adds to an alert's own (group_by values, the rule's labels and
# costflow's alertname, severity, costflow_kind); restated windows add restated_window.
KIND_LABELS: dict[str, frozenset[str]] = {
    "budget": frozenset({"threshold", "period", "burn_window"}),
    "task_budget": frozenset({"task_id"}),
    "unpriced": frozenset({"provider", "model", "condition"}),
    "dead_letters": frozenset({"reason"}),
}
