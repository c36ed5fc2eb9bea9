"""How far each consumer group has got: the basis of "processed and flushed"."""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka import KafkaError as RdKafkaError

from pipeline.config import KafkaSettings
from pipeline.errors import KafkaError
from pipeline.kafka.topics import partition_counts


def read_to_end(
    kafka: KafkaSettings, starts: dict[tuple[str, int], int], timeout_s: float = 30
) -> dict[tuple[str, int], int]:
    """The true end offset of each partition, read forward from ``starts`` to EOF.

    For brokers whose ListOffsets(latest) lags the log (Tansu 0.6): ``starts``
    must be at or below the end (a ListOffsets answer is). On a correct broker
    this is one empty fetch per partition.
    """
    ends: dict[tuple[str, int], int] = {}
    if not starts:
        return ends
    conf = kafka.librdkafka()
    conf.update(
        {
            "group.id": "costflow-end-offsets",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,
        }
    )
    reader = Consumer(conf)
    try:
        reader.assign([TopicPartition(t, p, offset) for (t, p), offset in starts.items()])
        deadline = time.monotonic() + timeout_s
        while len(ends) < len(starts):
            if time.monotonic() > deadline:
                raise KafkaError(
                    "end_offsets",
                    None,
                    "TIMEOUT",
                    f"no EOF for {len(starts) - len(ends)} partitions",
                )
            for message in reader.consume(num_messages=10_000, timeout=0.5):
                err = message.error()
                if err is not None and err.code() == RdKafkaError._PARTITION_EOF:
                    topic, partition = message.topic(), message.partition()
                    offset = message.offset()
                    assert topic is not None and partition is not None and offset is not None
                    ends[(topic, partition)] = offset
    finally:
        reader.close()
    return ends


class LagProbe:
    """Reads end offsets and a group's committed offsets without joining the group."""

    def __init__(self, kafka: KafkaSettings, group_id: str) -> None:
        conf = kafka.librdkafka()
        conf.update({"group.id": group_id, "enable.auto.commit": False})
        self.kafka = kafka
        self.consumer = Consumer(conf)

    def partitions(self, topics: list[str]) -> list[TopicPartition]:
        counts = partition_counts(self.kafka, topics)
        return [TopicPartition(t, p) for t in topics for p in range(counts.get(t, 0))]

    def end_offsets(self, topics: list[str], timeout_s: float = 30) -> dict[tuple[str, int], int]:
        """The true end of each partition.

        ListOffsets(latest) is only a lower bound here: the embedded broker
        (Tansu 0.6) answers it with a stale offset, while the high watermark in
        its fetch responses is right. So: seek to the lower bound and read to
        partition EOF. On a correct broker that is one empty fetch.
        """
        starts = {}
        for tp in self.partitions(topics):
            low, high = self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            starts[(tp.topic, tp.partition)] = max(low, high - 1, 0)
        return read_to_end(self.kafka, starts, timeout_s)

    def committed(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The group's committed offset per partition (0 where it has none yet)."""
        wanted = [TopicPartition(topic, partition) for topic, partition in partitions]
        return {
            (tp.topic, tp.partition): max(tp.offset, 0)
            for tp in self.consumer.committed(wanted, timeout=10)
        }

    def remaining(self, targets: dict[tuple[str, int], int]) -> int:
        """Records the group still has to commit to reach ``targets``.

        Called in a polling loop: asks only for the partitions already named by
        ``targets`` (no metadata request, no new client per call).
        """
        done = self.committed(targets)
        return sum(max(0, end - done.get(key, 0)) for key, end in targets.items())

    def close(self) -> None:
        self.consumer.close()


def topic_values(kafka: KafkaSettings, topic: str, timeout_s: float = 60) -> list[bytes]:
    """Every record value of ``topic``, from the beginning of each partition to its end
    (read with ``enable.partition.eof``; no group offsets are committed). For checks
    and tools, not for streaming. Raises KafkaError when the ends are not reached in
    ``timeout_s``."""
    conf = kafka.librdkafka()
    conf.update({"group.id": "costflow-topic-read", "enable.auto.commit": False,
                 "enable.partition.eof": True})  # fmt: skip
    consumer = Consumer(conf)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        values: list[bytes] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(at_end) < len(partitions):
            if time.monotonic() > deadline:
                raise KafkaError("consume", None, "TIMED_OUT", f"{topic} not read to its end")
            for message in consumer.consume(1000, timeout=1.0):
                error = message.error()
                if error is None:
                    values.append(message.value() or b"")
                elif error.code() == RdKafkaError._PARTITION_EOF:
                    at_end.add(int(message.partition() or 0))
        return values
    finally:
        consumer.close()
