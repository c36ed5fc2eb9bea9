"""Which events a stored task row reflects, and what a new stage-1 record does to it.

Stage 1 sends, with every task snapshot, the state it comes from: the ids of
the events applied and every field (:func:`pipeline.records.task_snapshot`).
The sink keeps, per task, a :class:`Lineage`: the latest state of the task's
current start in stage 1 (``current``), the merged states of earlier starts that
left stage 1 under retention (``base``), and the events of snapshots it could not
apply (``pending``). The stored row is always ``base`` merged with ``current``.

A snapshot F, against the stored events S (the events of base and current):
- every event of F is in S: nothing to do (``already_stored``). After a crash
  stage 1 re-emits older or re-ordered intermediate snapshots; they carry
  nothing the row lacks, so skipping them loses nothing.
- F holds every event of ``current`` and none of ``base``: F is the task's
  newer state; the row becomes merge(base, F) (``applied``).
- otherwise F lacks events the row has and carries events it lacks
  (``diverged``). After a crash this is a passing intermediate: Kafka re-delivers
  the missing events and a later snapshot covers both. If it persists once the
  pipeline is idle, stage 1 lost state (a lost changelog); its new events are
  kept in ``pending`` and counted in ``costflow report``, never dropped silently,
  until a covering snapshot arrives or ``costflow state restore`` repairs stage 1.

An ``evicted`` record (the last state of a start that left stage 1) moves
``current`` into ``base``. The next start of the task has none of its events
(stage 1 refuses events older than the start: see ``born_ms``), so merge(base, F) is
exact (:meth:`TaskState.merge`). Pure: no Kafka, no ClickHouse.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import orjson

from pipeline.join.state import TaskState
from pipeline.json_codec import loads


class Applied(Enum):
    applied = "applied"
    already_stored = "already_stored"
    diverged = "diverged"


@dataclass(frozen=True, slots=True)
class Part:
    """A stage-1 state with the outcome window of its resolved scenario."""

    state: TaskState
    window_ms: int

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Part:
        """From a record's ``state`` object (``TaskState.to_json`` plus ``window_ms``)."""
        return cls(TaskState.from_json(data), int(data["window_ms"]))

    @classmethod
    def from_text(cls, text: str) -> Part | None:
        return cls.from_record(loads(text)) if text else None

    def to_text(self) -> str:
        """Stored text; sets sorted, so the same state is always the same text."""
        data = {**self.state.to_json(), "window_ms": self.window_ms}
        data["seen"], data["models"] = sorted(data["seen"]), sorted(data["models"])
        # Same compact text as json.dumps(separators=(",", ":")) but UTF-8 rather than
        # \u escapes; readers parse it, none compares the text.
        return orjson.dumps(data).decode()

    def merge(self, other: Part) -> Part:
        source = self.state.scenario_source(other.state)
        window_ms = self.window_ms if source is self.state else other.window_ms
        return Part(self.state.merge(other.state), window_ms)


@dataclass(frozen=True, slots=True)
class Lineage:
    base: Part | None = None
    current: Part | None = None
    pending: frozenset[str] = frozenset()
    seq: int = 0
    evictions: int = 0

    def events(self) -> set[str]:
        out: set[str] = set()
        for part in (self.base, self.current):
            if part is not None:
                out |= part.state.seen
        return out

    def whole(self) -> Part | None:
        """The task as the row shows it: merge(base, current)."""
        if self.base is None:
            return self.current
        if self.current is None:
            return self.base
        return self.base.merge(self.current)

    def apply_snapshot(self, part: Part) -> tuple[Lineage, Applied]:
        seen = part.state.seen
        stored = self.events()
        if seen <= stored:
            return self, Applied.already_stored
        current = self.current.state.seen if self.current else set()
        base = self.base.state.seen if self.base else set()
        if current <= seen and not (seen & base):
            return self._changed(current=part), Applied.applied
        return self._diverged(seen - stored), Applied.diverged

    def apply_eviction(self, part: Part) -> tuple[Lineage, Applied]:
        """The last state of the current start: it becomes (part of) the base."""
        seen = part.state.seen
        current = self.current.state.seen if self.current else set()
        base = self.base.state.seen if self.base else set()
        if seen <= base:
            return self, Applied.already_stored  # an eviction record delivered again
        if current <= seen and not (seen & base):
            merged = part if self.base is None else self.base.merge(part)
            return (
                self._changed(base=merged, current=None, evictions=self.evictions + 1),
                Applied.applied,
            )
        return self._diverged(seen - self.events()), Applied.diverged

    def _diverged(self, unapplied: set[str]) -> Lineage:
        if unapplied <= self.pending:
            return self  # nothing new to keep: no write
        return self._changed(pending=self.pending | unapplied)

    def _changed(self, **fields: Any) -> Lineage:
        changed = replace(self, seq=self.seq + 1, **fields)
        # Events that reached the row are no longer pending.
        return replace(changed, pending=frozenset(changed.pending - changed.events()))
