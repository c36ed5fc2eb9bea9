"""Calls agent: price each call, add it to its task, emit the priced call and snapshot."""

from __future__ import annotations

from typing import Any

from pipeline.agents.base import Delivery, Stage, register_agent
from pipeline.errors import PricingError, UnitNotPriced
from pipeline.events.models import CallEvent
from pipeline.pricing.engine import CallCost, price_call


def apply_call(stage: Stage, call: CallEvent, delivery: Delivery) -> bool:
    """Price the call, add it to its task, emit the priced call and the task snapshot.

    A re-delivered call re-emits both (priced again: pricing is deterministic), for
    the reason given in :meth:`Stage.update`.
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
    total = cost.total if cost else None
    known_total = known.total if known else None
    applied = stage.update(
        delivery, call.task_id, lambda state: state.apply_call(call, total, known_total)
    )
    if applied and cost is None:
        stage.counters.unpriced[f"{call.provider}/{call.model}"] += 1
    return applied


def register(app: Any, stage: Stage, topic: Any) -> Any:
    return register_agent(app, stage, topic, "call", apply_call)
