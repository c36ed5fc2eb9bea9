"""Outcomes agent: whether a task's result was accepted; the latest outcome wins."""

from __future__ import annotations

from typing import Any

from pipeline.agents.base import StageContext, consume
from pipeline.events.models import OutcomeEvent


async def apply_outcome(ctx: StageContext, outcome: OutcomeEvent) -> bool:
    state = ctx.load(outcome.task_id)
    if not state.apply_outcome(outcome):
        return False
    ctx.store_and_emit(state)
    return True


def register(app: Any, ctx: StageContext, topic: Any) -> Any:
    @app.agent(topic, name="costflow.outcomes")
    async def outcomes(stream: Any) -> None:
        await consume(stream.events(), ctx, "outcome", apply_outcome)

    return outcomes
