"""What rules over tasks may group and filter by: the task's own labels."""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.alerts.rules import Dimension

TASK_LABELS = frozenset({Dimension.scenario_id, Dimension.owner, Dimension.environment})


def check_task_labels(labels: Iterable[Dimension], kind: str) -> None:
    """Raises ValueError naming the labels a task rule cannot use (provider, model:
    a task may use several)."""
    wrong = sorted(d.value for d in labels if d not in TASK_LABELS)
    if wrong:
        raise ValueError(
            f"a {kind} rule reads tasks, whose labels are scenario_id, owner and environment; "
            f"not {wrong} (a task may call several models)"
        )
