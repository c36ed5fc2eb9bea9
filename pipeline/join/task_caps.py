"""Per-task caps: the ``task_budget`` rules stage 1 evaluates as it applies events.

A runaway agent loops through calls; a rule evaluated on a schedule over the stored
tasks sees it a cycle later, and at 100 million calls a day a scan of the task table
every few seconds is not affordable. Stage 1 holds every active task's running cost
and call count anyway, so it checks the caps there, on the state each batch leaves.

Whether a task is over a cap is a function of its state, and the state a function of
its event set (:mod:`pipeline.join.state`): the answer survives restarts with the
state, and re-delivered events give it again. Stage 1 therefore does not remember
having fired: every snapshot of a task over a cap names the caps it is over
(:func:`crossed_caps`), and the sink records the first firing of each (task, rule)
and ignores the rest (``pipeline.sink.clickhouse.task_alerts``): once per task and
rule, across crashes of either stage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from pipeline.join.state import TaskState

# The task labels a cap may match on (what the task table holds).
TASK_LABELS = ("scenario_id", "owner", "environment")


@dataclass(frozen=True, slots=True)
class TaskCap:
    """One ``task_budget`` rule's absolute caps.

    ``match``: task labels that must be equal (a task without the label has "");
    ``max_cost`` in the price book's currency (the task's known cost, so a lower bound
    while it has unpriced calls); ``max_calls``: calls of any status.
    """

    alert: str
    severity: str
    match: Mapping[str, str]
    max_cost: Decimal | None = None
    max_calls: int | None = None
    # The rule's own labels (for routing), carried as ``label.<name>`` entries.
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.match) - set(TASK_LABELS)
        if unknown:
            raise ValueError(f"task caps match on {TASK_LABELS}, not {sorted(unknown)}")

    def crossed(self, state: TaskState) -> dict[str, str] | None:
        """``{"alert", "severity", "cap", "limit"}`` when ``state`` is at or over a cap
        (the cost cap first), else None."""
        for name, value in self.match.items():
            if (state.resolved(name) or "") != value:
                return None
        if self.max_cost is not None and state.total_cost >= self.max_cost:
            return self._entry("max_cost", str(self.max_cost))
        if self.max_calls is not None and state.calls >= self.max_calls:
            return self._entry("max_calls", str(self.max_calls))
        return None

    def _entry(self, cap: str, limit: str) -> dict[str, str]:
        entry = {"alert": self.alert, "severity": self.severity, "cap": cap, "limit": limit}
        entry.update({f"label.{k}": v for k, v in self.labels.items()})
        return entry


def crossed_caps(caps: Sequence[TaskCap], state: TaskState) -> list[dict[str, str]]:
    """Every cap ``state`` is at or over, in rule order."""
    return [entry for cap in caps if (entry := cap.crossed(state)) is not None]
