"""Produce JSON-lines event files to the input topics, keyed by task_id."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import KafkaException, Producer

from pipeline.config import KafkaSettings, TopicSettings
from pipeline.errors import KafkaError

log = logging.getLogger("costflow.produce")


def make_producer(kafka: KafkaSettings) -> Producer:
    conf = kafka.librdkafka()
    conf.update(
        {
            "linger.ms": 20,
            "acks": "all",
            "enable.idempotence": False,
            # Java's partitioner, so task_id lands on the same partition whichever
            # client produced it (the join needs the inputs co-partitioned).
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 500_000,
        }
    )
    return Producer(conf)


class Sender:
    """A producer that raises, on :meth:`flush`, if anything was not delivered."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.bootstrap = kafka.resolved_bootstrap()
        self.producer = make_producer(kafka)
        self.failures: list[str] = []
        self.sent: Counter[str] = Counter()

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None:
            self.failures.append(str(err))

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        while True:
            try:
                self.producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=self._on_delivery
                )
                break
            except BufferError:  # the local queue is full: let it drain
                self.producer.poll(0.05)
            except KafkaException as exc:
                raise KafkaError.wrap("produce", exc) from None
        self.producer.poll(0)
        self.sent[topic] += 1

    def flush(self, timeout_s: float = 60) -> Counter[str]:
        remaining = self.producer.flush(timeout_s)
        if remaining:
            raise KafkaError(
                "produce",
                None,
                "NOT_ACKNOWLEDGED",
                f"{remaining:,} records not acknowledged within {timeout_s:.0f} s by "
                f"{self.bootstrap}: is the broker reachable? (`costflow up` serves "
                "127.0.0.1:19092; elsewhere set COSTFLOW_KAFKA_BOOTSTRAP)",
            )
        if self.failures:
            raise KafkaError(
                "produce",
                None,
                "DELIVERY_FAILED",
                f"{len(self.failures):,} records refused by {self.bootstrap}; first: "
                f"{self.failures[0]}",
            )
        return self.sent

    def close(self) -> None:
        """Release the producer's threads and connections at once: what :meth:`flush`
        did not get acknowledged is dropped (flush raised for it), not retried until
        librdkafka's message timeout."""
        self.producer.purge()
        self.producer.close()


def produce_lines(
    kafka: KafkaSettings, topics: TopicSettings, lines: Iterable[bytes]
) -> Counter[str]:
    """Send each line to its type's topic. Lines we cannot route go to the calls topic
    unchanged, where the worker dead-letters them with a reason: nothing is dropped."""
    by_type = {"call": topics.calls, "task": topics.tasks, "outcome": topics.outcomes}
    sender = Sender(kafka)
    for raw in lines:
        raw = raw.strip()
        if not raw:
            continue
        key: bytes | None = None
        topic = topics.calls
        try:
            data = json.loads(raw)
            if isinstance(data, dict):
                topic = by_type.get(str(data.get("type")), topics.calls)
                if isinstance(data.get("task_id"), str):
                    key = data["task_id"].encode()
        except (ValueError, RecursionError):  # not JSON we can read: the worker says why
            pass
        sender.send(topic, key, raw)
    return sender.flush()


def produce_file(kafka: KafkaSettings, topics: TopicSettings, path: Path) -> Counter[str]:
    with path.open("rb") as handle:
        return produce_lines(kafka, topics, handle)
