"""Turning task snapshots into sign rows against what ClickHouse already holds.

The stage-1 worker emits a full snapshot of a task at every change, numbered by
``version`` (the number of distinct events it reflects). For each task in a
batch the sink keeps the highest version, reads the task's stored row, and if
the snapshot is newer writes the stored row back with ``sign = -1`` and the new
one with ``sign = +1``. Anything summed over ``sign`` is then exact at every
moment, which is what the materialized views do.

Why this is safe under replays and crashes:
- The stored row is read from task_changes (or from a cache of rows this
  process wrote itself), so a cancel row always equals the row it cancels, even when
  stage 1 re-emitted a different snapshot under the same version after a crash.
- A snapshot whose version is not above the stored one is dropped; the final
  snapshot of a task (all its events) always has the highest version, so the
  stored row converges to it.
- Re-consuming a batch after a crash finds its rows already stored and writes
  nothing, whatever the batch boundaries are this time.
Only one sink process writes a given task: the output topic is keyed by
task_id and each partition has one owner in the consumer group.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from pipeline.sink.rows import CHANGE_COLUMNS, task_row

# A stored row: the change columns without sign, as the tasks table holds them.
_STORED = tuple(c for c in CHANGE_COLUMNS if c != "sign")
_VERSION = _STORED.index("version")
_SIGN = CHANGE_COLUMNS.index("sign")


class TaskRestater:
    """Computes the task_changes rows for a batch; remembers what it wrote."""

    def __init__(self, client: Any, cache_entries: int = 200_000) -> None:
        self.client = client
        self.cache_entries = cache_entries
        self._stored: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self.superseded = 0

    def forget(self, task_ids: Iterable[str] | None = None) -> None:
        """Drop cached rows (all, on a rebalance; a batch's, after a failed write)."""
        if task_ids is None:
            self._stored.clear()
            return
        for task_id in task_ids:
            self._stored.pop(task_id, None)

    def _lookup(self, task_ids: list[str]) -> dict[str, tuple[Any, ...]]:
        found: dict[str, tuple[Any, ...]] = {}
        missing = [t for t in task_ids if t not in self._stored]
        for task_id in task_ids:
            if task_id in self._stored:
                found[task_id] = self._stored[task_id]
                self._stored.move_to_end(task_id)
        for start in range(0, len(missing), 5_000):
            chunk = missing[start : start + 5_000]
            # The current row is the +1 row of the highest version, merged or not. Read
            # from task_changes itself, not from the views fed by it: it is what was applied.
            result = self.client.query(
                f"SELECT {', '.join(_STORED)} FROM task_changes "
                "WHERE task_id IN %(ids)s AND sign = 1 "
                "ORDER BY task_id, version DESC LIMIT 1 BY task_id",
                parameters={"ids": chunk},
            )
            for row in result.result_rows:
                found[row[0]] = tuple(row)
        return found

    def changes(self, snapshots: dict[str, dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Sign rows for the newest snapshot per task; empty for tasks already up to date."""
        stored = self._lookup(sorted(snapshots))
        rows: list[tuple[Any, ...]] = []
        self._pending: dict[str, tuple[Any, ...]] = {}
        for task_id in sorted(snapshots):
            snapshot = snapshots[task_id]
            current = stored.get(task_id)
            if current is not None and snapshot["version"] <= current[_VERSION]:
                self.superseded += 1
                continue
            new = task_row(snapshot)
            if current is not None:
                rows.append(_with_sign(current, -1))
            rows.append(_with_sign(new, 1))
            self._pending[task_id] = new
        return rows

    def committed(self) -> None:
        """The rows from the last :meth:`changes` are durable: remember them."""
        for task_id, row in self._pending.items():
            self._stored[task_id] = row
            self._stored.move_to_end(task_id)
        self._pending = {}
        while len(self._stored) > self.cache_entries:
            self._stored.popitem(last=False)


def _with_sign(row: tuple[Any, ...], sign: int) -> tuple[Any, ...]:
    return (*row[:_SIGN], sign, *row[_SIGN:])
