"""What stage 1 sends: priced calls, task snapshots and evictions, dead letters.

Records are encoded by :mod:`pipeline.records` (the stage-1 -> stage-2 contract) and
handed to ``send_soon``, which only collects them: the fetch handler
(:mod:`pipeline.agents.batch_output`) sends a fetch's records together and the
fetch's inputs are acknowledged only once the broker has them all, so a crash can
only cause re-delivery, never an acked input without its outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.errors import InvalidEvent
from pipeline.events.lean import AnyCall
from pipeline.join.state import OutcomeWindow, TaskState
from pipeline.pricing.engine import CallCost
from pipeline.records import DeadLetterHeaders, priced_call, task_evicted, task_snapshot

log = logging.getLogger("costflow.worker")


class RecordTopic(Protocol):
    """A topic that takes a record for sending later (``CollectingTopic`` in the worker)."""

    def send_soon(self, *, key: bytes | None, value: bytes, headers: Any = None) -> Any:
        """Queue one record; raw bytes in, nothing awaited."""


class MessageLike(Protocol):
    """The parts of a consumed Kafka message a dead letter keeps."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass
class Outputs:
    """Stage 1's three output topics, each keyed by ``task_id`` (dead letters by the
    original key)."""

    priced_calls: RecordTopic
    task_snapshots: RecordTopic
    dead_letter: RecordTopic

    def priced_call(
        self,
        call: AnyCall,
        cost: CallCost | None,
        error: str | None,
        book_label: str,
        known: CallCost | None = None,
        unpriced_dimensions: tuple[str, ...] = (),
    ) -> None:
        """The call with its cost (or, not completely priced, its reason, the known
        part and the unpriced dimensions) and the book that priced it."""
        value = priced_call(call, cost, error, book_label, known, unpriced_dimensions)
        self.priced_calls.send_soon(key=call.task_id.encode(), value=value)

    def snapshot(
        self,
        state: TaskState,
        window: OutcomeWindow,
        task_alerts: Sequence[Mapping[str, str]] = (),
        state_json: dict[str, Any] | None = None,
    ) -> None:
        """The task's whole state at its version (the sink keeps the highest), with
        the caps it is at or over (``state_json``: ``state.to_json()``, if known)."""
        value = task_snapshot(state, window, task_alerts, state_json)
        self.task_snapshots.send_soon(key=state.task_id.encode(), value=value)

    def evicted(self, state: TaskState, window: OutcomeWindow) -> None:
        """The task left stage 1; the sink keeps its state as the base of a later start."""
        self.task_snapshots.send_soon(key=state.task_id.encode(), value=task_evicted(state, window))

    def dead_letter_of(self, message: MessageLike, error: InvalidEvent) -> None:
        """The original bytes with the reason and where they came from, in headers."""
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
