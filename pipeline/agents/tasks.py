"""Task events: a task's scenario, owner and environment, and its phases."""

from __future__ import annotations

from pipeline.agents.base import Stage
from pipeline.events.lean import AnyTask
from pipeline.join.state import TaskState


def apply_task(_stage: Stage, task: AnyTask, state: TaskState) -> bool:
    """Add the task event to ``state``; False if the state already held it."""
    return state.apply_task(task)
