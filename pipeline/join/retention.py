"""Which tasks may leave the worker's state, and which events come too late for it.

A task's state is kept until the partition's event-time watermark (the latest
event time the worker has seen on that partition) passes the task's outcome
deadline plus the retention period. Event time, not wall-clock time, so a replay
of last month's events keeps and drops state exactly as live processing did.

After a task has left, an event for it would start the task again from nothing
and the sink would keep the older, fuller row. So an event for a task the worker
does not hold, whose own deadline plus retention the watermark has already
passed, is refused as ``too_late`` (dead-lettered, replayable) instead of being
half-counted. Pure bookkeeping: no Faust, no Kafka.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class RetentionIndex:
    retention_ms: int
    # partition -> latest event time seen (ms)
    watermark: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    # partition -> min-heap of (expiry_ms, task_id); one entry per tracked task
    _heaps: dict[int, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))
    _tracked: set[str] = field(default_factory=set)

    def observe(self, partition: int, ts_ms: int) -> None:
        if ts_ms > self.watermark[partition]:
            self.watermark[partition] = ts_ms

    def expiry_ms(self, deadline_ms: int) -> int:
        return deadline_ms + self.retention_ms

    def too_late(self, partition: int, deadline_ms: int) -> bool:
        """True if a task with this deadline would already have been dropped."""
        return self.expiry_ms(deadline_ms) <= self.watermark[partition]

    def track(self, partition: int, task_id: str, deadline_ms: int) -> None:
        """Remember a task held in state (once; its expiry is re-read when it is due)."""
        if task_id not in self._tracked:
            self._tracked.add(task_id)
            heapq.heappush(self._heaps[partition], (self.expiry_ms(deadline_ms), task_id))

    def due(self, partition: int) -> list[str]:
        """Tasks of ``partition`` whose recorded expiry has passed (candidates only).

        The caller re-reads each one's current deadline and either drops it
        (:meth:`forget`) or puts it back with the later deadline (:meth:`retrack`).
        """
        heap, mark = self._heaps[partition], self.watermark[partition]
        out = []
        while heap and heap[0][0] <= mark:
            out.append(heapq.heappop(heap)[1])
        return out

    def retrack(self, partition: int, task_id: str, deadline_ms: int) -> None:
        heapq.heappush(self._heaps[partition], (self.expiry_ms(deadline_ms), task_id))

    def forget(self, task_id: str) -> None:
        self._tracked.discard(task_id)

    def __len__(self) -> int:
        return len(self._tracked)
