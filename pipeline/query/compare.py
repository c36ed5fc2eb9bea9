"""``costflow compare``: the decision template for a scenario, and A against B.

Arms are models (tasks that used the model; call-level figures from the calls
the scenario made with it) or experiment labels (``attributes.experiment`` on
tasks). The table reads only pre-aggregated tables; the A/B difference reads
the decided tasks of the two arms (outcome known or window closed) from the
task table, because its noise estimate needs per-task sums of squares.
Two model arms are made disjoint: tasks that used A and not B against tasks
that used B and not A, so that neither arm contains the other's tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations
from typing import Any, Literal

from pipeline.query.analytics import Slice
from pipeline.query.noise import ArmSums, Difference, compare_arms

Dimension = Literal["model", "experiment"]

# The bin rule of v_model_calls_daily (sql/0006_analytics.sql), as costflow_bin_at_v1.
_CALLS_BY_MODEL = """
SELECT
    c.model,
    c.calls,
    c.unpriced_calls,
    c.raw_token_cost,
    c.cost,
    c.retry_calls / c.calls,
    if(c.judged = 0, NULL, c.passed / c.judged),
    if(l.n = 0, NULL,
       costflow_bin_at_v1(l.bins, l.n, 50).3 / costflow_bin_at_v1(l.bins, l.n, 50).2),
    if(l.n = 0, NULL,
       costflow_bin_at_v1(l.bins, l.n, 95).3 / costflow_bin_at_v1(l.bins, l.n, 95).2)
FROM
(
    SELECT model,
        sum(h.calls) AS calls,
        sum(h.unpriced_calls) AS unpriced_calls,
        sum(h.cost_total) AS cost,
        sum(h.cost_total) - sum(h.cost_cache_read) - sum(h.cost_cache_write)
            + sum(h.cost_cache_read_uncached) + sum(h.cost_cache_write_uncached) AS raw_token_cost,
        sumIf(h.calls, h.is_retry = 1) AS retry_calls,
        sumIf(h.calls, h.status IN ('ok', 'invalid_output')) AS judged,
        sumIf(h.calls, h.status = 'ok') AS passed
    FROM call_costs_hourly AS h
    WHERE {calls_condition}
    GROUP BY model
    HAVING calls != 0
) AS c
LEFT JOIN
(
    SELECT model, arraySort(b -> b.1, groupArray((latency_bin, n_bin, ms))) AS bins,
        sum(n_bin) AS n
    FROM
    (
        SELECT model, latency_bin, sum(calls) AS n_bin, sum(latency_ms) AS ms
        FROM call_latency_daily
        WHERE {latency_condition}
        GROUP BY model, latency_bin
        HAVING n_bin != 0
    )
    GROUP BY model
) AS l USING (model)
"""

# Owners from the task labels (calls often lack one).
_ARMS = """
SELECT arm, sum(tasks), sum(accepted), sum(pending), sum(total_cost),
    arraySort(groupUniqArray(owner))
FROM v_arm_outcomes_daily
WHERE dimension = %(dimension)s AND {condition}
GROUP BY arm
"""

# Decided tasks only (an arm's pending tasks would count as not accepted yet), summed
# per set of arms: any two arms' sums, and the choice of the pair, follow from these
# groups without reading the tasks again.
_DECIDED_GROUPS = """
SELECT {arms}, count(), countIf(outcome = 'accepted'), sum(total_cost),
    sumIf(total_cost, outcome = 'accepted'), sum(toFloat64(total_cost) * toFloat64(total_cost))
FROM tasks FINAL
WHERE {condition} AND (outcome != '' OR outcome_deadline <= now64(3))
GROUP BY {arms}
"""
# The arms a task belongs to: every model it used, or its label if it has one.
_ARMS_OF_TASK = {"model": "models", "experiment": "if(experiment = '', [], [experiment])"}
# Calls without a complete price in each arm's tasks: their figures are lower bounds.
_UNPRICED_BY_ARM = """
SELECT arm, sum(unpriced_calls)
FROM tasks FINAL
ARRAY JOIN {arms} AS arm
WHERE {condition} AND unpriced_calls > 0
GROUP BY arm
"""
Groups = list[tuple[frozenset[str], ArmSums]]


@dataclass(frozen=True)
class ArmLine:
    arm: str
    tasks: int
    accepted: int
    pending: int
    task_cost: Decimal
    owners: tuple[str, ...] = ()
    # Calls without a complete price in the arm's tasks: task_cost and cost per
    # accepted outcome are then lower bounds.
    unpriced_calls: int = 0
    # Call-level, models only (None for experiment arms).
    calls: int | None = None
    # Of them, calls of the model itself without a complete price (the call-level
    # costs are then lower bounds).
    unpriced_model_calls: int = 0
    raw_token_cost: Decimal | None = None
    cache_adjusted_cost: Decimal | None = None
    retry_rate: float | None = None
    quality_pass_rate: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.tasks if self.tasks else None

    @property
    def cost_per_accepted_outcome(self) -> Decimal | None:
        return self.task_cost / self.accepted if self.accepted else None


@dataclass(frozen=True)
class Comparison:
    dimension: Dimension
    arms: list[ArmLine]
    a: str | None
    b: str | None
    sums: tuple[ArmSums, ArmSums] | None
    difference: Difference | None


def arm_table(client: Any, dimension: Dimension, where: Slice) -> list[ArmLine]:
    condition, params = where.where("day")
    rows = client.query(
        _ARMS.format(condition=condition), parameters={**params, "dimension": dimension}
    ).result_rows
    task_condition, task_params = where.where("toDate(first_event_at)")
    query = _UNPRICED_BY_ARM.format(arms=_ARMS_OF_TASK[dimension], condition=task_condition)
    unpriced = dict(client.query(query, parameters=task_params).result_rows)
    lines = {
        arm: ArmLine(arm, n, accepted, pending, cost, tuple(owners), unpriced.get(arm, 0))
        for arm, n, accepted, pending, cost, owners in rows
    }
    if dimension == "model":
        calls_condition, params = where.where("toDate(hour)")
        latency_condition, _ = where.where("day")
        query = _CALLS_BY_MODEL.format(
            calls_condition=calls_condition, latency_condition=latency_condition
        )
        for model, calls, unpriced_calls, raw, cost, retry, quality, p50, p95 in client.query(
            query, parameters=params
        ).result_rows:
            base = lines.get(model) or ArmLine(model, 0, 0, 0, Decimal(0))
            lines[model] = ArmLine(
                base.arm, base.tasks, base.accepted, base.pending, base.task_cost, base.owners,
                base.unpriced_calls, calls, unpriced_calls, raw, cost, retry, quality, p50, p95,
            )  # fmt: skip
    return sorted(lines.values(), key=lambda line: (-line.tasks, line.arm))


def decided_groups(client: Any, dimension: Dimension, where: Slice) -> Groups:
    condition, params = where.where("toDate(first_event_at)")
    query = _DECIDED_GROUPS.format(arms=_ARMS_OF_TASK[dimension], condition=condition)
    return [
        (frozenset(arms), ArmSums(*sums))
        for arms, *sums in client.query(query, parameters=params).result_rows
    ]


def only(groups: Groups, a: str, b: str) -> ArmSums:
    """Tasks in arm ``a`` and not in ``b``: disjoint arms, whatever tasks share."""
    return sum((s for arms, s in groups if a in arms and b not in arms), ArmSums.none())


def default_pair(groups: Groups) -> tuple[str, str] | None:
    """The pair whose disjoint arms are largest: the two largest experiment arms; for
    models, a model every task uses compares to nothing."""
    best, best_size = None, 0
    for a, b in combinations(sorted(set().union(*(arms for arms, _ in groups))), 2):
        size = min(only(groups, a, b).tasks, only(groups, b, a).tasks)
        if size > best_size:
            best, best_size = (a, b), size
    return best


def compare(
    client: Any, dimension: Dimension, where: Slice, a: str | None = None, b: str | None = None
) -> Comparison:
    if where.scenario_id is None:
        raise ValueError("compare runs for one scenario: pass --scenario")
    arms = arm_table(client, dimension, where)
    groups = decided_groups(client, dimension, where)
    if a is None or b is None:
        pair = default_pair(groups)
        if pair is None:
            return Comparison(dimension, arms, None, None, None, None)
        a, b = pair
    sums = (only(groups, a, b), only(groups, b, a))
    return Comparison(dimension, arms, a, b, sums, compare_arms(*sums))
