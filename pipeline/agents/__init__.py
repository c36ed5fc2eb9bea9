"""Stage-1 Faust agents, one per input topic, sharing the task_state table."""

from __future__ import annotations
