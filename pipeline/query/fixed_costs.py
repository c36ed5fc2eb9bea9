"""Fixed costs in ClickHouse: load a declaration, read each scenario's full cost.

A load writes the whole declaration under one ``loaded_at``; ``v_fixed_costs``
shows only the latest load, so removing an item from the file and loading it
again removes it from every view, and earlier loads stay for audit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pipeline.errors import FixedCostsInvalid
from pipeline.pricing.fixed_costs import FixedCosts
from pipeline.query.analytics import Slice

FIXED_COST_COLUMNS = (
    "loaded_at", "source", "item", "category", "period_start", "period_end", "amount",
    "currency", "rule", "scenarios", "weights", "note",
)  # fmt: skip


def load(client: Any, declaration: FixedCosts, source: str) -> datetime:
    """Write the declaration as the current one; returns its ``loaded_at``."""
    others = client.query(
        "SELECT DISTINCT currency FROM calls WHERE currency NOT IN ('', %(c)s) LIMIT 5",
        parameters={"c": declaration.currency},
    ).result_rows
    if others:
        found = ", ".join(row[0] for row in others)
        raise FixedCostsInvalid(
            f"the declaration is in {declaration.currency} but calls are billed in {found}; "
            "declare fixed costs in the billing currency of the price book"
        )
    previous = client.query("SELECT max(loaded_at) FROM fixed_costs").result_rows[0][0]
    now = datetime.now(UTC)
    loaded_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # DateTime64(3)
    if previous is not None:
        previous = previous.replace(tzinfo=UTC) if previous.tzinfo is None else previous
        # Two loads in the same millisecond (or a clock step back) must still be ordered.
        loaded_at = max(loaded_at, previous + timedelta(milliseconds=1))
    rows = []
    for item in declaration.items:
        start, end = item.period
        rows.append(
            (
                loaded_at, source, item.item, item.category.value, start, end, item.total,
                declaration.currency, item.rule.value, list(item.scenarios),
                dict(item.weights), item.note,
            )
        )  # fmt: skip
    client.insert("fixed_costs", rows, column_names=list(FIXED_COST_COLUMNS))
    return loaded_at


@dataclass(frozen=True)
class FixedCostItemLine:
    item: str
    category: str
    period_start: Any
    period_end: Any
    rule: str
    amount: Decimal
    allocated_cost: Decimal
    unallocated_cost: Decimal


def items(client: Any) -> list[FixedCostItemLine]:
    result = client.query(
        "SELECT item, category, period_start, period_end, rule, amount, allocated_cost, "
        "unallocated_cost FROM v_fixed_cost_items ORDER BY period_start, item"
    )
    return [FixedCostItemLine(*row) for row in result.result_rows]


@dataclass(frozen=True)
class FullCostLine:
    scenario_id: str
    accepted: int
    variable_cost: Decimal
    fixed_cost: Decimal
    cost_per_accepted_outcome: Decimal | None
    full_cost_per_accepted_outcome: Decimal | None

    @property
    def full_cost(self) -> Decimal:
        return self.variable_cost + self.fixed_cost


FULL_COST_SQL = """
SELECT scenario_id, n_accepted, variable, fixed,
    if(n_accepted = 0, NULL, variable / n_accepted),
    if(n_accepted = 0, NULL, (variable + fixed) / n_accepted)
FROM
(
    SELECT scenario_id, sum(accepted) AS n_accepted, sum(variable_cost) AS variable,
        sum(fixed_cost) AS fixed
    FROM v_scenario_full_cost_daily
    WHERE {condition}
    GROUP BY scenario_id
)
ORDER BY scenario_id
"""


def full_cost(client: Any, where: Slice) -> list[FullCostLine]:
    """Per scenario over the slice's days: cost per accepted outcome without and with
    fixed costs. Fixed costs are allocated to scenarios, not owners or environments."""
    if where.owner is not None or where.environment is not None:
        raise ValueError(
            "fixed costs are allocated per scenario; drop --owner/--environment to see it"
        )
    condition, params = where.where()
    result = client.query(FULL_COST_SQL.format(condition=condition), parameters=params)
    return [FullCostLine(*row) for row in result.result_rows]
