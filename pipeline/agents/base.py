"""What the three agents share: decoding, dead-lettering, state updates, emitting.

Per event: decode and validate; if bad, dead-letter it with its original bytes
and a reason and move on (the worker never dies of an event). Otherwise apply
it to the task's state; if it was new, store the state and emit a snapshot.
Order matters for crash safety: outputs are sent before the input offset is
committed. ``send_soon`` only buffers, but Faust's commit awaits
``producer.flush()``, which (with :mod:`pipeline.agents.commit_safety`) drains
that buffer and the aiokafka producer first; so a crash can only cause
re-delivery, and re-delivery only re-emits identical snapshots. (Awaiting
``Topic.send`` per record was the worker's largest cost.) An error that is not
bad input stops the process before the event is acked (fail-stop).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.agents.commit_safety import fail_stop
from pipeline.errors import FutureTimestamp, InvalidEvent, KeyMismatch, TooLate
from pipeline.events.decode import decode_event
from pipeline.events.models import CallEvent, OutcomeEvent, TaskEvent
from pipeline.join.retention import RetentionIndex
from pipeline.join.state import DEFAULT_WINDOW, OutcomeWindow, TaskState, epoch_ms
from pipeline.pricing.engine import CompiledBook
from pipeline.records import DeadLetterHeaders, task_evicted, task_snapshot

log = logging.getLogger("costflow.worker")

# Table keys that hold a partition's watermark as of its last eviction, not a task.
_WATERMARK_PREFIX = "\x00costflow.watermark/"


def _iso(epoch_ms_value: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_ms_value / 1000))


def watermark_key(partition: int) -> str:
    return f"{_WATERMARK_PREFIX}{partition}"


def watermark_partition(key: str) -> int | None:
    """The partition of a watermark key; None for a task's key."""
    return int(key[len(_WATERMARK_PREFIX) :]) if key.startswith(_WATERMARK_PREFIX) else None


AnyEvent = CallEvent | TaskEvent | OutcomeEvent


@dataclass
class StageContext:
    """Everything an agent needs, built once by :func:`pipeline.app.create_app`."""

    task_state: Any  # faust Table[str, dict]
    priced_calls: Any  # faust Topic
    task_snapshots: Any
    dead_letter: Any
    book: CompiledBook
    window: OutcomeWindow = DEFAULT_WINDOW
    retention: RetentionIndex = field(default_factory=lambda: RetentionIndex(7 * 86_400_000))
    # Partition of the event being handled: the state partition of its task.
    partition: int = -1
    evicted: int = 0
    processed: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    dead_lettered: Counter[str] = field(default_factory=Counter)
    unpriced: Counter[str] = field(default_factory=Counter)
    max_future_ms: int = 3_600_000
    # (stored value, parsed state) of the event being handled: check_in_time parses it,
    # load() reuses it when the table still holds that same value object.
    _parsed: tuple[Any, TaskState] | None = None
    # What to do on an error that is not bad input (see commit_safety): end the process.
    fail_stop: Callable[[BaseException, str], None] = field(default=fail_stop)

    def load(self, task_id: str) -> TaskState:
        raw = self.task_state.get(task_id)
        if raw is None:
            return TaskState(task_id=task_id, born_ms=self.retention.watermark[self.partition])
        parsed = self._parsed
        self._parsed = None
        if parsed is not None and parsed[0] is raw:
            return parsed[1]  # parsed by check_in_time for this very value: once per event
        return TaskState.from_stored(raw)

    def _parse(self, raw: str) -> TaskState:
        """Parse a stored state and keep it for the load() that follows in this event."""
        state = TaskState.from_stored(raw)
        self._parsed = (raw, state)
        return state

    def update(self, task_id: str, apply: Callable[[TaskState], bool]) -> bool:
        """Apply one event to a task and emit its snapshot; False if already applied.

        A re-delivered event still re-emits the snapshot: the table's changelog write
        and the outputs are separate records, so a crash can persist "applied" while
        losing the outputs. Re-emission carries the same content at the same version
        (the state is a function of its event set), so ClickHouse absorbs it.
        """
        state = self.load(task_id)
        applied = apply(state)
        if applied:
            state.partition = self.partition
            self.task_state[state.task_id] = state.to_stored()
            self.retention.track(self.partition, task_id, state.deadline_ms(self.window))
        self.emit_snapshot(state)
        return applied

    # --- retention ------------------------------------------------------

    def check_in_time(self, event: AnyEvent) -> None:
        """Refuse an event too old for its task's state (see retention).

        For a task the worker does not hold: the watermark has passed the event's
        own deadline plus retention, so its task would already have left. For a
        task it holds: the same was true when this state was created (``born_ms``),
        so the state may be a new start of a task that left, whose older events
        belong to the state the sink already stored; applying one here would
        count it twice when the sink merges the two.
        """
        ts = epoch_ms(event)
        now_ms = int(time.time() * 1000)
        if ts > now_ms + self.max_future_ms:
            raise FutureTimestamp(
                f"event {event.event_id!r} is stamped {event.ts.isoformat()}, "
                f"{(ts - now_ms) / 3_600_000:.1f} h ahead of this worker's clock; fix the "
                "producer's clock or timestamps, then re-submit it with "
                "`costflow dead-letter replay`"
            )
        raw = self.task_state.get(event.task_id)
        deadline = self.window.deadline_ms(getattr(event, "scenario_id", None) or "", ts)
        expiry = self.retention.expiry_ms(deadline)
        if raw is None:
            mark = self.retention.watermark[self.partition]
            if expiry > mark:
                return
            against = f"the latest event time seen on partition {self.partition} ({_iso(mark)})"
        else:
            born = self._parse(raw).born_ms
            if expiry > born:
                return
            against = (
                f"the event time at which the worker started this task's state again "
                f"after it had left ({_iso(born)})"
            )
        raise TooLate(
            f"task {event.task_id!r}: this event (ts {event.ts.isoformat()}) is past its "
            f"outcome window plus the {self.retention.retention_ms // 3_600_000} h retention, "
            f"measured against {against}. Raise COSTFLOW_WORKER_STATE_RETENTION_S and "
            "re-submit it with `costflow dead-letter replay`."
        )

    def observed(self, event: AnyEvent) -> None:
        """Advance the partition's watermark and drop the tasks it has passed."""
        self.retention.observe(self.partition, epoch_ms(event))
        for task_id in self.retention.due(self.partition):
            raw = self.task_state.get(task_id)
            if raw is None:
                self.retention.forget(task_id)
                continue
            state = TaskState.from_stored(raw)
            deadline = state.deadline_ms(self.window)
            if self.retention.too_late(self.partition, deadline):
                self.evict(state)
            else:  # it got events since it was tracked
                self.retention.retrack(self.partition, task_id, deadline)

    def evict(self, state: TaskState) -> None:
        """Drop a task's state, telling the sink first (it keeps the state as the base
        that a later start of the task merges with) and keeping the watermark, so
        that after a restart events older than the evicted state are still refused.
        Same partition as the current event, so the tombstone and the watermark go
        to the right changelog partition."""
        self.task_snapshots.send_soon(
            key=state.task_id.encode(), value=task_evicted(state, self.window)
        )
        self.task_state[watermark_key(self.partition)] = str(
            self.retention.watermark[self.partition]
        )
        del self.task_state[state.task_id]
        self.retention.forget(state.task_id)
        self.evicted += 1

    def reindex(self) -> None:
        """After the table was recovered from its changelog: track every task again."""
        for task_id, raw in list(self.task_state.items()):
            partition = watermark_partition(task_id)
            if partition is not None:
                self.retention.observe(partition, int(raw))
                continue
            state = TaskState.from_stored(raw)
            if state.partition >= 0:
                self.retention.track(state.partition, task_id, state.deadline_ms(self.window))

    def emit_snapshot(self, state: TaskState) -> None:
        self.task_snapshots.send_soon(
            key=state.task_id.encode(), value=task_snapshot(state, self.window)
        )

    async def send_dead_letter(self, message: Any, error: InvalidEvent) -> None:
        self.dead_lettered[error.code] += 1
        headers = DeadLetterHeaders(
            reason=error.code,
            detail=str(error),
            source_topic=str(message.topic),
            source_partition=message.partition,
            source_offset=message.offset,
        ).to_kafka()
        value = message.value if isinstance(message.value, bytes) else b""
        self.dead_letter.send_soon(key=message.key, value=value, headers=headers)
        log.warning(
            "dead-lettered %s[%s]@%s: %s: %s",
            message.topic,
            message.partition,
            message.offset,
            error.code,
            error,
        )


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
    stream: AsyncIterator[Any],
    ctx: StageContext,
    expected_type: str,
    apply: Callable[[StageContext, Any], Any],
) -> None:
    """The loop every agent runs; ``apply`` is the agent's own concern."""
    async for event in stream:
        message = event.message
        ctx.partition = message.partition
        try:
            decoded = decode_keyed(message, expected_type)
            ctx.check_in_time(decoded)
        except InvalidEvent as error:
            await ctx.send_dead_letter(message, error)
            continue
        except Exception as error:  # a bug, not bad input: stop without acking
            ctx.fail_stop(error, f"decoding {message.topic}[{message.partition}]@{message.offset}")
            raise
        try:
            applied = await apply(ctx, decoded)
            ctx.observed(decoded)
        except Exception as error:
            ctx.fail_stop(error, f"applying {expected_type} {decoded.event_id!r}")
            raise
        if applied:
            ctx.processed[expected_type] += 1
        else:
            ctx.duplicates[expected_type] += 1


def register_agent(
    app: Any,
    ctx: StageContext,
    topic: Any,
    expected_type: str,
    apply: Callable[[StageContext, Any], Any],
) -> Any:
    """One Faust agent on ``topic``; ``apply`` is the concern of the agent's module."""

    @app.agent(topic, name=f"costflow.{expected_type}s")
    async def agent(stream: Any) -> None:
        await consume(stream.events(), ctx, expected_type, apply)

    return agent
