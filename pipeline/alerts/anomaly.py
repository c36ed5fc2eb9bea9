"""``kind: anomaly``: an hourly metric per label set against its seasonal baseline.

The hour judged is, for call metrics, the last whole hour before the evaluation time
(an hour is judged once its data is in). Its baseline is the same hour of the week
over the previous ``weeks`` weeks; with fewer than ``min_history`` of those, the same
hour of the previous seven days; with fewer still, no alert (too little history).
Hours before a label set's first call (first task, for task metrics) are not history;
hours after it without calls count as zero for counts, spend and the call rates. A
ratio whose denominator is empty in an hour (no prompt tokens, no tasks, no accepted
outcome, no decided task) has no value there: such an hour is neither judged nor
history. The comparison is a robust z-score in log space (see
:func:`pipeline.alerts.stats.robust_log_baseline`), gated by a minimum absolute
impact and a minimum ratio, so a quiet series does not page for cents.

Task metrics (``cost_per_task``, ``cost_per_accepted_outcome``, ``waste_share``)
read tasks by the hour of their first event (``task_costs_hourly``), with the task's
labels. The outcome metrics count decided tasks only, as ``outcome_regression`` does:
an outcome known, or the outcome window closed by the evaluation time. A task is
decided at the latest at its ``outcome_deadline``, the first whole hour after its
last event + the outcome window, so an hour judged at its close would see mostly
the few tasks that decided fast. Task metrics therefore judge the last whole hour
ending at least ``decision_lag`` (default ``1d``, the pipeline's default outcome
window ``WorkerSettings.outcome_window_s``) before the evaluation time: by then every
task of that hour whose last event fell in the hour is decided (its deadline is at
most the hour's end + the window, in whole hours), so the figures are the hour's
whole set of tasks, exact as of the evaluation, not a fast-deciding subset. Tasks
still undecided then (running past their first hour, or a scenario with a longer
window) are counted in ``details.undecided_tasks`` (left out of the outcome metrics,
at their cost so far in ``cost_per_task``). A fixed lag, rather than "the last hour
whose tasks are all decided", keeps one judged hour per rule for every label set (one
judgement per window, see :mod:`pipeline.alerts.restatements`) and cannot be held
back forever by one task that never ends; what changes later (a late outcome, a late
call, a reprice) re-judges the hour through its task digest. Baseline hours are the
same hours before the judged one, decided as of the same evaluation time.

``impact`` is money: (actual - expected) x the hour's tasks, accepted outcomes or
decided task cost; for metrics whose money cannot be derived exactly from the stored
figures it is empty and ``details.impact`` says why.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipeline.alert_identity import lower_bound
from pipeline.alerts.rules import Duration, Money, RuleBase
from pipeline.alerts.state import Observation
from pipeline.alerts.stats import robust_log_baseline
from pipeline.alerts.task_labels import check_task_labels
from pipeline.query.alert_inputs import HOUR, AlertInputs, Sums, TaskHour, floor_hour

_MICRO = Decimal("0.000001")


class Metric(StrEnum):
    spend = "spend"  # known cost, in the price book's currency
    calls = "calls"
    tokens = "tokens"
    retry_rate = "retry_rate"  # retried calls / calls
    unpriced_share = "unpriced_share"  # unpriced calls / calls
    # cache-read tokens / prompt tokens (uncached input + cache read + cache writes),
    # v_cache_economics_daily's hit rate. A drop is what costs money: `direction: down`.
    cache_hit_rate = "cache_hit_rate"
    cost_per_task = "cost_per_task"  # the hour's tasks' cost / tasks
    # decided tasks' cost / accepted outcomes (decided tasks only)
    cost_per_accepted_outcome = "cost_per_accepted_outcome"
    # cost of rejected, failed and unresolved tasks / decided tasks' cost
    waste_share = "waste_share"


TASK_METRICS = frozenset({Metric.cost_per_task, Metric.cost_per_accepted_outcome,
                          Metric.waste_share})  # fmt: skip
DECIDED_METRICS = frozenset({Metric.cost_per_accepted_outcome, Metric.waste_share})
# Metrics in money: value and expected are Decimal, quantized like spend.
MONEY_METRICS = frozenset({Metric.spend, Metric.cost_per_task, Metric.cost_per_accepted_outcome})


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
    Metric.cache_hit_rate: 0.01,
    # A tenth of a cent: tasks and outcomes cost cents, not the dollars of an hour.
    Metric.cost_per_task: 0.001,
    Metric.cost_per_accepted_outcome: 0.001,
    Metric.waste_share: 0.01,
}

# Why an anomaly of these metrics has no money at stake (details.impact).
NO_IMPACT = {
    Metric.calls: (
        "a count of calls is not money: what the extra calls cost depends on their "
        "models and sizes (watch metric spend for the money)"
    ),
    Metric.tokens: (
        "tokens are not money without each model's rate per token class (watch metric "
        "spend for the money)"
    ),
    Metric.retry_rate: (
        "what the extra retries cost is not stored apart: the hour's spend times the "
        "extra share would assume a retry costs an average call (watch metric spend)"
    ),
    Metric.unpriced_share: (
        "calls without a price have no known cost: the money they stand for is what is missing"
    ),
    Metric.cache_hit_rate: (
        "the money a changed hit rate makes needs each model's input and cache-read "
        "rates, and the hour's prompt tokens are summed over models "
        "(v_cache_economics_daily has the cache savings per model and day)"
    ),
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
    # The hour's calls (for task metrics: the calls of the hour's tasks judged).
    min_calls: Annotated[int, Field(ge=0)] = 0
    # Task metrics only: the hour's tasks judged (decided ones for outcome metrics).
    min_tasks: Annotated[int, Field(ge=0)] = 0
    # Task metrics only: the hour judged ends at least this long before the evaluation
    # time, so that its tasks are decided (see the module docstring). The default is
    # the pipeline's default outcome window (COSTFLOW_WORKER_OUTCOME_WINDOW_S); set the
    # longest window of the scenarios the rule watches, rounded up to whole hours.
    decision_lag: Duration = Field(
        default="1d", validate_default=True,
        description=(
            "Task metrics: judge the last whole hour ending at least this long before the "
            "evaluation, when its tasks' outcome windows have closed (default: the "
            "pipeline's default outcome window)"
        ),
    )  # fmt: skip

    @model_validator(mode="after")
    def _task_metric_labels(self) -> AnomalyRule:
        if self.metric in TASK_METRICS:
            check_task_labels([*self.group_by, *self.match], f"{self.kind} {self.metric.value}")
            return self
        if self.min_tasks:
            raise ValueError(f"min_tasks applies to task metrics only, not {self.metric.value}")
        if "decision_lag" in self.model_fields_set:
            raise ValueError(f"decision_lag applies to task metrics only, not {self.metric.value}")
        return self


def judged_hour(rule: AnomalyRule, at: datetime) -> datetime:
    """The start of the hour ``rule`` judges at the evaluation time ``at``: the last
    whole hour before ``at`` for call metrics; for task metrics the last whole hour
    ending at least ``decision_lag`` before ``at``."""
    lag = rule.decision_lag if rule.metric in TASK_METRICS else timedelta(0)
    return floor_hour(at - lag) - HOUR


Point = Sums | TaskHour


def metric_value(metric: Metric, point: Point) -> float | None:
    """The metric of an hour's sums (call metrics) or tasks (task metrics); None when
    a ratio's denominator is empty. Call rates are 0 for an hour without calls."""
    if isinstance(point, TaskHour):
        if metric is Metric.cost_per_task:
            return float(point.cost / point.tasks) if point.tasks else None
        if metric is Metric.cost_per_accepted_outcome:
            return float(point.decided_cost / point.accepted) if point.accepted else None
        if point.decided_cost > 0:  # waste_share
            return float(point.waste_cost / point.decided_cost)
        return None
    if metric is Metric.spend:
        return float(point.cost)
    if metric is Metric.calls:
        return float(point.calls)
    if metric is Metric.tokens:
        return float(point.tokens)
    if metric is Metric.cache_hit_rate:
        return point.cache_read_tokens / point.prompt_tokens if point.prompt_tokens else None
    if not point.calls:
        return 0.0
    part = point.retried_calls if metric is Metric.retry_rate else point.unpriced_calls
    return part / point.calls


def _money(metric: Metric, point: Point) -> tuple[Decimal, int]:
    """The hour's money and its count for a money-per-unit metric, so that the metric
    is money / count: (cost, tasks), (decided cost, accepted)."""
    assert isinstance(point, TaskHour)
    if metric is Metric.cost_per_task:
        return point.cost, point.tasks
    return point.decided_cost, point.accepted


def _judged_count(metric: Metric, point: Point) -> tuple[int, int]:
    """(calls, tasks) of what the hour's figure is computed from, for the minimums."""
    if isinstance(point, Sums):
        return point.calls, 0
    if metric in DECIDED_METRICS:
        return point.decided_calls, point.decided
    return point.calls, point.tasks


def _incomplete(metric: Metric, current: Point, history: list[Point]) -> dict[str, str]:
    """Which figures count unpriced calls as 0 (lower bounds), and, for the task
    metrics, how many of the hour's tasks are still undecided (left out of the outcome
    metrics; at their cost so far in the cost per task)."""
    if metric is Metric.cost_per_task:
        assert isinstance(current, TaskHour)
        out = lower_bound(current.unpriced_calls, current.calls)
        pending = current.tasks - current.decided
        if pending:
            out["undecided_tasks"] = str(pending)
            note = (
                f"{pending} of {current.tasks} tasks of the hour are still inside their "
                "outcome window and count at their cost so far; the figure may change if "
                "they run on"
            )
            out["incomplete"] = "; ".join([note, *filter(None, [out.get("incomplete")])])
        return out | _baseline_incomplete(history, "expected cost per task")
    if metric in DECIDED_METRICS:
        assert isinstance(current, TaskHour)
        notes: list[str] = []
        out = {}
        pending = current.tasks - current.decided
        if pending:
            out["undecided_tasks"] = str(pending)
            notes.append(
                f"{pending} of {current.tasks} tasks of the hour are still inside their "
                "outcome window and are left out; the figure may change as their outcomes "
                "arrive"
            )
        if current.decided_unpriced_calls:
            figure = "cost per accepted outcome"
            if metric is Metric.cost_per_accepted_outcome:
                out.update(lower_bound(current.decided_unpriced_calls, current.decided_calls,
                                       "calls of the decided tasks have no price and count "
                                       "as 0", f"the {figure}"))  # fmt: skip
                notes.append(out.pop("incomplete"))
            else:
                # Waste and the decided cost both lack the calls: the share is neither
                # a lower nor an upper bound.
                notes.append(
                    f"{current.decided_unpriced_calls} of {current.decided_calls} calls of "
                    "the decided tasks have no price and count as 0 in both the waste and "
                    "the cost it is a share of; add their prices and run `costflow reprice`"
                )
        if notes:
            out["incomplete"] = "; ".join(notes)
        return out
    if metric not in MONEY_METRICS:
        return {}
    return lower_bound(current.unpriced_calls, current.calls) | _baseline_incomplete(
        history, "expected spend"
    )


def _baseline_incomplete(history: list[Point], expected: str) -> dict[str, str]:
    """``baseline_incomplete`` when baseline hours hold unpriced calls (counted as 0)."""
    unpriced = sum(h.unpriced_calls for h in history)
    if not unpriced:
        return {}
    return {
        "baseline_incomplete": f"{unpriced} calls of the baseline hours have no price and "
        f"count as 0: the {expected} is low by their cost"
    }


def history_hours(
    hour: datetime, series: dict[datetime, Point], first: datetime, weeks: int,
    min_history: int, defined: set[datetime] | None = None,
) -> list[datetime] | None:  # fmt: skip
    """The hours the baseline of ``hour`` is taken from (weekly, else daily), or None
    when there are fewer than ``min_history`` of them since ``first``. ``defined``:
    the hours where the metric has a value (None: every hour since ``first``)."""
    weekly, daily = _candidates(hour, first, weeks)
    for hours in (weekly, daily):
        usable = [h for h in hours if defined is None or h in defined]
        if len(usable) >= min_history:
            return usable
    return None


def _candidates(hour: datetime, first: datetime, weeks: int) -> tuple[list[datetime], ...]:
    """The same hour of the previous ``weeks`` weeks and of the previous 7 days, since
    ``first``."""
    weekly = [hour - timedelta(weeks=k) for k in range(1, weeks + 1)]
    daily = [hour - timedelta(days=k) for k in range(1, 8)]
    return [h for h in weekly if h >= first], [h for h in daily if h >= first]


def _series(
    rule: AnomalyRule, inputs: AlertInputs, hour: datetime, at: datetime
) -> dict[tuple[str, ...], dict[datetime, Point]]:
    group_by = [d.value for d in rule.group_by]
    match = {d.value: v for d, v in rule.match.items()}
    start = hour - timedelta(weeks=rule.weeks)
    if rule.metric in TASK_METRICS:
        tasks = inputs.task_hourly(group_by, match, start, hour + HOUR, at)
        return {k: dict(s) for k, s in tasks.items()}
    return {k: dict(s) for k, s in inputs.hourly(group_by, match, start, hour + HOUR).items()}


def evaluate(
    rule: AnomalyRule, inputs: AlertInputs, at: datetime, hour: datetime | None = None
) -> list[Observation]:
    """The label sets whose judged hour at ``at`` (:func:`judged_hour`; ``hour``: that
    hour's start instead, to judge a closed hour again) is anomalous. Task figures are
    decided as of ``at``."""
    group_by = [d.value for d in rule.group_by]
    hour = judged_hour(rule, at) if hour is None else hour
    floor = rule.floor if rule.floor is not None else DEFAULT_FLOOR[rule.metric]
    empty: Point = TaskHour() if rule.metric in TASK_METRICS else Sums()
    out: list[Observation] = []
    for key, series in _series(rule, inputs, hour, at).items():
        first = min(series)
        current = series.get(hour, empty)
        actual = metric_value(rule.metric, current)
        if actual is None:
            continue  # nothing to divide by: the hour has no value to judge
        # Hours without calls are zero for the call counts; a ratio with an empty
        # denominator has no value and is not history.
        defined = None
        if isinstance(empty, TaskHour) or rule.metric is Metric.cache_hit_rate:
            defined = {h for h, p in series.items() if metric_value(rule.metric, p) is not None}
        hours = history_hours(hour, series, first, rule.weeks, rule.min_history, defined)
        if hours is None:
            continue
        calls, tasks = _judged_count(rule.metric, current)
        if calls < rule.min_calls or tasks < rule.min_tasks:
            continue
        points = [series.get(h, empty) for h in hours]
        left_out = _left_out(rule, hour, first, hours, defined)
        history = [v for v in (metric_value(rule.metric, p) for p in points) if v is not None]
        base = robust_log_baseline(actual, history, floor, rule.min_scale)
        up = base.z >= rule.z and actual >= base.expected * rule.min_ratio
        down = -base.z >= rule.z and base.expected >= actual * rule.min_ratio
        fired = (rule.direction is not Direction.down and up) or (
            rule.direction is not Direction.up and down
        )
        if not fired:
            continue
        value, expected, impact, gap, note = _figures(rule.metric, current, actual, base.expected)
        if gap < rule.min_impact:
            continue
        out.append(
            Observation(
                dict(zip(group_by, key, strict=True)),
                value=value,
                expected=expected,
                impact=impact,
                details={
                    "hour": hour.isoformat(),
                    **({"decided_as_of": at.isoformat()} if rule.metric in TASK_METRICS else {}),
                    "z": f"{base.z:.2f}",
                    "history_hours": str(base.points),
                    "metric": rule.metric.value,
                    **note,
                    **left_out,
                    **_incomplete(rule.metric, current, points),
                },
            )
        )
    return out


# What an hour without a value lacks, per metric whose hours can lack one.
_DENOMINATOR = {
    Metric.cache_hit_rate: "no prompt tokens",
    Metric.cost_per_task: "no tasks",
    Metric.cost_per_accepted_outcome: "no accepted outcome",
    Metric.waste_share: "no decided task with a cost",
}


def _left_out(
    rule: AnomalyRule, hour: datetime, first: datetime, hours: list[datetime],
    defined: set[datetime] | None,
) -> dict[str, str]:  # fmt: skip
    """details.history_left_out: how many of the baseline's candidate hours (of the
    kind used, weekly or daily) had no value of the metric, and why."""
    if defined is None:
        return {}
    weekly, daily = _candidates(hour, first, rule.weeks)
    pool = weekly if sum(h in defined for h in weekly) >= rule.min_history else daily
    missing = [h for h in pool if h not in defined]
    if not missing:
        return {}
    return {
        "history_left_out": (
            f"{len(missing)} baseline hours had {_DENOMINATOR[rule.metric]}, so no "
            f"{rule.metric.value}, and are left out"
        )
    }


def _figures(
    metric: Metric, current: Point, actual: float, baseline: float
) -> tuple[Decimal | float, Decimal | float, Decimal | None, Decimal, dict[str, str]]:
    """value, expected, impact, the gap ``min_impact`` is compared with (the money at
    stake where there is one, else the metric's own gap), and the impact's note.

    Money is Decimal, to the micro-unit; the expected figure goes through its decimal
    text (as spend always did), so no float noise reaches a notification."""
    if metric is Metric.spend:
        assert isinstance(current, Sums)
        expected = Decimal(str(baseline)).quantize(_MICRO)
        impact = current.cost - expected
        return (
            current.cost,
            expected,
            impact,
            abs(Decimal(str(actual)) - Decimal(str(baseline))),
            {},
        )
    if metric in (Metric.cost_per_task, Metric.cost_per_accepted_outcome):
        money, count = _money(metric, current)
        expected = Decimal(str(baseline)).quantize(_MICRO)
        # (money / count - expected) x count, without rounding the actual first.
        impact = (money - expected * count).quantize(_MICRO)
        return (money / count).quantize(_MICRO), expected, impact, abs(impact), {}
    if metric is Metric.waste_share:
        assert isinstance(current, TaskHour)
        # (waste / decided cost - expected) x decided cost.
        impact = (current.waste_cost - Decimal(str(baseline)) * current.decided_cost).quantize(
            _MICRO
        )
        return actual, baseline, impact, abs(impact), {}
    gap = abs(Decimal(str(actual)) - Decimal(str(baseline)))
    return actual, baseline, None, gap, {"impact": NO_IMPACT[metric]}
