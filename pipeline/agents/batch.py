"""Stage 1 over a whole fetch: decode, group by task, apply, store once, emit.

Per batch (the records of one fetch, from the three input topics):

1. Decode every record and check it is keyed by its task_id; bad input is
   dead-lettered with its original bytes and a reason, and counted.
2. Group the events by (partition, task_id). For each task: read its state once,
   check each event is in time (against the state as held, or the partition's
   watermark as of the batch's start), apply every event, write the state once if
   any was new, and emit one snapshot (also when all were duplicates: see below).
   Every call emits its priced record. A snapshot names the task_budget caps its
   task is at or over (``pipeline.join.task_caps``).
3. Advance each partition's watermark to the latest event time of the batch and
   evict the tasks it passes (their last state goes to the sink).

Why this equals the event-by-event result: a task's state is a function of its
event set (``TaskState`` applies events in any order, a duplicate is a no-op), so
applying a task's events together, in any order, gives the same state. The
too-late check uses the watermark as of the batch's start, never one advanced by
events after it in the same batch, and evictions happen after the batch; so a
state that begins again after its task left is still born at or after the
watermark that evicted the old one, and the two never share an event (see
``TaskStore.check_in_time``).

Re-delivered events re-emit their outputs: the changelog write and the outputs are
separate records, so a crash may have persisted "applied" while losing the outputs
(the inputs were not acknowledged then, so Kafka delivers them again). Re-emission
carries the same content at the same version (the state is a function of its event
set), so the sink absorbs it.

No Kafka here: the caller (``pipeline.kafka.batch_consumer``) feeds records and
sends what the stage's outputs collected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.agents.base import Apply, Stage, decode_keyed
from pipeline.agents.calls import apply_call
from pipeline.agents.outcomes import apply_outcome
from pipeline.agents.tasks import apply_task
from pipeline.errors import InvalidEvent
from pipeline.events.lean import AnyEvent
from pipeline.join.state import TaskState
from pipeline.join.task_caps import crossed_caps

# Each input topic's event type, and what applying one of its events means.
APPLY: dict[str, Apply] = {"call": apply_call, "task": apply_task, "outcome": apply_outcome}


@dataclass(slots=True)
class InputRecord:
    """One record of an input topic, as fetched (``event_type``: the topic's type).

    Treat it as immutable; not declared frozen because one is built per record
    fetched, and a frozen dataclass builds itself with a setattr call per field."""

    event_type: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def apply_batch(stage: Stage, records: Sequence[InputRecord]) -> None:
    """Apply a fetch's records to the stage; outputs go to ``stage.outputs``.

    Raises whatever is not bad input (a bug, an unexpected error): the caller must
    then stop without acknowledging the batch.
    """
    counters = stage.counters
    tasks: dict[tuple[int, str], list[tuple[InputRecord, AnyEvent]]] = {}
    for record in records:
        try:
            event = decode_keyed(record, record.event_type)
        except InvalidEvent as error:
            counters.dead_lettered[error.code] += 1
            stage.outputs.dead_letter_of(record, error)
            continue
        tasks.setdefault((record.partition, event.task_id), []).append((record, event))

    latest: dict[int, int] = {}
    store = stage.store
    now_ms = store.clock_ms()  # once per batch: a fetch is applied within milliseconds
    for (partition, task_id), events in tasks.items():
        held = store.held(task_id)
        state: TaskState | None = held
        changed = False
        for record, event in events:
            try:
                store.check_in_time(event, partition, held, now_ms)
            except InvalidEvent as error:
                counters.dead_lettered[error.code] += 1
                stage.outputs.dead_letter_of(record, error)
                continue
            if state is None:
                state = store.new_state(task_id, partition)
            if APPLY[record.event_type](stage, event, state):
                changed = True
                counters.processed[record.event_type] += 1
            else:
                counters.duplicates[record.event_type] += 1
            ts = event.ts_ms
            if partition not in latest or ts > latest[partition]:
                latest[partition] = ts
        if state is None:
            continue  # every event of the task was refused
        stored = store.store(state, partition) if changed else None
        alerts = crossed_caps(stage.caps, state) if stage.caps else ()
        stage.outputs.snapshot(state, store.window, alerts, stored)

    for partition, ts in latest.items():
        for evicted in store.observe(partition, ts):
            stage.outputs.evicted(evicted, store.window)
            counters.evicted += 1
