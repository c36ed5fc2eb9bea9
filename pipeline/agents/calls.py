"""Calls agent: price each call, add it to its task, emit the priced call and snapshot."""

from __future__ import annotations

from typing import Any

from pipeline.agents.base import StageContext, register_agent
from pipeline.errors import PricingError
from pipeline.events.enriched import dumps, priced_call_record
from pipeline.events.models import CallEvent
from pipeline.pricing.engine import CallCost, price_call


async def apply_call(ctx: StageContext, call: CallEvent) -> bool:
    state = ctx.load(call.task_id)
    if call.event_id in state.seen:
        return False
    cost: CallCost | None
    try:
        cost = price_call(call, ctx.book)
        error = None
    except PricingError as exc:
        # Unpriced calls are kept, counted and visible (cost NULL + reason), never guessed.
        cost, error = None, f"{exc.code}: {exc}"
        ctx.unpriced[f"{call.provider}/{call.model}"] += 1
    state.apply_call(call, cost.total if cost else None)
    record = priced_call_record(call, cost, error, ctx.book.label)
    ctx.priced_calls.send_soon(key=call.task_id.encode(), value=dumps(record))
    ctx.store_and_emit(state)
    return True


def register(app: Any, ctx: StageContext, topic: Any) -> Any:
    return register_agent(app, ctx, topic, "call", apply_call)
