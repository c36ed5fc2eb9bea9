"""Tasks agent: a task's scenario, owner and environment, and its phases."""

from __future__ import annotations

from typing import Any

from pipeline.agents.base import StageContext, register_agent
from pipeline.events.models import TaskEvent


async def apply_task(ctx: StageContext, task: TaskEvent) -> bool:
    return ctx.update(task.task_id, lambda state: state.apply_task(task))


def register(app: Any, ctx: StageContext, topic: Any) -> Any:
    return register_agent(app, ctx, topic, "task", apply_task)
