"""Headline analytics for a period and a slice: outcomes and waste, tails, costliest tasks.

Reads only the public views (docs/analytics.md), with filters bound as query
parameters. Tails over a period are computed from the summed daily histogram
bins, the same rule as ``v_task_cost_tails_daily``: a quantile is the mean cost
of the 1% bin that holds the nearest-rank task.
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
class OutcomeLine:
    scenario_id: str
    tasks: int
    accepted: int
    rejected: int
    failed: int
    unresolved: int
    pending: int
    total_cost: Decimal
    waste_cost: Decimal
    cost_per_task: Decimal
    cost_per_accepted_outcome: Decimal | None
    final: bool


def outcomes(client: Any, where: Slice) -> list[OutcomeLine]:
    condition, params = where.where()
    rows = client.query(
        "SELECT scenario_id, sum(tasks) AS n, sum(accepted) AS a, sum(rejected), sum(failed), "
        "sum(unresolved), sum(pending), sum(v.total_cost) AS cost, sum(waste_cost), "
        "cost / n, if(a = 0, NULL, cost / a), min(final) "
        f"FROM v_outcomes_daily AS v WHERE {condition} GROUP BY scenario_id ORDER BY scenario_id",
        parameters=params,
    ).result_rows
    return [OutcomeLine(*row) for row in rows]


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


# The same lambdas as v_task_cost_tails_daily (sql/0006_analytics.sql).
_TAILS = """
WITH
    (bins, n, pct) -> bins[arrayFirstIndex(c -> c >= intDiv(n * pct + 99, 100),
        arrayCumSum(arrayMap(b -> b.2, bins)))] AS bin_at,
    (bin) -> bin.3 / bin.2 AS bin_mean,
    (bins, n, pct) -> arraySum(arrayMap(
        (b, before) -> if(before >= intDiv(n * pct + 99, 100), toDecimal128(0, 18),
            if(before + b.2 <= intDiv(n * pct + 99, 100), b.3,
               b.3 * (intDiv(n * pct + 99, 100) - before) / b.2)),
        arrayReverse(bins),
        arrayMap((c, b) -> c - b.2, arrayCumSum(arrayMap(b -> b.2, arrayReverse(bins))),
            arrayReverse(bins)))) AS top_cost
SELECT scenario_id, n, bin_mean(bin_at(bins, n, 50)), bin_mean(bin_at(bins, n, 90)),
    bin_mean(bin_at(bins, n, 95)), bin_mean(bin_at(bins, n, 99)),
    bin_mean(bins[length(bins)]), top_cost(bins, n, 5), top_cost(bins, n, 1), cost
FROM
(
    SELECT scenario_id, arraySort(b -> b.1, groupArray((cost_bin, k, c))) AS bins,
        sum(k) AS n, sum(c) AS cost
    FROM
    (
        SELECT scenario_id, cost_bin, sum(tasks) AS k, sum(h.total_cost) AS c
        FROM v_task_cost_histogram AS h
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
    rows = client.query(_TAILS.format(condition=condition), parameters=params).result_rows
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
            "SELECT task_id, groupArray((model, role, status, attempt, cost_total)) FROM "
            "(SELECT task_id, model, role, status, attempt, cost_total, ts, event_id "
            "FROM v_task_call_chain WHERE task_id IN %(ids)s ORDER BY ts, event_id) "
            "GROUP BY task_id",
            parameters={"ids": [t.task_id for t in found]},
        ).result_rows
        by_task = dict(chains)
        for task in found:
            task.chain = list(by_task.get(task.task_id, []))
    return found


def _usd(value: Decimal | None, places: int = 4) -> str:
    return "n/a" if value is None else f"${value.quantize(Decimal(1).scaleb(-places)):,}"


def render_analytics(
    lines: list[OutcomeLine], tail_lines: list[Tails], top: list[CostlyTask]
) -> str:
    out = ["Waste: cost of tasks not accepted (rejected, failed, unresolved)"]
    header = (
        f"{'scenario':<18} {'total cost':>13} {'waste':>13} {'waste %':>8} {'pending':>8} "
        f"{'figures':>12}"
    )
    out += [header, "-" * len(header)]
    for line in lines:
        share = line.waste_cost / line.total_cost * 100 if line.total_cost else Decimal(0)
        out.append(
            f"{line.scenario_id or '(none)':<18} {_usd(line.total_cost, 2):>13} "
            f"{_usd(line.waste_cost, 2):>13} {share:>7.1f}% {line.pending:>8,} "
            f"{'final' if line.final else 'provisional':>12}"
        )
    out += ["", "Cost per task: tail (1% bins) and the share of spend of the costliest tasks"]
    header = (
        f"{'scenario':<18} {'p50':>10} {'p90':>10} {'p95':>10} {'p99':>10} {'max':>10} "
        f"{'p95/p50':>8} {'top 5%':>8} {'top 1%':>8}"
    )
    out += [header, "-" * len(header)]
    for t in tail_lines:
        ratio = f"{t.p95 / t.p50:.1f}x" if t.p50 else "n/a"
        out.append(
            f"{t.scenario_id or '(none)':<18} {_usd(t.p50):>10} {_usd(t.p90):>10} "
            f"{_usd(t.p95):>10} {_usd(t.p99):>10} {_usd(t.max_bin_mean):>10} {ratio:>8} "
            f"{t.share(t.top5pct_cost):>8.1%} {t.share(t.top1pct_cost):>8.1%}"
        )
    if top:
        out += ["", "Costliest tasks and their call chains"]
        for task in top:
            out.append(
                f"{task.task_id} {task.day} {task.scenario_id or '(none)'} "
                f"{task.owner or '(no owner)'} {task.outcome or '(no outcome)'} "
                f"{_usd(task.total_cost)} in {task.calls} calls"
            )
            steps = [
                f"{model}[{role or '-'}]{'' if status == 'ok' else ' ' + status}"
                f"{' #' + str(attempt) if attempt > 1 else ''} {_usd(cost)}"
                for model, role, status, attempt, cost in task.chain
            ]
            out.append("    " + " -> ".join(steps))
    return "\n".join(out)
