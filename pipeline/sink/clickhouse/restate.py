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
- Which events a row reflects is known (:mod:`pipeline.sink.lineage`): a
  snapshot whose events are all stored is skipped with nothing lost, a newer
  one replaces the row, and one that diverges from the row is not applied but
  its new events are kept as pending and reported, never dropped in silence.
- Re-consuming a batch after a crash finds its rows already stored and writes
  nothing, whatever the batch boundaries are this time.
Only one sink process writes a given task: the output topic is keyed by
task_id and each partition has one owner in the consumer group.

Reprices (``costflow reprice``) travel on the same topic, so they are applied
by the same single writer, in order with the snapshots. A reprice changes the
cost of some of a task's calls; the sink adds the difference to the stored row
and records it in ``reprice_cost_delta`` / ``reprice_priced_calls``, which it
carries into every later row of the task: stage 1 knows nothing of reprices,
so its snapshot totals are "as first priced" and the carried delta corrects
them. Stored versions are therefore ``events * 2**20 + revision``: stage 1
advances the events part, each reprice of the task the revision.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pipeline.clickhouse.lookups import id_chunks
from pipeline.pricing.engine import MONEY
from pipeline.records import TaskRecord
from pipeline.sink.clickhouse.rows import CHANGE_COLUMNS, STATE_COLUMNS, task_row
from pipeline.sink.lineage import Lineage, Part

# A stored row: the change columns without sign, as the tasks table holds them.
_STORED = tuple(c for c in CHANGE_COLUMNS if c != "sign")
_VERSION = _STORED.index("version")
_SIGN = CHANGE_COLUMNS.index("sign")
REVISION_BITS = 20
_REVISION_MASK = (1 << REVISION_BITS) - 1


def events_of(version: int) -> int:
    """How many distinct events the stored row reflects."""
    return version >> REVISION_BITS


@dataclass(frozen=True, slots=True)
class Adjustment:
    """What one batch's reprices change in a task."""

    cost_delta: Decimal = Decimal(0)
    priced_calls: int = 0

    def __add__(self, other: Adjustment) -> Adjustment:
        return Adjustment(
            MONEY.add(self.cost_delta, other.cost_delta), self.priced_calls + other.priced_calls
        )


# What the sink holds per task: its stored row (None: none yet) and its lineage.
Stored = tuple[tuple[Any, ...] | None, Lineage]


class TaskRestater:
    """Computes the task_changes and task_states rows for a batch; remembers what it wrote."""

    def __init__(self, client: Any, cache_entries: int = 200_000) -> None:
        self.client = client
        self.cache_entries = cache_entries
        self._stored: OrderedDict[str, Stored] = OrderedDict()
        # Read by prefetch() for the batch being planned, used by that batch's
        # changes() instead of a second read.
        self._prefetched: dict[str, Stored] = {}
        # Per outcome of applying a stage-1 record (see lineage.Applied).
        self.outcomes: dict[str, int] = {}
        # Snapshots from workers that sent no state (before migration 0008) that
        # were not newer than the stored row, by version.
        self.superseded = 0
        # Reprices for tasks with no stored row (should not happen: reprices read them).
        self.orphan_adjustments = 0
        # Stored rows replaced by a newer state, counted once durable (metrics).
        self.restated = 0
        self._restating = 0

    def forget(self, task_ids: Iterable[str] | None = None) -> None:
        """Drop cached rows (all, on a rebalance; a batch's, after a failed write)."""
        self._prefetched = {}
        if task_ids is None:
            self._stored.clear()
            return
        for task_id in task_ids:
            self._stored.pop(task_id, None)

    def _lookup(self, task_ids: list[str]) -> dict[str, Stored]:
        found: dict[str, Stored] = {}
        missing = []
        for task_id in task_ids:
            if task_id in self._stored:
                found[task_id] = self._stored[task_id]
                self._stored.move_to_end(task_id)
            elif task_id in self._prefetched:
                found[task_id] = self._prefetched[task_id]
            else:
                missing.append(task_id)
        for chunk in id_chunks(missing):
            rows: dict[str, tuple[Any, ...]] = {}
            # The current row is the +1 row of the highest version, merged or not. Read
            # from task_changes itself, not from the views fed by it: it is what was applied.
            for row in self.client.query(
                f"SELECT {', '.join(_STORED)} FROM task_changes "
                "WHERE task_id IN %(ids)s AND sign = 1 "
                "ORDER BY task_id, version DESC LIMIT 1 BY task_id",
                parameters={"ids": list(chunk)},
            ).result_rows:
                rows[row[0]] = tuple(row)
            lineages: dict[str, Lineage] = {}
            for task_id, seq, base, current, pending, evictions in self.client.query(
                "SELECT task_id, seq, base, current, pending, evictions FROM task_states "
                "WHERE task_id IN %(ids)s ORDER BY task_id, seq DESC LIMIT 1 BY task_id",
                parameters={"ids": list(chunk)},
            ).result_rows:
                lineages[task_id] = Lineage(
                    Part.from_text(base), Part.from_text(current), frozenset(pending), seq,
                    evictions,
                )  # fmt: skip
            for task_id in chunk:
                found[task_id] = (rows.get(task_id), lineages.get(task_id, Lineage()))
        return found

    def prefetch(self, task_ids: Iterable[str]) -> set[str]:
        """Read the stored rows of a batch's tasks once; returns the tasks that have one.

        The next :meth:`changes` uses these rows instead of reading them again.
        """
        ids = sorted(set(task_ids))
        self._prefetched = self._lookup(ids)
        return {t for t, (row, _) in self._prefetched.items() if row is not None}

    def changes(
        self,
        records: dict[str, list[TaskRecord]],
        adjustments: dict[str, Adjustment] | None = None,
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Sign rows (task_changes) and lineage rows (task_states) for a batch's stage-1
        records, in offset order per task, and its reprices; empty for tasks whose
        row and lineage are unchanged."""
        adjustments = adjustments or {}
        task_ids = sorted(set(records) | set(adjustments))
        stored = self._lookup(task_ids)
        rows: list[tuple[Any, ...]] = []
        states: list[tuple[Any, ...]] = []
        self._pending: dict[str, Stored] = {}
        self._restating = 0
        for task_id in task_ids:
            current, lineage = stored.get(task_id, (None, Lineage()))
            new, lineage_now = self._apply(current, lineage, records.get(task_id, []))
            adjustment = adjustments.get(task_id)
            if adjustment is not None:
                base = new if new is not None else _as_dict(current)
                if base is None:
                    self.orphan_adjustments += 1
                else:
                    new = _adjusted(base, adjustment)
            row = current
            if new is not None:
                row = tuple(new[c] for c in _STORED)
                if current is not None:
                    rows.append(_with_sign(current, -1))
                    self._restating += 1
                rows.append(_with_sign(row, 1))
            if lineage_now is not lineage:
                states.append(_state_row(task_id, lineage_now))
            if new is not None or lineage_now is not lineage:
                self._pending[task_id] = (row, lineage_now)
        self._prefetched = {}
        return rows, states

    def _apply(
        self, current: tuple[Any, ...] | None, lineage: Lineage, records: list[TaskRecord]
    ) -> tuple[dict[str, Any] | None, Lineage]:
        """The task's new row (None: unchanged) and lineage after its records."""
        legacy: dict[str, Any] | None = None
        start = lineage
        for record in records:
            data = record.state
            if data is None:  # a version-1 record (before migration 0008): versions only
                value = record.data
                if record.kind == "snapshot" and (
                    legacy is None or value["version"] > legacy["version"]
                ):
                    legacy = value
                continue
            part = Part.from_record(data)
            if record.kind == "evicted":
                lineage, outcome = lineage.apply_eviction(part)
            else:
                lineage, outcome = lineage.apply_snapshot(part)
            self.outcomes[outcome.value] = self.outcomes.get(outcome.value, 0) + 1
        whole = lineage.whole()
        if start.whole() is not None:
            # The row shows start.whole(): rewrite it when the events changed.
            if whole is not None and whole.state.seen != start.events():
                return _from_snapshot(whole.state.row(whole.window_ms), current), lineage
        elif whole is not None:
            # No lineage yet: a new task, or a row stored before migration 0008, whose
            # events are unknown; for that one, only a snapshot with more events wins.
            snapshot = whole.state.row(whole.window_ms)
            if current is None or snapshot["version"] > events_of(current[_VERSION]):
                return _from_snapshot(snapshot, current), lineage
            self.superseded += 1
            return None, start
        if legacy is not None:
            if current is None or legacy["version"] > events_of(current[_VERSION]):
                return _from_snapshot(legacy, current), lineage
            self.superseded += 1
        return None, lineage

    def committed(self) -> None:
        """The rows from the last :meth:`changes` are durable: remember them."""
        self.restated += self._restating
        self._restating = 0
        for task_id, row in self._pending.items():
            self._stored[task_id] = row
            self._stored.move_to_end(task_id)
        self._pending = {}
        while len(self._stored) > self.cache_entries:
            self._stored.popitem(last=False)


def _state_row(task_id: str, lineage: Lineage) -> tuple[Any, ...]:
    """A task_states row, in STATE_COLUMNS order."""
    values = {
        "task_id": task_id,
        "seq": lineage.seq,
        "base": lineage.base.to_text() if lineage.base else "",
        "current": lineage.current.to_text() if lineage.current else "",
        "pending": sorted(lineage.pending),
        "events": len(lineage.events()),
        "evictions": lineage.evictions,
    }
    return tuple(values[c] for c in STATE_COLUMNS)


def _with_sign(row: tuple[Any, ...], sign: int) -> tuple[Any, ...]:
    return (*row[:_SIGN], sign, *row[_SIGN:])


def _as_dict(row: tuple[Any, ...] | None) -> dict[str, Any] | None:
    return None if row is None else dict(zip(_STORED, row, strict=True))


def _from_snapshot(snapshot: dict[str, Any], current: tuple[Any, ...] | None) -> dict[str, Any]:
    """The snapshot as a stored row, with what reprices changed carried over."""
    row = dict(zip(_STORED, task_row(snapshot), strict=True))
    previous = _as_dict(current)
    revision = previous["version"] & _REVISION_MASK if previous else 0
    delta = previous["reprice_cost_delta"] if previous else Decimal(0)
    priced = previous["reprice_priced_calls"] if previous else 0
    row["version"] = (snapshot["version"] << REVISION_BITS) | revision
    row["total_cost"] = MONEY.add(row["total_cost"], delta)
    row["unpriced_calls"] -= priced
    row["reprice_cost_delta"] = delta
    row["reprice_priced_calls"] = priced
    return row


def _adjusted(row: dict[str, Any], adjustment: Adjustment) -> dict[str, Any]:
    if (row["version"] & _REVISION_MASK) == _REVISION_MASK:
        raise OverflowError(f"task {row['task_id']!r} was repriced {_REVISION_MASK} times")
    return {
        **row,
        "version": row["version"] + 1,
        "total_cost": MONEY.add(row["total_cost"], adjustment.cost_delta),
        "unpriced_calls": row["unpriced_calls"] - adjustment.priced_calls,
        "reprice_cost_delta": MONEY.add(row["reprice_cost_delta"], adjustment.cost_delta),
        "reprice_priced_calls": row["reprice_priced_calls"] + adjustment.priced_calls,
    }
