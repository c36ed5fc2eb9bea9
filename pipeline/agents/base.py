"""What stage 1's event handling shares: the stage, its counters, keyed decoding.

The stage is split by concern: :class:`~pipeline.agents.task_store.TaskStore` (state
and retention), :class:`~pipeline.agents.outputs.Outputs` (typed sends) and
:class:`WorkerCounters`. Events arrive a whole fetch at a time
(:mod:`pipeline.agents.batch`); each event type's own concern is one function that
applies a decoded event to its task's state (``calls``, ``tasks``, ``outcomes``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.agents.commit_safety import fail_stop
from pipeline.agents.outputs import Outputs, RecordTopic
from pipeline.agents.task_store import TaskStore
from pipeline.errors import KeyMismatch
from pipeline.events.decode import decode_event
from pipeline.events.lean import AnyEvent, lean_event
from pipeline.join.retention import RetentionIndex
from pipeline.join.state import DEFAULT_WINDOW, OutcomeWindow, TaskState
from pipeline.join.task_caps import TaskCap
from pipeline.pricing.engine import CompiledBook

log = logging.getLogger("costflow.worker")


@dataclass
class WorkerCounters:
    """What stage 1 did, by event type (``call``/``task``/``outcome``), dead-letter
    reason, or ``provider/model`` for unpriced calls. Logged at exit; the stall
    watchdog reads :meth:`progress`."""

    processed: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    dead_lettered: Counter[str] = field(default_factory=Counter)
    unpriced: Counter[str] = field(default_factory=Counter)
    evicted: int = 0

    def progress(self) -> int:
        """Events handled in any way so far (monotonic)."""
        return (
            sum(self.processed.values())
            + sum(self.duplicates.values())
            + sum(self.dead_lettered.values())
        )


@dataclass
class Stage:
    """Everything an agent needs, built once by :func:`new_stage`."""

    store: TaskStore
    outputs: Outputs
    book: CompiledBook
    counters: WorkerCounters = field(default_factory=WorkerCounters)
    # task_budget caps checked on every snapshot (pipeline.join.task_caps).
    caps: tuple[TaskCap, ...] = ()
    # What to do on an error that is not bad input (see commit_safety): end the process.
    fail_stop: Callable[[BaseException, str], None] = field(default=fail_stop)


def new_stage(
    *,
    table: MutableMapping[str, Any],
    priced_calls: RecordTopic,
    task_snapshots: RecordTopic,
    dead_letter: RecordTopic,
    book: CompiledBook,
    window: OutcomeWindow = DEFAULT_WINDOW,
    retention: RetentionIndex | None = None,
    max_future_ms: int = 3_600_000,
    changelog: Callable[[int, str, str | None], None] | None = None,
    caps: Sequence[TaskCap] = (),
) -> Stage:
    """A stage over ``table`` (the Faust table's store, or a dict in tests) and three
    topics; ``changelog`` is told of every table write (see TaskStore); ``caps``: the
    task_budget caps every snapshot is checked against."""
    store = TaskStore(
        table,
        window=window,
        retention=retention if retention is not None else RetentionIndex(7 * 86_400_000),
        max_future_ms=max_future_ms,
        changelog=changelog,
    )
    return Stage(store, Outputs(priced_calls, task_snapshots, dead_letter), book,
                 caps=tuple(caps))  # fmt: skip


# An event type's own concern: apply one decoded event to its task's state; True if
# it was new to the state.
Apply = Callable[["Stage", Any, TaskState], bool]


def decode_keyed(message: Any, expected_type: str) -> AnyEvent:
    """Decode and check the record is keyed by its task_id (the join depends on it).

    A record in the common shape is decoded lean (:mod:`pipeline.events.lean`);
    anything else through the models, which give the reason for refusing it."""
    value = message.value
    lean = lean_event(value, expected_type) if value is not None else None
    event: AnyEvent = lean if lean is not None else decode_event(value, expected_type)
    key = message.key
    if key is None:
        raise KeyMismatch(
            f"record has no key; produce {expected_type} events with key = task_id "
            f"({event.task_id!r}) so all of a task's events share a partition"
        )
    key_text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
    if key_text != event.task_id:
        raise KeyMismatch(f"record key {key_text!r} is not its task_id {event.task_id!r}")
    return event
