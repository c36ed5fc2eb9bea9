"""Outcomes agent: whether a task's result was accepted; the latest outcome wins."""

from __future__ import annotations

from typing import Any

from pipeline.agents.base import StageContext, register_agent
from pipeline.events.models import OutcomeEvent


async def apply_outcome(ctx: StageContext, outcome: OutcomeEvent) -> bool:
    return ctx.update(outcome.task_id, lambda state: state.apply_outcome(outcome))


def register(app: Any, ctx: StageContext, topic: Any) -> Any:
    return register_agent(app, ctx, topic, "outcome", apply_outcome)
