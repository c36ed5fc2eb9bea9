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


def produce_lines(
    kafka: KafkaSettings, topics: TopicSettings, lines: Iterable[bytes]
) -> Counter[str]:
    """Send each line to its type's topic. Lines we cannot route go to the calls topic
    unchanged, where the worker dead-letters them with a reason: nothing is dropped."""
    by_type = {"call": topics.calls, "task": topics.tasks, "outcome": topics.outcomes}
    producer = make_producer(kafka)
    sent: Counter[str] = Counter()
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

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
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
        while True:
            try:
                producer.produce(topic, value=raw, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
            except KafkaException as exc:
                raise KafkaError.wrap("produce", exc) from None
        producer.poll(0)
        sent[topic] += 1
    remaining = producer.flush(60)
    if remaining or failures:
        raise KafkaError(
            "produce",
            None,
            "DELIVERY_FAILED",
            f"{remaining} undelivered, {len(failures)} failed; first: {failures[:1]}",
        )
    return sent


def produce_file(kafka: KafkaSettings, topics: TopicSettings, path: Path) -> Counter[str]:
    with path.open("rb") as handle:
        return produce_lines(kafka, topics, handle)
