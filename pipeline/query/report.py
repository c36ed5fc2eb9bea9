"""The headline report: cost per accepted outcome per scenario, and health counters."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pipeline.query.analytics import Slice

SCENARIO_SUMMARY = """
SELECT
    scenario_id,
    n_tasks,
    n_accepted,
    n_rejected,
    n_failed,
    n_unresolved,
    n_pending,
    cost,
    cost / n_tasks,
    if(n_accepted = 0, NULL, cost / n_accepted),
    waste,
    is_final,
    n_unpriced
FROM
(
    SELECT
        scenario_id,
        sum(tasks) AS n_tasks,
        sum(accepted) AS n_accepted,
        sum(rejected) AS n_rejected,
        sum(failed) AS n_failed,
        sum(unresolved) AS n_unresolved,
        sum(pending) AS n_pending,
        sum(v.total_cost) AS cost,
        sum(waste_cost) AS waste,
        min(final) AS is_final,
        sum(unpriced_calls) AS n_unpriced
    FROM v_outcomes_daily AS v
    WHERE {condition}
    GROUP BY scenario_id
)
ORDER BY scenario_id
"""

# One pass over calls FINAL for every call figure (was one pass each: 4x the reading
# on a 50M-call table, the most of `report`'s time there).
HEALTH = """
SELECT
    c.1 AS calls,
    c.2 AS unpriced_calls,
    (c.3, c.4) AS partly_priced,
    (SELECT count() FROM dead_letters FINAL) AS dead_letters,
    c.5 AS price_books,
    (SELECT (countIf(notEmpty(pending)), sum(length(pending)), countIf(evictions > 0))
        FROM task_states FINAL) AS lineage
FROM
(
    SELECT (count(), countIf(cost_total IS NULL),
            countIf(cost_total IS NULL AND cost_known IS NOT NULL),
            sumIf(cost_known, cost_total IS NULL),
            groupUniqArrayIf(price_book_version, price_book_version != '')) AS c
    FROM calls FINAL
)
"""


@dataclass(frozen=True)
class ScenarioLine:
    scenario_id: str
    tasks: int
    accepted: int
    rejected: int
    failed: int
    unresolved: int
    pending: int
    total_cost: Decimal
    cost_per_task: Decimal
    cost_per_accepted_outcome: Decimal | None
    # Cost of rejected, failed and unresolved tasks.
    waste_cost: Decimal
    # No task of the slice is still inside its outcome window.
    final: bool
    # Calls the book could not price: their cost is unknown, so every cost figure of
    # the line is a lower bound (shown as ">=") until they are priced and repriced.
    unpriced_calls: int = 0

    @property
    def acceptance_rate(self) -> Decimal:
        return Decimal(self.accepted) / Decimal(self.tasks) if self.tasks else Decimal(0)


def scenario_summary(client: Any, where: Slice | None = None) -> list[ScenarioLine]:
    condition, params = (where or Slice()).where()
    rows = client.query(SCENARIO_SUMMARY.format(condition=condition), parameters=params)
    return [ScenarioLine(*row) for row in rows.result_rows]


def health(client: Any) -> dict[str, Any]:
    row = client.query(HEALTH).result_rows[0]
    return {
        "calls": row[0],
        "unpriced_calls": row[1],
        # Unpriced calls priced in part, and their known cost (in the task totals).
        "partly_priced_calls": row[2][0],
        "partly_priced_known": row[2][1],
        "dead_letters": row[3],
        "price_books": sorted(row[4]),
        # Tasks whose stage-1 state diverged from the stored row, and the events
        # stage 1 applied that the row lacks (see sink.lineage).
        "diverged_tasks": row[5][0],
        "pending_events": row[5][1],
        # Tasks whose state left stage 1 and started again, merged exactly.
        "restarted_tasks": row[5][2],
    }
