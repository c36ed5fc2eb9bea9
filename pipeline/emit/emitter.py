"""Sending events to costflow's input topics from an application.

An :class:`Emitter` wraps one confluent-kafka producer (``acks=all``, Java's
partitioner so ``task_id`` lands where stage 1 joins it). Sending is asynchronous;
:meth:`Emitter.flush` (and :meth:`Emitter.close`, and leaving the ``with`` block)
waits until the broker acknowledged everything and raises
:class:`~pipeline.errors.KafkaError` for what it did not: an application that
needs every call counted calls it before it reports success.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from pipeline.config import KafkaSettings, TopicSettings
from pipeline.emit.events import call_event, outcome_event, task_event
from pipeline.emit.transports import HttpTransport, KafkaTransport, Transport
from pipeline.errors import CollectorRefused, KafkaError
from pipeline.events.models import CallEvent, OutcomeEvent, TaskEvent

log = logging.getLogger("costflow.emit")


class Emitter:
    """``task``, ``call`` and ``outcome`` helpers that build contract-v1 events (see
    :mod:`pipeline.emit.events` for their arguments) and send them, keyed by task id:
    ``Emitter(kafka, topics)`` to Kafka, ``Emitter.over_http(url, token)`` to the HTTP
    collector.

    Raises what the builders raise (UsageNotMappable, ValidationError) before
    anything is sent, and from :meth:`flush` KafkaError or CollectorRefused."""

    def __init__(
        self,
        kafka: KafkaSettings | None = None,
        topics: TopicSettings | None = None,
        transport: Transport | None = None,
    ) -> None:
        self._transport = transport or KafkaTransport(
            kafka or KafkaSettings(), topics or TopicSettings()
        )

    @classmethod
    def over_http(cls, url: str, token: str | None = None) -> Emitter:
        """An emitter that posts to the HTTP collector at ``url`` (``costflow up``
        serves one at http://127.0.0.1:4318)."""
        return cls(transport=HttpTransport(url, token))

    def task(self, task_id: str, phase: str = "started", **fields: Any) -> TaskEvent:
        """Send a task event; returns it."""
        event = task_event(task_id, phase, **fields)
        self._transport.send(event)
        return event

    def call(self, response_or_usage: Any, *, task_id: str, **fields: Any) -> CallEvent:
        """Send the call event of one provider response (or MappedUsage); returns it."""
        event = call_event(response_or_usage, task_id=task_id, **fields)
        self._transport.send(event)
        return event

    def outcome(self, task_id: str, outcome: str, **fields: Any) -> OutcomeEvent:
        """Send a task's outcome (``accepted``, ``rejected`` or ``failed``); returns it."""
        event = outcome_event(task_id, outcome, **fields)
        self._transport.send(event)
        return event

    def flush(self, timeout_s: float = 30) -> int:
        """Wait until every event sent is confirmed; returns how many were, in all.
        Raises KafkaError or CollectorRefused naming what was not."""
        return self._transport.flush(timeout_s)

    def close(self) -> None:
        """Flush, then release the connection. Raises as :meth:`flush`."""
        try:
            self.flush()
        finally:
            self._transport.close()

    def __enter__(self) -> Emitter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()  # raises when anything was not confirmed
            return
        # The block failed: its exception is the one to see. Deliver what it sent
        # (unless delivery is what failed), and say so if that fails too.
        try:
            if not isinstance(exc, KafkaError | CollectorRefused):
                self.flush()
        except (KafkaError, CollectorRefused) as also:
            log.error("costflow: events sent before the error were not confirmed: %s", also)
        finally:
            self._transport.close()
