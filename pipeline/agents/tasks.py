"""Tasks agent: a task's scenario, owner and environment, and its phases."""

from __future__ import annotations

from typing import Any

from pipeline.agents.base import Delivery, Stage, register_agent
from pipeline.events.models import TaskEvent


def apply_task(stage: Stage, task: TaskEvent, delivery: Delivery) -> bool:
    return stage.update(delivery, task.task_id, lambda state: state.apply_task(task))


def register(app: Any, stage: Stage, topic: Any) -> Any:
    return register_agent(app, stage, topic, "task", apply_task)
