"""What the HTML report charts: daily cost per accepted outcome, the cost-per-task
histogram, cost by outcome, by role, cache economics and unpriced calls, per slice.

Reads the public views (docs/analytics.md), and two of the tables they are built on:
the histogram's (as :data:`pipeline.query.analytics.TAILS_SQL` does, for the same
reason: summing the bins straight from their table is an order of magnitude faster at
10 million tasks) and ``call_costs_hourly`` for unpriced calls by model, which no view
carries. Money comes back as ``Decimal`` (ClickHouse
``Decimal(38, 18)``, in the calls' billing currency); the renderer turns it into floats
only at the chart boundary. Filters are bound as query parameters (:class:`Slice`).
Each function raises what the client raises (the database unreachable, a view
missing before ``costflow migrate``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

from pipeline.query.analytics import Slice, Tails, tails
from pipeline.query.compare import Comparison, compare
from pipeline.query.report import ScenarioLine, health, scenario_summary

# Cost per accepted outcome of a scenario-day is the view's own rule: total / accepted,
# Decimal(38, 18) truncated; NULL when nothing was accepted that day.
_DAILY_OUTCOMES = """
SELECT day, scenario_id, sum(tasks), sum(accepted), sum(pending), sum(v.total_cost),
    if(sum(accepted) = 0, NULL, sum(v.total_cost) / sum(accepted)), sum(unpriced_calls)
FROM v_outcomes_daily AS v
WHERE {condition}
GROUP BY day, scenario_id
ORDER BY scenario_id, day
"""

_OUTCOME_COSTS = """
SELECT scenario_id, sum(tasks), sum(pending), sum(v.total_cost), sum(accepted_cost),
    sum(pending_cost), sum(rejected_cost), sum(failed_cost), sum(unresolved_cost),
    sum(unpriced_calls)
FROM v_outcomes_daily AS v
WHERE {condition}
GROUP BY scenario_id
ORDER BY scenario_id
"""

# The bounds are v_task_cost_histogram's (sql/0006_analytics.sql): [1.01^b, 1.01^(b+1)).
_HISTOGRAM = """
SELECT scenario_id, cost_bin, if(cost_bin = -32768, 0, pow(1.01, cost_bin)),
    if(cost_bin = -32768, 0, pow(1.01, cost_bin + 1)), sum(tasks) AS k, sum(h.total_cost)
FROM task_cost_histogram_daily AS h
WHERE {condition}
GROUP BY scenario_id, cost_bin
HAVING k != 0
ORDER BY scenario_id, cost_bin
"""

_ROLES = """
SELECT scenario_id, role, sum(calls), sum(v.total_cost)
FROM v_cost_by_role_daily AS v
WHERE {condition}
GROUP BY scenario_id, role
ORDER BY scenario_id, role
"""

_CACHE = """
SELECT provider, model, sum(calls), sum(cache_read_tokens), sum(cache_write_tokens),
    sum(cache_read_tokens) + sum(input_tokens) + sum(cache_write_tokens),
    sum(cache_read_savings), sum(cache_write_premium), sum(net_cache_savings)
FROM v_cache_economics_daily
WHERE {condition}
GROUP BY provider, model
ORDER BY provider, model
"""

# Calls without a complete price by the labels the calls reported and by model: the
# call views (roles, cache) count such a call at what could be priced, so their
# figures for that scenario or model are lower bounds.
_UNPRICED_BY_SCENARIO = """
SELECT scenario_id, sum(unpriced_calls) AS n
FROM v_call_overhead_daily
WHERE {condition}
GROUP BY scenario_id
HAVING n != 0
"""
_UNPRICED_BY_MODEL = """
SELECT provider, model, sum(unpriced_calls) AS n
FROM call_costs_hourly
WHERE {condition}
GROUP BY provider, model
HAVING n != 0
"""

_EXPERIMENT_SCENARIOS = """
SELECT scenario_id
FROM v_arm_outcomes_daily
WHERE dimension = 'experiment' AND {condition}
GROUP BY scenario_id
HAVING uniqExact(arm) >= 2
ORDER BY scenario_id
"""

_CURRENCIES = "SELECT groupUniqArray(currency) FROM calls WHERE currency != ''"


@dataclass(frozen=True)
class DailyOutcome:
    """One scenario's tasks that started on one UTC day."""

    day: date
    scenario_id: str
    tasks: int
    accepted: int
    # Tasks still inside their outcome window: the day's figures are provisional.
    pending: int
    total_cost: Decimal
    cost_per_accepted_outcome: Decimal | None
    # Calls without a complete price: the day's costs are lower bounds.
    unpriced_calls: int


@dataclass(frozen=True)
class OutcomeCosts:
    """A scenario's task cost split by outcome; waste = rejected + failed + unresolved."""

    scenario_id: str
    tasks: int
    pending: int
    total_cost: Decimal
    accepted_cost: Decimal
    pending_cost: Decimal
    rejected_cost: Decimal
    failed_cost: Decimal
    unresolved_cost: Decimal
    unpriced_calls: int

    @property
    def waste_cost(self) -> Decimal:
        return self.rejected_cost + self.failed_cost + self.unresolved_cost

    @property
    def waste_share(self) -> Decimal | None:
        """Waste / total cost (None with no cost)."""
        return self.waste_cost / self.total_cost if self.total_cost else None


@dataclass(frozen=True)
class CostBin:
    """One 1% bin of a scenario's cost per task: [lower, upper) in currency units
    (floats, for display; 0 and 0 for tasks that cost nothing), its tasks and their
    exact summed cost."""

    scenario_id: str
    cost_bin: int
    lower: float
    upper: float
    tasks: int
    total_cost: Decimal


@dataclass(frozen=True)
class RoleCost:
    """Calls of one role in one scenario (the labels the calls reported)."""

    scenario_id: str
    role: str
    calls: int
    total_cost: Decimal


@dataclass(frozen=True)
class CacheLine:
    """Prompt-cache economics of one model: what cache reads saved against the input
    rate, what cache writes cost above it, and the net."""

    provider: str
    model: str
    calls: int
    cache_read_tokens: int
    cache_write_tokens: int
    prompt_tokens: int
    read_savings: Decimal
    write_premium: Decimal
    net_savings: Decimal
    # Calls of the model without a complete price (set by chart_data).
    unpriced_calls: int = 0

    @property
    def hit_rate(self) -> float | None:
        """Cache-read tokens / prompt tokens (a rate, not money)."""
        return self.cache_read_tokens / self.prompt_tokens if self.prompt_tokens else None


def _rows(client: Any, sql: str, where: Slice, day_column: str = "day") -> Any:
    """The rows of ``sql`` (whose ``{condition}`` is the slice's) for ``where``."""
    condition, params = where.where(day_column)
    return client.query(sql.format(condition=condition), parameters=params).result_rows


def daily_outcomes(client: Any, where: Slice) -> list[DailyOutcome]:
    """Per scenario and UTC day of the tasks' first event, ordered by scenario, day."""
    return [DailyOutcome(*row) for row in _rows(client, _DAILY_OUTCOMES, where)]


def outcome_costs(client: Any, where: Slice) -> list[OutcomeCosts]:
    """Per scenario, ordered by scenario."""
    return [OutcomeCosts(*row) for row in _rows(client, _OUTCOME_COSTS, where)]


def cost_histogram(client: Any, where: Slice) -> list[CostBin]:
    """The summed 1% bins of cost per task, per scenario, in bin order."""
    return [CostBin(*row) for row in _rows(client, _HISTOGRAM, where)]


def role_costs(client: Any, where: Slice) -> list[RoleCost]:
    """Per scenario and role, ordered by both."""
    return [RoleCost(*row) for row in _rows(client, _ROLES, where)]


def cache_lines(client: Any, where: Slice) -> list[CacheLine]:
    """Per provider and model, with the count of the model's unpriced calls."""
    rows = _rows(client, _CACHE, where)
    unpriced = {
        (provider, model): n
        for provider, model, n in _rows(client, _UNPRICED_BY_MODEL, where, "toDate(hour)")
    }
    return [
        CacheLine(provider, model, calls, read, write, prompt, saved, premium, net,
                  unpriced.get((provider, model), 0))
        for provider, model, calls, read, write, prompt, saved, premium, net in rows
    ]  # fmt: skip


def unpriced_by_call_scenario(client: Any, where: Slice) -> dict[str, int]:
    """Calls without a complete price, by the scenario the call reported (only those
    with any)."""
    return dict(_rows(client, _UNPRICED_BY_SCENARIO, where))


def experiment_scenarios(client: Any, where: Slice) -> list[str]:
    """Scenarios with at least two experiment labels (``attributes.experiment``) in the
    slice: the ones an A/B comparison can be made for."""
    return [row[0] for row in _rows(client, _EXPERIMENT_SCENARIOS, where)]


def currencies(client: Any) -> list[str]:
    """The billing currencies of the priced calls (one, unless the book changed it)."""
    return sorted(client.query(_CURRENCIES).result_rows[0][0])


@dataclass(frozen=True)
class ChartData:
    """Everything the HTML report shows for one slice, read once each."""

    where: Slice
    # Billing currencies of the priced calls (normally one; none without priced calls).
    currencies: list[str]
    summary: list[ScenarioLine]
    # pipeline.query.report.health: calls, unpriced, dead letters, price books, lineage.
    health: dict[str, Any]
    daily: list[DailyOutcome]
    outcomes: list[OutcomeCosts]
    bins: list[CostBin]
    tails: list[Tails]
    roles: list[RoleCost]
    # Unpriced calls by the scenario the calls reported (roles and cache read calls).
    call_unpriced: dict[str, int]
    cache: list[CacheLine]
    # (scenario, experiment comparison of its two largest arms), per scenario that has
    # two experiment labels in the slice.
    comparisons: list[tuple[str, Comparison]]


def chart_data(client: Any, where: Slice) -> ChartData:
    """Read what :mod:`pipeline.render.html_report` draws; raises what the client raises."""
    comparisons = [
        (scenario, compare(client, "experiment", replace(where, scenario_id=scenario)))
        for scenario in experiment_scenarios(client, where)
    ]
    return ChartData(
        where=where,
        currencies=currencies(client),
        summary=scenario_summary(client, where),
        health=health(client),
        daily=daily_outcomes(client, where),
        outcomes=outcome_costs(client, where),
        bins=cost_histogram(client, where),
        tails=tails(client, where),
        roles=role_costs(client, where),
        call_unpriced=unpriced_by_call_scenario(client, where),
        cache=cache_lines(client, where),
        comparisons=comparisons,
    )
