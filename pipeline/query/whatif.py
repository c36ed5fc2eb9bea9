"""``costflow whatif``: a scenario's real traffic at another model's prices.

The tasks of a scenario in a period are read back with all their calls; the
calls of the replaced model (all calls unless ``--replace`` names one) are
priced as if the target model had served them with the same tokens, at the
prices in force at one instant (default: now). Everything else is kept:
retries, failures, acceptance. It is an estimate of the price effect only;
a different model would need different retries and win different outcomes.
``--growth`` multiplies the volume.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pipeline.errors import PriceNotFound, PricingError
from pipeline.pricing.engine import MONEY, CompiledBook, price_call
from pipeline.query.analytics import Slice
from pipeline.query.calls import PRICING_INPUTS, calls_of_tasks, stored_call

_TASKS = """
SELECT task_id, outcome = 'accepted', toDate(first_event_at)
FROM tasks FINAL
WHERE {condition}
"""


@dataclass
class WhatIf:
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
    model: str,
    priced_at: datetime,
    replace: str | None = None,
    growth: Decimal = Decimal(1),
    progress_every: int = 200_000,
) -> WhatIf:
    if where.scenario_id is None:
        raise ValueError("whatif runs for one scenario: pass --scenario")
    provider, name = target_provider(book, model)
    book.entry_for(provider, name, priced_at)  # fail before the scan if it is not priced
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
    for row in calls_of_tasks(client, task_ids, (*PRICING_INPUTS, "cost_total")):
        result.calls += 1
        if progress_every and result.calls % progress_every == 0:
            sys.stderr.write(f"whatif: {result.calls:,} calls priced\n")
        if row["cost_total"] is None:
            result.left_out["unpriced as recorded"] += 1
            continue
        if replace is not None and row["model"] != replace:
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
    return result
