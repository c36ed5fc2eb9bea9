"""Analytics queries for a period and a slice: tails of cost per task, costliest tasks.

Reads the public views (docs/analytics.md) and, for tails, the histogram table they
are built on, with filters bound as query parameters. Tails over a period are
computed from the summed daily histogram bins, the same rule as
``v_task_cost_tails_daily``: a quantile is the mean cost of the 1% bin that holds
the nearest-rank task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Slice:
    """Which tasks a report covers: a period of UTC days and optional labels."""

    since: date | None = None
    until: date | None = None  # inclusive
    scenario_id: str | None = None
    owner: str | None = None
    environment: str | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since > self.until:
            from pipeline.errors import ConfigError

            raise ConfigError(
                f"the period is empty: --since {self.since} is after --until {self.until}"
                " (both are UTC days, --until included)"
            )

    def where(self, day_column: str = "day") -> tuple[str, dict[str, Any]]:
        clauses, params = ["1"], {}
        if self.since is not None:
            clauses.append(f"{day_column} >= %(since)s")
            params["since"] = self.since
        if self.until is not None:
            clauses.append(f"{day_column} <= %(until)s")
            params["until"] = self.until
        for name in ("scenario_id", "owner", "environment"):
            value = getattr(self, name)
            if value is not None:
                clauses.append(f"{name} = %({name})s")
                params[name] = value
        return " AND ".join(clauses), params


@dataclass(frozen=True)
class Tails:
    scenario_id: str
    tasks: int
    p50: Decimal
    p90: Decimal
    p95: Decimal
    p99: Decimal
    max_bin_mean: Decimal
    top5pct_cost: Decimal
    top1pct_cost: Decimal
    total_cost: Decimal

    def share(self, cost: Decimal) -> float:
        return float(cost / self.total_cost) if self.total_cost else 0.0


# The quantile is costflow_bin_at_v1 (sql/0009); top_cost is the same lambda as
# v_task_cost_tails_daily (sql/0006_analytics.sql). The bins are
# summed straight from their table: through v_task_cost_histogram (grouped by day and
# labels first) the query took 350 ms instead of 25 ms at 10 million tasks.
TAILS_SQL = """
WITH
    (bin) -> bin.3 / bin.2 AS bin_mean,
    (bins, n, pct) -> arraySum(arrayMap(
        (b, before) -> if(before >= intDiv(n * pct + 99, 100), toDecimal128(0, 18),
            if(before + b.2 <= intDiv(n * pct + 99, 100), b.3,
               b.3 * (intDiv(n * pct + 99, 100) - before) / b.2)),
        arrayReverse(bins),
        arrayMap((c, b) -> c - b.2, arrayCumSum(arrayMap(b -> b.2, arrayReverse(bins))),
            arrayReverse(bins)))) AS top_cost
SELECT scenario_id, n, bin_mean(costflow_bin_at_v1(bins, n, 50)),
    bin_mean(costflow_bin_at_v1(bins, n, 90)), bin_mean(costflow_bin_at_v1(bins, n, 95)),
    bin_mean(costflow_bin_at_v1(bins, n, 99)),
    bin_mean(bins[length(bins)]), top_cost(bins, n, 5), top_cost(bins, n, 1), cost
FROM
(
    SELECT scenario_id, arraySort(b -> b.1, groupArray((cost_bin, k, c))) AS bins,
        sum(k) AS n, sum(c) AS cost
    FROM
    (
        SELECT scenario_id, cost_bin, sum(tasks) AS k, sum(h.total_cost) AS c
        FROM task_cost_histogram_daily AS h
        WHERE {condition}
        GROUP BY scenario_id, cost_bin
        HAVING k != 0
    )
    GROUP BY scenario_id
)
ORDER BY scenario_id
"""


def tails(client: Any, where: Slice) -> list[Tails]:
    condition, params = where.where()
    rows = client.query(TAILS_SQL.format(condition=condition), parameters=params).result_rows
    return [Tails(*row) for row in rows]


@dataclass
class CostlyTask:
    task_id: str
    day: date
    scenario_id: str
    owner: str
    outcome: str
    total_cost: Decimal
    calls: int
    # (model, role, status, attempt, cost_total, cost_known) per call, in order
    chain: list[tuple[Any, ...]] = field(default_factory=list)


def costliest_tasks(client: Any, where: Slice, limit: int = 10) -> list[CostlyTask]:
    """The costliest tasks of the slice, each with its calls in order (the chain)."""
    condition, params = where.where("toDate(first_event_at)")
    rows = client.query(
        "SELECT task_id, toDate(first_event_at), scenario_id, owner, outcome, total_cost, calls "
        f"FROM tasks FINAL WHERE {condition} ORDER BY total_cost DESC, task_id LIMIT %(limit)s",
        parameters={**params, "limit": limit},
    ).result_rows
    found = [CostlyTask(*row) for row in rows]
    if found:
        chains = client.query(
            "SELECT task_id, groupArray((model, role, status, attempt, cost_total, cost_known)) "
            "FROM (SELECT task_id, model, role, status, attempt, cost_total, cost_known, ts, "
            "event_id "
            "FROM v_task_call_chain WHERE task_id IN %(ids)s ORDER BY ts, event_id) "
            "GROUP BY task_id",
            parameters={"ids": [t.task_id for t in found]},
        ).result_rows
        by_task = dict(chains)
        for task in found:
            task.chain = list(by_task.get(task.task_id, []))
    return found
