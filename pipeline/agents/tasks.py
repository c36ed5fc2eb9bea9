"""Tasks agent: a task's scenario, owner and environment, and its phases."""

from __future__ import annotations

from typing import Any

from pipeline.agents.base import StageContext, consume
from pipeline.events.models import TaskEvent


async def apply_task(ctx: StageContext, task: TaskEvent) -> bool:
    state = ctx.load(task.task_id)
    if not state.apply_task(task):
        return False
    ctx.store_and_emit(state)
    return True


def register(app: Any, ctx: StageContext, topic: Any) -> Any:
    @app.agent(topic, name="costflow.tasks")
    async def tasks(stream: Any) -> None:
        await consume(stream.events(), ctx, "task", apply_task)

    return tasks
