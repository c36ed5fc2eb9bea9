"""Stage 1's task store: the ``task_state`` table with its retention, per partition.

Every method that depends on where an event lives takes the partition as an
argument: the three agents run concurrently over one store, so nothing about "the
event being handled" may live on the store itself.

The table holds a task's state as stored text (``TaskState.to_stored``), and one key
per partition (``\\x00costflow.watermark/<p>``) with that partition's event-time
watermark as of its last eviction, so that after a restart events older than an
evicted state are still refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import FutureTimestamp, TooLate
from pipeline.events.models import CallEvent, OutcomeEvent, TaskEvent
from pipeline.join.retention import RetentionIndex
from pipeline.join.state import DEFAULT_WINDOW, OutcomeWindow, TaskState, epoch_ms

AnyEvent = CallEvent | TaskEvent | OutcomeEvent

# Table keys that hold a partition's watermark as of its last eviction, not a task.
_WATERMARK_PREFIX = "\x00costflow.watermark/"


def watermark_key(partition: int) -> str:
    """The table key of ``partition``'s eviction watermark."""
    return f"{_WATERMARK_PREFIX}{partition}"


def watermark_partition(key: str) -> int | None:
    """The partition of a watermark key; None for a task's key."""
    return int(key[len(_WATERMARK_PREFIX) :]) if key.startswith(_WATERMARK_PREFIX) else None


def _iso(epoch_ms_value: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_ms_value / 1000))


@dataclass(frozen=True)
class Held:
    """A task's stored value as read when its event was checked, and its parse.

    Passed from :meth:`TaskStore.check_in_time` to :meth:`TaskStore.load` so a state
    is parsed once per event; ``load`` uses it only while the table still holds that
    very value object (so an ``await`` in between could never apply a stale state).
    """

    raw: Any
    state: TaskState


@dataclass
class TaskStore:
    """The table of task states plus the retention index that evicts them.

    ``table`` is a Faust ``Table[str, str]`` in the worker and a dict in tests.
    Times are epoch milliseconds; ``max_future_ms`` bounds how far ahead of this
    process's clock an event may be stamped.
    """

    table: MutableMapping[str, Any]
    window: OutcomeWindow = DEFAULT_WINDOW
    retention: RetentionIndex = field(default_factory=lambda: RetentionIndex(7 * 86_400_000))
    max_future_ms: int = 3_600_000
    clock_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))

    def __len__(self) -> int:
        """Tasks tracked by retention (the tasks held)."""
        return len(self.retention)

    def check_in_time(self, event: AnyEvent, partition: int) -> Held | None:
        """Refuse an event too old for its task's state, or stamped in the future.

        For a task the store does not hold: the partition's watermark has passed the
        event's own deadline plus retention, so its task would already have left. For
        a task it holds: the same was true when this state was created (``born_ms``),
        so the state may be a new start of a task that left, whose older events
        belong to the state the sink already stored; applying one here would count it
        twice when the sink merges the two.

        Returns the task's held state (None if not held), for :meth:`load`.
        Raises FutureTimestamp or TooLate (both dead-lettered by the caller).
        """
        ts = epoch_ms(event)
        now_ms = self.clock_ms()
        if ts > now_ms + self.max_future_ms:
            raise FutureTimestamp(
                f"event {event.event_id!r} is stamped {event.ts.isoformat()}, "
                f"{(ts - now_ms) / 3_600_000:.1f} h ahead of this worker's clock; fix the "
                "producer's clock or timestamps, then re-submit it with "
                "`costflow dead-letter replay`"
            )
        raw = self.table.get(event.task_id)
        deadline = self.window.deadline_ms(getattr(event, "scenario_id", None) or "", ts)
        expiry = self.retention.expiry_ms(deadline)
        if raw is None:
            mark = self.retention.watermark[partition]
            if expiry > mark:
                return None
            against = f"the latest event time seen on partition {partition} ({_iso(mark)})"
        else:
            held = Held(raw, TaskState.from_stored(raw))
            if expiry > held.state.born_ms:
                return held
            against = (
                f"the event time at which the worker started this task's state again "
                f"after it had left ({_iso(held.state.born_ms)})"
            )
        raise TooLate(
            f"task {event.task_id!r}: this event (ts {event.ts.isoformat()}) is past its "
            f"outcome window plus the {self.retention.retention_ms // 3_600_000} h retention, "
            f"measured against {against}. Raise COSTFLOW_WORKER_STATE_RETENTION_S and "
            "re-submit it with `costflow dead-letter replay`."
        )

    def load(self, task_id: str, partition: int, held: Held | None = None) -> TaskState:
        """The task's state; a new one born at the partition's watermark if not held."""
        raw = self.table.get(task_id)
        if raw is None:
            return TaskState(task_id=task_id, born_ms=self.retention.watermark[partition])
        if held is not None and held.raw is raw:
            return held.state
        return TaskState.from_stored(raw)

    def store(self, state: TaskState, partition: int) -> None:
        """Write the state and (re)track its deadline for eviction."""
        state.partition = partition
        self.table[state.task_id] = state.to_stored()
        self.retention.track(partition, state.task_id, state.deadline_ms(self.window))

    def observe(self, partition: int, ts_ms: int) -> list[TaskState]:
        """Advance the partition's watermark; evict and return the tasks it passed.

        An evicted task leaves the table and the watermark is kept in the table; the
        caller must tell the sink (the evicted state is the base a later start of the
        task merges with).
        """
        self.retention.observe(partition, ts_ms)
        evicted: list[TaskState] = []
        for task_id in self.retention.due(partition):
            raw = self.table.get(task_id)
            if raw is None:
                self.retention.forget(task_id)
                continue
            state = TaskState.from_stored(raw)
            deadline = state.deadline_ms(self.window)
            if self.retention.too_late(partition, deadline):
                self.table[watermark_key(partition)] = str(self.retention.watermark[partition])
                del self.table[task_id]
                self.retention.forget(task_id)
                evicted.append(state)
            else:  # it got events since it was tracked
                self.retention.retrack(partition, task_id, deadline)
        return evicted

    def reindex(self) -> None:
        """After the table was recovered from its changelog: track every task again."""
        for key, raw in list(self.table.items()):
            partition = watermark_partition(key)
            if partition is not None:
                self.retention.observe(partition, int(raw))
                continue
            state = TaskState.from_stored(raw)
            if state.partition >= 0:
                self.retention.track(state.partition, key, state.deadline_ms(self.window))
