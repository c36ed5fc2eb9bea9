"""The join of calls, task events and outcomes by task_id, as pure state."""

from __future__ import annotations

from pipeline.join.state import TaskState

__all__ = ["TaskState"]
