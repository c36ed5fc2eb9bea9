"""``costflow ingest otlp``: the OpenTelemetry Collector's trace topic in, call events
out, in front of stage 1.

Per round of up to ``batch_records`` records: decode each export, turn its inference
spans into call events (:mod:`pipeline.ingest.otlp`), send them to the calls topic
keyed by ``task_id``, set aside what cannot be read or priced in the dead-letter topic
(reason and the record's original bytes), wait until the broker acknowledged all of
it (``acks=all``), and only then commit the round's offsets. A crash re-reads the
round; its spans make the same event ids, so stage 1 counts them once.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka import KafkaError as ConfluentError

from pipeline.config import IngestSettings, KafkaSettings, TopicSettings
from pipeline.emit.events import to_json
from pipeline.errors import InvalidEvent
from pipeline.ingest.otlp import call_event_of, spans_of
from pipeline.kafka.produce import Sender
from pipeline.records import DeadLetterHeaders

log = logging.getLogger("costflow.ingest")


@dataclass
class IngestCounts:
    """What a run did: records read, spans seen, call events sent, spans that were not
    model calls, and dead letters by reason."""

    records: int = 0
    spans: int = 0
    calls: int = 0
    not_model_calls: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)


class OtlpIngest:
    """One consumer of the traces topic, one producer of call events."""

    def __init__(self, kafka: KafkaSettings, topics: TopicSettings, ingest: IngestSettings):
        self.topics = topics
        self.ingest = ingest
        conf = kafka.librdkafka()
        conf.update(
            {
                "group.id": ingest.otlp_group_id,
                # the stack's short sessions: a join otherwise waits ~20 s on the broker
                "session.timeout.ms": kafka.session_timeout_ms,
                "heartbeat.interval.ms": kafka.heartbeat_interval_ms,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
            }
        )
        self.consumer = Consumer(conf)
        self.sender = Sender(kafka)
        self.counts = IngestCounts()
        self.stopping = threading.Event()

    def run(self, until_end: bool = False) -> IngestCounts:
        """Consume until stopped (SIGINT/SIGTERM, or :attr:`stopping`), or with
        ``until_end`` until every assigned partition is read to its end. Raises
        KafkaError when the broker did not take a round's outputs (its offsets stay
        uncommitted)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
            signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        at_end: set[tuple[str, int]] = set()
        self.consumer.subscribe([self.ingest.otlp_topic], on_assign=self._on_assign(at_end))
        log.warning(
            "ingesting %s (%s) as group %s into %s",
            self.ingest.otlp_topic,
            self.ingest.otlp_encoding,
            self.ingest.otlp_group_id,
            self.topics.calls,
        )
        last_report = time.monotonic()
        server = self._serve_metrics()
        try:
            while not self.stopping.is_set():
                batch = self.consumer.consume(self.ingest.batch_records, timeout=1.0)
                records = []
                for message in batch:
                    error = message.error()
                    if error is None:
                        records.append(message)
                        at_end.discard(_where(message))
                    elif error.code() == ConfluentError._PARTITION_EOF:
                        at_end.add(_where(message))
                    else:
                        log.warning("consuming %s: %s", self.ingest.otlp_topic, error)
                if records:
                    self._round(records)
                if time.monotonic() - last_report > 10:
                    last_report = time.monotonic()
                    log.warning("ingest: %s", self.counts)
                assignment = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
                if until_end and assignment and assignment <= at_end and not records:
                    break
        finally:
            self.consumer.close()
            self.sender.close()
            if server is not None:
                server.close()
        return self.counts

    def _serve_metrics(self) -> Any:
        if self.ingest.metrics_port is None:
            return None
        from pipeline.runtime.health_server import HealthServer
        from pipeline.runtime.stage_metrics import IngestMetrics, registry

        reg = registry(IngestMetrics(self.counts), "n/a")
        return HealthServer(
            self.ingest.metrics_host, self.ingest.metrics_port, reg, lambda: (True, "ready")
        )

    def _on_assign(self, at_end: set[tuple[str, int]]) -> Any:
        def on_assign(_consumer: Any, partitions: list[TopicPartition]) -> None:
            at_end.difference_update((tp.topic, tp.partition) for tp in partitions)

        return on_assign

    def _round(self, records: list[Message]) -> None:
        for message in records:
            self._record(message)
        self.sender.flush()  # raises before any commit if the broker refused outputs
        self.consumer.commit(asynchronous=False)

    def _record(self, message: Message) -> None:
        self.counts.records += 1
        payload = message.value() or b""
        try:
            spans = spans_of(payload, self.ingest.otlp_encoding)
        except InvalidEvent as error:
            self._dead_letter(message, payload, error)
            return
        for span in spans:
            self.counts.spans += 1
            try:
                event = call_event_of(span, self.ingest.task_id_attribute)
            except InvalidEvent as error:
                self._dead_letter(message, payload, error, span=f"{span.trace_id}:{span.span_id}")
                continue
            if event is None:
                self.counts.not_model_calls += 1
                continue
            self.sender.send(self.topics.calls, event.task_id.encode(), to_json(event))
            self.counts.calls += 1

    def _dead_letter(
        self, message: Message, payload: bytes, error: InvalidEvent, span: str = ""
    ) -> None:
        detail = f"span {span}: {error}" if span else str(error)
        headers: list[tuple[str, str | bytes | None]] = [
            *DeadLetterHeaders(
                reason=error.code,
                detail=detail,
                source_topic=str(message.topic()),
                source_partition=int(message.partition() or 0),
                source_offset=int(message.offset() or 0),
            ).to_kafka()
        ]
        self.sender.send(self.topics.dead_letter, message.key(), payload, headers)
        self.counts.dead_lettered[error.code] += 1
        log.warning("dead-lettered %s: %s", error.code, detail)


def _where(message: Message) -> tuple[str, int]:
    return str(message.topic()), int(message.partition() or 0)
