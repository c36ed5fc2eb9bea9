"""Outcomes agent: whether a task's result was accepted; the latest outcome wins."""

from __future__ import annotations

from typing import Any

from pipeline.agents.base import Delivery, Stage, register_agent
from pipeline.events.models import OutcomeEvent


def apply_outcome(stage: Stage, outcome: OutcomeEvent, delivery: Delivery) -> bool:
    return stage.update(delivery, outcome.task_id, lambda state: state.apply_outcome(outcome))


def register(app: Any, stage: Stage, topic: Any) -> Any:
    return register_agent(app, stage, topic, "outcome", apply_outcome)
