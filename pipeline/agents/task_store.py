"""Stage 1's task store: the ``task_state`` table with its retention, per partition.

Every method that depends on where an event lives takes the partition as an
argument; nothing about "the event being handled" lives on the store itself.

In the worker ``table`` is the Faust table's local store (``Table.data``): writing
it sends nothing. Every write and delete is reported to ``changelog`` instead, so
the batch path (:mod:`pipeline.agents.batch`) writes one changelog record per
changed key per batch and acknowledges its inputs only once those are delivered.

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
from pipeline.events.lean import AnyEvent
from pipeline.join.retention import RetentionIndex
from pipeline.join.state import DEFAULT_WINDOW, OutcomeWindow, TaskState

# Table keys that hold a partition's watermark as of its last eviction, not a task.
_WATERMARK_PREFIX = "\x00costflow.watermark/"


def watermark_key(partition: int) -> str:
    """The table key of ``partition``'s eviction watermark."""
    return f"{_WATERMARK_PREFIX}{partition}"


def watermark_partition(key: str) -> int | None:
    """The partition of a watermark key; None for a task's key."""
    return int(key[len(_WATERMARK_PREFIX) :]) if key.startswith(_WATERMARK_PREFIX) else None


def future_timestamp(
    event: AnyEvent,
    now_ms: int,
    then: str = "re-submit it from the dead-letter topic (`costflow dead-letter replay`)",
) -> FutureTimestamp:
    """The error for ``event`` stamped ahead of ``now_ms`` (epoch milliseconds of the
    caller's clock) by more than the caller allows: accepted, it would move its
    partition's watermark ahead and make every on-time event look late. ``then``: how
    the caller's user sends it again once the clock or timestamp is fixed. Callers
    compare themselves (``event.ts_ms > now_ms + max_future_ms``): stage 1 does it per
    event, and only a refusal should cost a call."""
    return FutureTimestamp(
        f"event {event.event_id!r} is stamped {event.ts.isoformat()}, "
        f"{(event.ts_ms - now_ms) / 3_600_000:.1f} h ahead of this clock; fix the "
        f"producer's clock or timestamps, then {then}"
    )


def _iso(epoch_ms_value: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_ms_value / 1000))


@dataclass
class TaskStore:
    """The table of task states plus the retention index that evicts them.

    ``table`` is the Faust table's store in the worker and a dict in tests.
    Times are epoch milliseconds; ``max_future_ms`` bounds how far ahead of this
    process's clock an event may be stamped.
    """

    table: MutableMapping[str, Any]
    window: OutcomeWindow = DEFAULT_WINDOW
    retention: RetentionIndex = field(default_factory=lambda: RetentionIndex(7 * 86_400_000))
    max_future_ms: int = 3_600_000
    clock_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    # Told of every write (partition, key, stored value; None: deleted), when the
    # table itself does not send its changelog (see the module docstring).
    changelog: Callable[[int, str, str | None], None] | None = None

    def __len__(self) -> int:
        """Tasks tracked by retention (the tasks held)."""
        return len(self.retention)

    def held(self, task_id: str) -> TaskState | None:
        """The task's stored state, parsed; None if the store does not hold it."""
        raw = self.table.get(task_id)
        return None if raw is None else TaskState.from_stored(raw)

    def check_in_time(
        self, event: AnyEvent, partition: int, held: TaskState | None, now_ms: int
    ) -> None:
        """Refuse an event too old for its task's state, or stamped in the future.

        ``held``: the task's state as held now (None if not held). For a task not
        held: the partition's watermark has passed the event's own deadline plus
        retention, so its task would already have left. For a task held: the same
        was true when this state was created (``born_ms``), so the state may be a new
        start of a task that left, whose older events belong to the state the sink
        already stored; applying one here would count it twice when the sink merges
        the two.

        ``now_ms``: this worker's clock (``clock_ms``, read once per batch by the caller).

        Raises FutureTimestamp or TooLate (both dead-lettered by the caller).
        """
        ts = event.ts_ms
        if ts > now_ms + self.max_future_ms:
            raise future_timestamp(event, now_ms)
        # Outcomes name no scenario (and a missing attribute costs an exception).
        scenario = "" if event.type == "outcome" else event.scenario_id or ""  # type: ignore[union-attr]
        deadline = self.window.deadline_ms(scenario, ts)
        expiry = self.retention.expiry_ms(deadline)
        if held is None:
            mark = self.retention.watermark[partition]
            if expiry > mark:
                return
            against = f"the latest event time seen on partition {partition} ({_iso(mark)})"
        else:
            if expiry > held.born_ms:
                return
            against = (
                f"the event time at which the worker started this task's state again "
                f"after it had left ({_iso(held.born_ms)})"
            )
        raise TooLate(
            f"task {event.task_id!r}: this event (ts {event.ts.isoformat()}) is past its "
            f"outcome window plus the {self.retention.retention_ms // 3_600_000} h retention, "
            f"measured against {against}. Raise COSTFLOW_WORKER_STATE_RETENTION_S and "
            "re-submit it with `costflow dead-letter replay`."
        )

    def new_state(self, task_id: str, partition: int) -> TaskState:
        """A task's first state, born at the partition's watermark."""
        return TaskState(task_id=task_id, born_ms=self.retention.watermark[partition])

    def store(self, state: TaskState, partition: int) -> dict[str, Any]:
        """Write the state and (re)track its deadline for eviction; the state as
        written (``TaskState.to_json``), for the snapshot of the same batch."""
        state.partition = partition
        data = state.to_json()
        stored = state.to_stored(data)
        self.table[state.task_id] = stored
        if self.changelog is not None:
            self.changelog(partition, state.task_id, stored)
        self.retention.track(partition, state.task_id, state.deadline_ms(self.window))
        return data

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
                mark_key, mark = watermark_key(partition), str(self.retention.watermark[partition])
                self.table[mark_key] = mark
                del self.table[task_id]
                if self.changelog is not None:
                    self.changelog(partition, mark_key, mark)
                    self.changelog(partition, task_id, None)
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
