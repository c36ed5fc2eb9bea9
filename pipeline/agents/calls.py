"""Calls agent: price each call, add it to its task, emit the priced call and snapshot."""

from __future__ import annotations

from typing import Any

from pipeline.agents.base import StageContext, register_agent
from pipeline.errors import PricingError
from pipeline.events.models import CallEvent
from pipeline.pricing.engine import CallCost, price_call
from pipeline.records import priced_call


async def apply_call(ctx: StageContext, call: CallEvent) -> bool:
    """Price the call, add it to its task, emit the priced call and the task snapshot.

    A re-delivered call re-emits both (priced again: pricing is deterministic), for
    the reason given in :meth:`StageContext.update`.
    """
    cost: CallCost | None
    try:
        cost = price_call(call, ctx.book)
        error = None
    except PricingError as exc:
        # Unpriced calls are kept, counted and visible (cost NULL + reason), never guessed.
        cost, error = None, f"{exc.code}: {exc}"
    record = priced_call(call, cost, error, ctx.book.label)
    ctx.priced_calls.send_soon(key=call.task_id.encode(), value=record)
    applied = ctx.update(
        call.task_id, lambda state: state.apply_call(call, cost.total if cost else None)
    )
    if applied and cost is None:
        ctx.unpriced[f"{call.provider}/{call.model}"] += 1
    return applied


def register(app: Any, ctx: StageContext, topic: Any) -> Any:
    return register_agent(app, ctx, topic, "call", apply_call)
