"""Outcomes: whether a task's result was accepted; the latest outcome wins."""

from __future__ import annotations

from pipeline.agents.base import Stage
from pipeline.events.lean import AnyOutcome
from pipeline.join.state import TaskState


def apply_outcome(_stage: Stage, outcome: AnyOutcome, state: TaskState) -> bool:
    """Add the outcome to ``state``; False if the state already held it."""
    return state.apply_outcome(outcome)
