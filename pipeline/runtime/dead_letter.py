"""Re-submit dead-lettered records after a fix.

Each record goes back with its original bytes, routed by its own ``type`` and keyed
by its own ``task_id`` when it parses (so ``wrong_topic`` and ``key_mismatch``
records are repaired by the replay itself), else to its source topic unchanged.
Records that are still bad are dead-lettered again, with a new offset: nothing is
dropped, and replaying twice is harmless because the worker dedupes by event_id.

Dead letters that did not come from a topic (``source_partition`` -1: the LiteLLM
callback's and the HTTP collector's, whose bytes are a source's usage record, not
an event) cannot be re-submitted: they are counted apart, and the fix is at their
source (send the call again once the mapper or the book can price it).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from pipeline.config import KafkaSettings, TopicSettings
from pipeline.errors import KafkaError
from pipeline.kafka.offsets import LagProbe
from pipeline.kafka.produce import make_producer
from pipeline.records import DeadLetterHeaders


def _route(value: bytes, source_topic: str, topics: TopicSettings) -> tuple[str, bytes | None]:
    by_type = {"call": topics.calls, "task": topics.tasks, "outcome": topics.outcomes}
    try:
        data: Any = json.loads(value)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return source_topic or topics.calls, None
    if not isinstance(data, dict):
        return source_topic or topics.calls, None
    topic = by_type.get(str(data.get("type")), source_topic or topics.calls)
    task_id = data.get("task_id")
    return topic, task_id.encode() if isinstance(task_id, str) else None


def replay_dead_letters(
    kafka: KafkaSettings,
    topics: TopicSettings,
    reason: str | None = None,
    not_replayable: Counter[str] | None = None,
) -> Counter[str]:
    """Re-submit every dead letter (of ``reason``, if given) present now; returns counts
    per reason. Those not from a topic are counted in ``not_replayable`` by
    ``"<reason> from <source>"`` instead."""
    probe = LagProbe(kafka, "costflow-dead-letter-replay")
    try:
        ends = probe.end_offsets([topics.dead_letter])
    finally:
        probe.close()
    conf = kafka.librdkafka()
    conf.update({"group.id": "costflow-dead-letter-replay", "enable.auto.commit": False})
    consumer = Consumer(conf)
    producer = make_producer(kafka)
    replayed: Counter[str] = Counter()
    failures: list[str] = []
    try:
        pending = {key: end for key, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(t, p, 0) for (t, p) in pending])
        while pending:
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                if message.error() is not None:
                    continue
                key = (message.topic(), message.partition())
                offset = message.offset()
                if key not in pending or offset is None or offset >= pending[key]:
                    continue
                if offset == pending[key] - 1:
                    del pending[key]
                headers = DeadLetterHeaders.from_kafka(message.headers())
                why = headers.reason
                if reason is not None and why != reason:
                    continue
                source = headers.source_topic
                if headers.source_partition < 0:
                    if not_replayable is not None:
                        not_replayable[f"{why} from {source}"] += 1
                    continue
                topic, task_key = _route(message.value() or b"", source, topics)
                producer.produce(
                    topic,
                    value=message.value(),
                    key=task_key or message.key(),
                    on_delivery=lambda err, _m: failures.append(str(err)) if err else None,
                )
                producer.poll(0)
                replayed[why] += 1
        if producer.flush(60) or failures:
            raise KafkaError("produce", None, "DELIVERY_FAILED", f"{failures[:1]}")
    finally:
        consumer.close()
    return replayed


DEAD_LETTER_STATS = """
SELECT reason, source_topic, count() AS records, min(received_at), max(received_at)
FROM dead_letters FINAL
GROUP BY reason, source_topic
ORDER BY records DESC
"""
