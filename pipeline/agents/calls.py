"""Calls: price each call, add it to its task's state, emit the priced call."""

from __future__ import annotations

from pipeline.agents.base import Stage
from pipeline.errors import PricingError, UnitNotPriced
from pipeline.events.lean import AnyCall
from pipeline.join.state import TaskState
from pipeline.pricing.engine import CallCost, price_call


def apply_call(stage: Stage, call: AnyCall, state: TaskState) -> bool:
    """Price the call, emit its priced record and add it to ``state``; False if the
    state already held it.

    A re-delivered call re-emits its priced record (priced again: pricing is
    deterministic), for the reason given in :func:`pipeline.agents.batch.apply_batch`.
    """
    cost: CallCost | None
    known: CallCost | None = None
    unpriced: tuple[str, ...] = ()
    try:
        cost = price_call(call, stage.book)
        error = None
    except UnitNotPriced as exc:
        # Priced in part: the known part counts (a lower bound), the rest is named.
        cost, error, known, unpriced = None, f"{exc.code}: {exc}", exc.known, exc.dimensions
    except PricingError as exc:
        # Unpriced calls are kept, counted and visible (cost NULL + reason), never guessed.
        cost, error = None, f"{exc.code}: {exc}"
    stage.outputs.priced_call(call, cost, error, stage.book.label, known, unpriced)
    applied = state.apply_call(call, cost.total if cost else None, known.total if known else None)
    if applied and cost is None:
        stage.counters.unpriced[f"{call.provider}/{call.model}"] += 1
    return applied
