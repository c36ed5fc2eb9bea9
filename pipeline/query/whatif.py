"""``costflow whatif``: a scenario's real traffic at another model's prices.

The tasks of a scenario in a period are read back with all their calls; the
calls of the replaced model (all calls unless ``--replace`` names one) are
priced as if the target model had served them with the same tokens, at the
prices in force at one instant (default: now). Everything else is kept:
retries, failures, acceptance. It is an estimate of the price effect only;
a different model would need different retries and win different outcomes.
``--growth`` multiplies the volume.

Without a target model it is the growth question alone ("what is our bill at 10x?"):
every call keeps its recorded cost, variable cost scales with the volume, fixed costs
stay as declared (they are not per call), and calls without a recorded price are
counted, so the figures say when they are lower bounds.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pipeline.errors import PriceNotFound, PricingError
from pipeline.pricing.engine import MONEY, CompiledBook, price_call
from pipeline.query import fixed_costs
from pipeline.query.analytics import Slice
from pipeline.query.calls import PRICING_INPUTS, calls_of_tasks, stored_call

_TASKS = """
SELECT task_id, outcome = 'accepted', toDate(first_event_at)
FROM tasks FINAL
WHERE {condition}
"""


@dataclass
class WhatIf:
    """A scenario's recorded cost beside its estimate; money in the book's currency.

    ``model`` empty: the growth-only projection (no repricing). ``fixed_cost``: the
    fixed costs allocated to the scenario over the same days (None: none declared).
    """

    scenario_id: str
    provider: str
    model: str
    replace: str | None
    priced_at: datetime
    growth: Decimal
    tasks: int = 0
    accepted: int = 0
    first_day: date | None = None
    last_day: date | None = None
    calls: int = 0
    moved_calls: int = 0
    # Compared like for like: calls priced both as recorded and at the target.
    recorded_cost: Decimal = Decimal(0)
    estimated_cost: Decimal = Decimal(0)
    # reason -> calls left out of both sides
    left_out: Counter[str] = field(default_factory=Counter)
    fixed_cost: Decimal | None = None
    # Growth only: calls priced in part, counted at their known part (a lower bound).
    partly_priced: int = 0

    @property
    def unpriced(self) -> int:
        """Calls without a complete recorded price: their cost is unknown (or known only
        in part), not zero, so every cost figure is a lower bound."""
        return self.left_out.get("unpriced as recorded", 0) + self.partly_priced

    def full_per_accepted(self, variable: Decimal, growth: Decimal) -> Decimal | None:
        """(variable x growth + fixed) / (accepted x growth): fixed costs spread thinner."""
        if not self.accepted or self.fixed_cost is None:
            return None
        return (variable * growth + self.fixed_cost) / (self.accepted * growth)

    @property
    def days(self) -> int:
        if self.first_day is None or self.last_day is None:
            return 0
        return (self.last_day - self.first_day).days + 1

    def per_accepted(self, cost: Decimal) -> Decimal | None:
        return cost / self.accepted if self.accepted else None

    def per_30_days(self, cost: Decimal) -> Decimal | None:
        return cost * self.growth * 30 / self.days if self.days else None


def target_provider(book: CompiledBook, model: str) -> tuple[str, str]:
    """``provider/model``, or a bare model name the book prices under one provider."""
    if "/" in model:
        provider, _, name = model.partition("/")
        return provider, name
    providers = sorted({e.provider for e in book.book.entries if e.model == model})
    if len(providers) == 1:
        return providers[0], model
    if not providers:
        raise PriceNotFound("?", model)
    raise PricingError(f"{model!r} is priced for {', '.join(providers)}; pass provider/{model}")


def what_if(
    client: Any,
    book: CompiledBook,
    where: Slice,
    model: str | None,
    priced_at: datetime,
    replace: str | None = None,
    growth: Decimal = Decimal(1),
    progress_every: int = 200_000,
) -> WhatIf:
    """Price the scenario's calls in ``where`` as ``model`` (``provider/model`` or a name
    one provider prices; None: keep their recorded cost). Raises ValueError without a
    scenario, PriceNotFound/PricingError for a target the book cannot price."""
    if where.scenario_id is None:
        raise ValueError("whatif runs for one scenario: pass --scenario")
    provider, name = target_provider(book, model) if model else ("", "")
    if model:
        book.entry_for(provider, name, priced_at)  # fail before the scan if not priced
    result = WhatIf(where.scenario_id, provider, name, replace, priced_at, growth)
    condition, params = where.where("toDate(first_event_at)")
    # One read of the tasks: what the report counts, and whose calls to price.
    tasks = client.query(_TASKS.format(condition=condition), parameters=params).result_rows
    if not tasks:
        return result
    result.tasks = len(tasks)
    result.accepted = sum(accepted for _, accepted, _ in tasks)
    result.first_day = min(day for *_, day in tasks)
    result.last_day = max(day for *_, day in tasks)
    task_ids = [task_id for task_id, *_ in tasks]
    columns = (*PRICING_INPUTS, "cost_total", "cost_known")
    for row in calls_of_tasks(client, task_ids, columns):
        result.calls += 1
        if progress_every and result.calls % progress_every == 0:
            sys.stderr.write(f"whatif: {result.calls:,} calls priced\n")
        if row["cost_total"] is None:
            known = row["cost_known"]
            if model or known is None:  # against a target, only like for like compares
                result.left_out["unpriced as recorded"] += 1
                continue
            result.partly_priced += 1
            result.recorded_cost = MONEY.add(result.recorded_cost, known)
            result.estimated_cost = MONEY.add(result.estimated_cost, known)
            continue
        if not model or (replace is not None and row["model"] != replace):
            result.recorded_cost = MONEY.add(result.recorded_cost, row["cost_total"])
            result.estimated_cost = MONEY.add(result.estimated_cost, row["cost_total"])
            continue
        call = stored_call(row, provider=provider, model=name, ts=priced_at)
        try:
            estimate = price_call(call, book).total
        except PricingError as exc:
            result.left_out[f"target cannot price it: {exc.code}"] += 1
            continue
        result.moved_calls += 1
        result.recorded_cost = MONEY.add(result.recorded_cost, row["cost_total"])
        result.estimated_cost = MONEY.add(result.estimated_cost, estimate)
    if not model:
        result.fixed_cost = _fixed_cost_of_same_days(client, where, result)
    return result


def _fixed_cost_of_same_days(client: Any, where: Slice, result: WhatIf) -> Decimal | None:
    """Fixed costs allocated to the scenario on the days its tasks were read from;
    None when none are declared."""
    if result.first_day is None or not fixed_costs.items(client):
        return None
    same_days = replace(where, since=result.first_day, until=result.last_day)
    lines = fixed_costs.full_cost(client, same_days)
    return sum((line.fixed_cost for line in lines), Decimal(0))
