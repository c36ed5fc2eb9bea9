"""Per-task state: a pure function of the *set* of events applied to it.

Why a set function: after a crash, Kafka re-delivers events and the three input
topics interleave differently than the first time. If the state (and so every
snapshot) depends only on which events were applied, never on their order, then
``version = number of distinct events`` identifies the content of the latest
snapshot exactly, and ClickHouse keeping the highest version per task is exact:
a re-emitted snapshot with the same version carries the same numbers.

Every rule below is chosen to be order-independent:
- cost, tokens and counts are sums (Decimal sums are exact in the MONEY context);
- a task event's scenario/owner/environment wins over a call's; among task
  events the latest by (ts, event_id) that sets the field wins; among calls the
  earliest by (ts, event_id);
- the outcome is the latest outcome event by (ts, event_id);
- ``models`` is the set of models the task's calls used; the experiment label
  (``attributes.experiment``) is picked like scenario/owner/environment;
- the outcome deadline follows from the last event and the resolved scenario.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from pipeline.events.lean import AnyCall, AnyOutcome, AnyTask
from pipeline.events.models import CallStatus, TaskPhase
from pipeline.pricing.engine import MONEY

_TASK_FIELDS = ("scenario_id", "owner", "environment")
# The fields above, then labels from an event's attributes, picked by the same rules.
_LABELS = (*_TASK_FIELDS, "experiment")


HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class OutcomeWindow:
    """How long after its last event a task waits for an outcome before it is unresolved.

    The deadline is the first whole hour after ``last event + window``: never
    shorter than configured, and on hour boundaries so that analytics can
    aggregate open tasks by deadline and still say exactly which are overdue.
    A task that gets an outcome after its deadline simply becomes resolved.
    """

    default_ms: int = 24 * HOUR_MS
    by_scenario_ms: Mapping[str, int] = field(default_factory=dict)

    def deadline_ms(self, scenario_id: str, last_event_ms: int) -> int:
        window = self.by_scenario_ms.get(scenario_id, self.default_ms)
        return ((last_event_ms + window) // HOUR_MS + 1) * HOUR_MS


DEFAULT_WINDOW = OutcomeWindow()

# (ts_ms, event_id, value): ordering tuples compare ts first, then event_id.
_Pick = tuple[int, str, str]


@dataclass(slots=True)
class TaskState:
    task_id: str
    seen: set[str] = field(default_factory=set)
    calls: int = 0
    failed_calls: int = 0
    retried_calls: int = 0
    fallback_calls: int = 0
    unpriced_calls: int = 0
    total_cost: Decimal = Decimal(0)
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    first_event_ms: int | None = None
    last_event_ms: int | None = None
    started_ms: int | None = None
    completed_ms: int | None = None
    # Distinct models of the task's calls: "tasks that used model M" (decision template).
    models: set[str] = field(default_factory=set)
    # field name -> latest task-event pick / earliest call pick
    from_task: dict[str, _Pick] = field(default_factory=dict)
    from_call: dict[str, _Pick] = field(default_factory=dict)
    # (ts_ms, event_id, outcome, source)
    outcome: tuple[int, str, str, str] | None = None
    # The worker's state partition the task lives in (for retention after a restart).
    partition: int = -1
    # The partition's event-time watermark when this state was created. A task's state
    # can leave the worker (retention) and start again from a later event: events too
    # old for that new start are refused (see agents.base), so the old and the new
    # state never share an event and the sink can merge them exactly (see merge()).
    born_ms: int = 0

    @property
    def version(self) -> int:
        return len(self.seen)

    # --- applying events ------------------------------------------------

    def _admit(self, event_id: str, ts_ms: int) -> bool:
        if event_id in self.seen:
            return False
        self.seen.add(event_id)
        if self.first_event_ms is None or ts_ms < self.first_event_ms:
            self.first_event_ms = ts_ms
        if self.last_event_ms is None or ts_ms > self.last_event_ms:
            self.last_event_ms = ts_ms
        return True

    def apply_call(
        self, call: AnyCall, cost_total: Decimal | None, known_cost: Decimal | None = None
    ) -> bool:
        """Add a call: priced (``cost_total``), or not completely (``cost_total=None``;
        ``known_cost``: the part that could be priced, if any). False if already applied.

        ``total_cost`` is the sum of what is known: exact while ``unpriced_calls`` is
        0, a lower bound otherwise."""
        ts = call.ts_ms
        if not self._admit(call.event_id, ts):
            return False
        self.calls += 1
        if call.status is not CallStatus.ok:
            self.failed_calls += 1
        if call.attempt > 1 or call.retry_of is not None:
            self.retried_calls += 1
        if call.fallback_from is not None:
            self.fallback_calls += 1
        if cost_total is None:
            self.unpriced_calls += 1
            if known_cost is not None:
                self.total_cost = MONEY.add(self.total_cost, known_cost)
        else:
            self.total_cost = MONEY.add(self.total_cost, cost_total)
        usage = call.usage
        self.input_tokens += usage.input_tokens
        self.cache_read_tokens += usage.cache_read_tokens
        # The task keeps one cache-write count: both TTLs (calls keep them apart).
        self.cache_write_tokens += usage.cache_write_tokens + usage.cache_write_1h_tokens
        self.output_tokens += usage.output_tokens
        self.reasoning_tokens += usage.reasoning_tokens
        self.models.add(call.model)
        for name, value in zip(_LABELS, _labels(call), strict=True):
            if value is not None:
                pick = (ts, call.event_id, value)
                current = self.from_call.get(name)
                if current is None or pick[:2] < current[:2]:
                    self.from_call[name] = pick
        return True

    def apply_task(self, task: AnyTask) -> bool:
        ts = task.ts_ms
        if not self._admit(task.event_id, ts):
            return False
        if task.phase is TaskPhase.started:
            if self.started_ms is None or ts < self.started_ms:
                self.started_ms = ts
        elif self.completed_ms is None or ts > self.completed_ms:
            self.completed_ms = ts
        for name, value in zip(_LABELS, _labels(task), strict=True):
            if value is not None:
                pick = (ts, task.event_id, value)
                current = self.from_task.get(name)
                if current is None or pick[:2] > current[:2]:
                    self.from_task[name] = pick
        return True

    def apply_outcome(self, outcome: AnyOutcome) -> bool:
        ts = outcome.ts_ms
        if not self._admit(outcome.event_id, ts):
            return False
        candidate = (ts, outcome.event_id, outcome.outcome.value, outcome.source.value)
        if self.outcome is None or candidate[:2] > self.outcome[:2]:
            self.outcome = candidate
        return True

    # --- reading ---------------------------------------------------------

    def resolved(self, name: str) -> str | None:
        pick = self.from_task.get(name) or self.from_call.get(name)
        return pick[2] if pick else None

    def deadline_ms(self, window: OutcomeWindow = DEFAULT_WINDOW) -> int:
        return window.deadline_ms(self.resolved("scenario_id") or "", self.last_event_ms or 0)

    def window_ms(self, window: OutcomeWindow = DEFAULT_WINDOW) -> int:
        """The outcome window of the task's resolved scenario."""
        return window.by_scenario_ms.get(self.resolved("scenario_id") or "", window.default_ms)

    def snapshot(self, window: OutcomeWindow = DEFAULT_WINDOW) -> dict[str, Any]:
        """The row the task fact table stores; Decimal as string, times as epoch ms."""
        return self.row(self.window_ms(window))

    def row(self, window_ms: int) -> dict[str, Any]:
        """:meth:`snapshot` for a known window of the resolved scenario."""
        scenario_id = self.resolved("scenario_id") or ""
        last = self.last_event_ms or 0
        return {
            "task_id": self.task_id,
            "version": self.version,
            "scenario_id": scenario_id,
            "environment": self.resolved("environment") or "",
            "owner": self.resolved("owner") or "",
            "first_event_ms": self.first_event_ms,
            "last_event_ms": self.last_event_ms,
            "started_ms": self.started_ms,
            "completed_ms": self.completed_ms,
            "calls": self.calls,
            "failed_calls": self.failed_calls,
            "retried_calls": self.retried_calls,
            "fallback_calls": self.fallback_calls,
            "unpriced_calls": self.unpriced_calls,
            "total_cost": str(self.total_cost),
            "input_tokens": self.input_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "outcome": self.outcome[2] if self.outcome else "",
            "outcome_source": self.outcome[3] if self.outcome else "",
            "outcome_ms": self.outcome[0] if self.outcome else None,
            "outcome_deadline_ms": ((last + window_ms) // HOUR_MS + 1) * HOUR_MS,
            "models": sorted(self.models),
            "experiment": self.resolved("experiment") or "",
        }

    # --- persistence (Faust table values) -------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "seen": list(self.seen),  # per event: no sort, order carries no meaning
            "counts": [
                self.calls,
                self.failed_calls,
                self.retried_calls,
                self.fallback_calls,
                self.unpriced_calls,
            ],
            "total_cost": str(self.total_cost),
            "tokens": [
                self.input_tokens,
                self.cache_read_tokens,
                self.cache_write_tokens,
                self.output_tokens,
                self.reasoning_tokens,
            ],
            "times": [self.first_event_ms, self.last_event_ms, self.started_ms, self.completed_ms],
            "from_task": {k: list(v) for k, v in self.from_task.items()},
            "from_call": {k: list(v) for k, v in self.from_call.items()},
            "outcome": list(self.outcome) if self.outcome else None,
            "partition": self.partition,
            "models": list(self.models),  # a set: order carries no meaning
            "born": self.born_ms,
        }

    def to_stored(self, data: dict[str, Any] | None = None) -> str:
        """The table value: compact JSON text (of ``data``, this state's ``to_json()``
        when the caller has it already). A str takes a quarter of the memory of the
        same state as nested dicts and lists in Faust's in-memory store."""
        return orjson.dumps(self.to_json() if data is None else data).decode()

    @classmethod
    def from_stored(cls, value: str | dict[str, Any]) -> TaskState:
        # dict: a changelog record written before states were stored as text.
        return cls.from_json(orjson.loads(value) if isinstance(value, str) else value)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskState:
        state = cls(task_id=data["task_id"], seen=set(data["seen"]))
        (
            state.calls,
            state.failed_calls,
            state.retried_calls,
            state.fallback_calls,
            state.unpriced_calls,
        ) = data["counts"]
        state.total_cost = Decimal(data["total_cost"])
        (
            state.input_tokens,
            state.cache_read_tokens,
            state.cache_write_tokens,
            state.output_tokens,
            state.reasoning_tokens,
        ) = data["tokens"]
        state.first_event_ms, state.last_event_ms, state.started_ms, state.completed_ms = data[
            "times"
        ]
        state.from_task = {k: (v[0], v[1], v[2]) for k, v in data["from_task"].items()}
        state.from_call = {k: (v[0], v[1], v[2]) for k, v in data["from_call"].items()}
        raw = data["outcome"]
        state.outcome = (raw[0], raw[1], raw[2], raw[3]) if raw else None
        state.partition = data.get("partition", -1)
        # Absent in states stored before tasks tracked their models (migration 0007).
        state.models = set(data.get("models", ()))
        # Absent in states stored before restarts of a task's state were told apart.
        state.born_ms = data.get("born", 0)
        return state

    # --- merging (the sink, for a task whose state left the worker) -------

    def merge(self, other: TaskState) -> TaskState:
        """The state of both event sets, which must be disjoint.

        Exact because every field is a sum, a min/max, or a "latest/earliest by
        (ts, event_id)" pick, each of which combines over a union of disjoint sets.
        Raises ValueError when the sets share an event (a shared event would count
        twice in the sums).
        """
        shared = self.seen & other.seen
        if shared:
            raise ValueError(
                f"task {self.task_id!r}: states share {len(shared)} events "
                f"(e.g. {sorted(shared)[:3]}); only disjoint states merge exactly"
            )
        out = TaskState(task_id=self.task_id, seen=self.seen | other.seen)
        for name in ("calls", "failed_calls", "retried_calls", "fallback_calls",
                     "unpriced_calls", "input_tokens", "cache_read_tokens",
                     "cache_write_tokens", "output_tokens", "reasoning_tokens"):  # fmt: skip
            setattr(out, name, getattr(self, name) + getattr(other, name))
        out.total_cost = MONEY.add(self.total_cost, other.total_cost)
        out.first_event_ms = _pick_min(self.first_event_ms, other.first_event_ms)
        out.last_event_ms = _pick_max(self.last_event_ms, other.last_event_ms)
        out.started_ms = _pick_min(self.started_ms, other.started_ms)
        out.completed_ms = _pick_max(self.completed_ms, other.completed_ms)
        out.models = self.models | other.models
        for name in _LABELS:
            latest = [p for p in (self.from_task.get(name), other.from_task.get(name)) if p]
            if latest:
                out.from_task[name] = max(latest, key=lambda p: p[:2])
            earliest = [p for p in (self.from_call.get(name), other.from_call.get(name)) if p]
            if earliest:
                out.from_call[name] = min(earliest, key=lambda p: p[:2])
        outcomes = [o for o in (self.outcome, other.outcome) if o]
        out.outcome = max(outcomes, key=lambda o: o[:2]) if outcomes else None
        out.partition = self.partition if self.partition >= 0 else other.partition
        out.born_ms = min(self.born_ms, other.born_ms)
        return out

    def scenario_source(self, other: TaskState) -> TaskState:
        """Of ``self`` and ``other``, the state whose pick resolves the merged scenario.

        Its outcome window is the merged task's: a task-event pick (latest) beats a
        call pick (earliest), as in :meth:`resolved`.
        """
        mine, theirs = self.from_task.get("scenario_id"), other.from_task.get("scenario_id")
        if mine or theirs:
            return self if theirs is None or (mine is not None and mine[:2] > theirs[:2]) else other
        mine, theirs = self.from_call.get("scenario_id"), other.from_call.get("scenario_id")
        if mine and theirs:
            return self if mine[:2] < theirs[:2] else other
        return self if mine else other


def _pick_min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _pick_max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _labels(event: AnyCall | AnyTask) -> tuple[str | None, ...]:
    """The event's values of _LABELS, None where unset (per event: no loop, no list)."""
    experiment = event.attributes.get("experiment") if event.attributes else None
    return (event.scenario_id, event.owner, event.environment, experiment or None)
