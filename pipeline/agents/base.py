"""What the three agents share: the stage, the per-event loop, registration.

Per event: decode and validate; if bad, dead-letter it with its original bytes and a
reason and move on (the worker never dies of an event). Otherwise apply it to the
task's state; if it was new, store the state; in every case emit the snapshot.
Outputs are only buffered (see :mod:`pipeline.agents.outputs` for why a crash can
only cause re-delivery). An error that is not bad input stops the process before the
event is acked (fail-stop).

The stage is split by concern: :class:`~pipeline.agents.task_store.TaskStore` (state
and retention), :class:`~pipeline.agents.outputs.Outputs` (typed sends) and
:class:`WorkerCounters`. The partition of the event being handled travels in a
:class:`Delivery` passed down explicitly, never on shared state: the three agents run
concurrently over one stage.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.agents.commit_safety import fail_stop
from pipeline.agents.outputs import Outputs, RecordTopic
from pipeline.agents.task_store import AnyEvent, Held, TaskStore
from pipeline.errors import InvalidEvent, KeyMismatch
from pipeline.events.decode import decode_event
from pipeline.join.retention import RetentionIndex
from pipeline.join.state import DEFAULT_WINDOW, OutcomeWindow, TaskState, epoch_ms
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


@dataclass(frozen=True)
class Delivery:
    """The event being handled: its task's partition, and its task's state as read
    when the event was checked (None if the store did not hold the task)."""

    partition: int
    held: Held | None = None


@dataclass
class Stage:
    """Everything an agent needs, built once by :func:`new_stage`."""

    store: TaskStore
    outputs: Outputs
    book: CompiledBook
    counters: WorkerCounters = field(default_factory=WorkerCounters)
    # What to do on an error that is not bad input (see commit_safety): end the process.
    fail_stop: Callable[[BaseException, str], None] = field(default=fail_stop)

    def update(self, delivery: Delivery, task_id: str, apply: Callable[[TaskState], bool]) -> bool:
        """Apply one event to a task and emit its snapshot; False if already applied.

        A re-delivered event still re-emits the snapshot: the table's changelog write
        and the outputs are separate records, so a crash can persist "applied" while
        losing the outputs. Re-emission carries the same content at the same version
        (the state is a function of its event set), so ClickHouse absorbs it.
        """
        state = self.store.load(task_id, delivery.partition, delivery.held)
        applied = apply(state)
        if applied:
            self.store.store(state, delivery.partition)
        self.outputs.snapshot(state, self.store.window)
        return applied

    def observed(self, event: AnyEvent, delivery: Delivery) -> None:
        """Advance the event's partition's watermark; tell the sink of every task it
        evicts."""
        for state in self.store.observe(delivery.partition, epoch_ms(event)):
            self.outputs.evicted(state, self.store.window)
            self.counters.evicted += 1


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
) -> Stage:
    """A stage over ``table`` (a Faust table, or a dict in tests) and three topics."""
    store = TaskStore(
        table,
        window=window,
        retention=retention if retention is not None else RetentionIndex(7 * 86_400_000),
        max_future_ms=max_future_ms,
    )
    return Stage(store, Outputs(priced_calls, task_snapshots, dead_letter), book)


# An agent's own concern: apply one decoded event; True if it was new to its task.
Apply = Callable[[Stage, Any, Delivery], bool]


def decode_keyed(message: Any, expected_type: str) -> AnyEvent:
    """Decode and check the record is keyed by its task_id (the join depends on it)."""
    event = decode_event(message.value, expected_type)
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


async def consume(
    stream: AsyncIterator[Any], stage: Stage, expected_type: str, apply: Apply
) -> None:
    """The loop every agent runs over Faust events; ``apply`` is the agent's concern."""
    counters = stage.counters
    async for event in stream:
        message = event.message
        partition = message.partition
        try:
            decoded = decode_keyed(message, expected_type)
            held = stage.store.check_in_time(decoded, partition)
        except InvalidEvent as error:
            counters.dead_lettered[error.code] += 1
            stage.outputs.dead_letter_of(message, error)
            continue
        except Exception as error:  # a bug, not bad input: stop without acking
            stage.fail_stop(error, f"decoding {message.topic}[{partition}]@{message.offset}")
            raise
        try:
            delivery = Delivery(partition, held)
            applied = apply(stage, decoded, delivery)
            stage.observed(decoded, delivery)
        except Exception as error:
            stage.fail_stop(error, f"applying {expected_type} {decoded.event_id!r}")
            raise
        if applied:
            counters.processed[expected_type] += 1
        else:
            counters.duplicates[expected_type] += 1


def register_agent(app: Any, stage: Stage, topic: Any, expected_type: str, apply: Apply) -> Any:
    """One Faust agent on ``topic``; ``apply`` is the concern of the agent's module."""

    @app.agent(topic, name=f"costflow.{expected_type}s")
    async def agent(stream: Any) -> None:
        await consume(stream.events(), stage, expected_type, apply)

    return agent
