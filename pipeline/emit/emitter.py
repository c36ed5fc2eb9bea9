"""Sending events to costflow's input topics from an application.

An :class:`Emitter` wraps one confluent-kafka producer (``acks=all``, Java's
partitioner so ``task_id`` lands where stage 1 joins it). Sending is asynchronous;
:meth:`Emitter.flush` (and :meth:`Emitter.close`, and leaving the ``with`` block)
waits until the broker acknowledged everything and raises
:class:`~pipeline.errors.KafkaError` for what it did not: an application that
needs every call counted calls it before it reports success.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from pipeline.config import KafkaSettings, TopicSettings
from pipeline.emit.events import call_event, outcome_event, task_event, to_json
from pipeline.events.models import CallEvent, OutcomeEvent, TaskEvent
from pipeline.kafka.produce import Sender


class Emitter:
    """``task``, ``call`` and ``outcome`` helpers that build contract-v1 events (see
    :mod:`pipeline.emit.events` for their arguments) and send them, keyed by task id.

    Raises what the builders raise (UsageNotMappable, ValidationError) before
    anything is sent, and KafkaError from :meth:`flush`."""

    def __init__(self, kafka: KafkaSettings, topics: TopicSettings) -> None:
        self._topics = topics
        self._sender = Sender(kafka)

    def task(self, task_id: str, phase: str = "started", **fields: Any) -> TaskEvent:
        """Send a task event; returns it."""
        event = task_event(task_id, phase, **fields)
        self._send(self._topics.tasks, event)
        return event

    def call(self, response_or_usage: Any, *, task_id: str, **fields: Any) -> CallEvent:
        """Send the call event of one provider response (or MappedUsage); returns it."""
        event = call_event(response_or_usage, task_id=task_id, **fields)
        self._send(self._topics.calls, event)
        return event

    def outcome(self, task_id: str, outcome: str, **fields: Any) -> OutcomeEvent:
        """Send a task's outcome (``accepted``, ``rejected`` or ``failed``); returns it."""
        event = outcome_event(task_id, outcome, **fields)
        self._send(self._topics.outcomes, event)
        return event

    def flush(self, timeout_s: float = 30) -> int:
        """Wait for the broker to acknowledge every event sent; returns how many were
        sent in all. Raises KafkaError naming what was not delivered."""
        return sum(self._sender.flush(timeout_s).values())

    def close(self) -> None:
        """Flush, then release the producer. Raises KafkaError as :meth:`flush`."""
        try:
            self.flush()
        finally:
            self._sender.close()

    def _send(self, topic: str, event: CallEvent | TaskEvent | OutcomeEvent) -> None:
        self._sender.send(topic, event.task_id.encode(), to_json(event))

    def __enter__(self) -> Emitter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
