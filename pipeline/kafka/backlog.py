"""The event time the pipeline has not finished: where alert windows must end.

Stage 1 commits an input offset only after the broker acknowledged every output it
derived, and the sink commits an output offset only after ClickHouse has the rows.
The two groups' committed offsets are therefore the pipeline's published progress:
on a partition where a group is behind, the record at its committed offset is the
first it has not finished, and that record's event time is how far that partition's
data is stored. A partition the group has finished (its committed offset is the
end) holds nothing back.

One fetch per partition answers both questions (a record, or the partition's end),
so the answer is right on brokers whose ListOffsets lags the log (Tansu 0.6).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka import KafkaError as RdKafkaError

from pipeline.config import KafkaSettings
from pipeline.errors import KafkaError
from pipeline.json_codec import loads
from pipeline.kafka.topics import partition_counts

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The event time of one record of a topic, or None when it has none we can read.
EventTime = Callable[[bytes | None], datetime | None]


def input_event_time(value: bytes | None) -> datetime | None:
    """``ts`` of an input event (contract v1: RFC 3339 text or epoch milliseconds)."""
    data = _object(value)
    ts = data.get("ts") if data else None
    if isinstance(ts, int) and not isinstance(ts, bool):
        return _from_ms(ts)
    if isinstance(ts, str):
        text = ts.strip()
        text = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    return None


def priced_call_time(value: bytes | None) -> datetime | None:
    """``ts_ms`` of a priced-call record (stage 1 -> stage 2)."""
    data = _object(value)
    ms = data.get("ts_ms") if data else None
    return _from_ms(ms) if isinstance(ms, int) and not isinstance(ms, bool) else None


def task_snapshot_time(value: bytes | None) -> datetime | None:
    """``last_event_ms`` of a task snapshot; None for other task records (evictions
    change no stored figure)."""
    data = _object(value)
    if not data or data.get("kind") != "snapshot":
        return None
    ms = data.get("last_event_ms")
    return _from_ms(ms) if isinstance(ms, int) and not isinstance(ms, bool) else None


def _object(value: bytes | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        data = loads(value)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _from_ms(ms: int) -> datetime | None:
    try:
        return _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return None


@dataclass(frozen=True)
class Stage:
    """A consumer group and the topics it consumes, with each topic's event time."""

    group_id: str
    topics: Mapping[str, EventTime]


@dataclass(frozen=True)
class Backlog:
    """Partitions a stage has not finished: (group, topic, partition) -> the event
    time of the first record it has not finished (None: that record has no readable
    time, e.g. bad input about to be dead-lettered)."""

    behind: dict[tuple[str, str, int], datetime | None] = field(default_factory=dict)

    @property
    def earliest(self) -> datetime | None:
        """The earliest unfinished event time; None when nothing is behind."""
        times = [t for t in self.behind.values() if t is not None]
        return min(times) if times else None

    def describe(self) -> str:
        """For logs: how many partitions are behind, and since when."""
        if not self.behind:
            return "every partition finished"
        since = self.earliest
        return f"{len(self.behind)} partitions behind" + (
            f", from event time {since.isoformat()}" if since else ""
        )


def read_backlog(kafka: KafkaSettings, stages: Sequence[Stage], timeout_s: float = 10) -> Backlog:
    """What each stage has not finished, from its committed offsets.

    Raises :class:`~pipeline.errors.KafkaError` when the broker does not answer within
    ``timeout_s`` (the caller must then not judge windows as complete).
    """
    if kafka.embedded:
        # Nothing listening: say so now, not after librdkafka's 10 s of retries.
        import socket

        try:
            socket.create_connection(("127.0.0.1", kafka.embedded_port), timeout=2).close()
        except OSError:
            raise KafkaError(
                "read committed offsets", None, "BrokerNotRunning",
                f"the embedded broker is not running (nothing listens on "
                f"127.0.0.1:{kafka.embedded_port}), so the pipeline's progress cannot be read",
            ) from None  # fmt: skip
    behind: dict[tuple[str, str, int], datetime | None] = {}
    for stage in stages:
        behind.update(_stage_backlog(kafka, stage, timeout_s))
    return Backlog(behind)


def _stage_backlog(
    kafka: KafkaSettings, stage: Stage, timeout_s: float
) -> dict[tuple[str, str, int], datetime | None]:
    topics = list(stage.topics)
    counts = partition_counts(kafka, topics)
    conf = kafka.librdkafka()
    # Reads with the group's id (to ask for its commits) but never joins or commits.
    conf.update({"group.id": stage.group_id, "enable.auto.commit": False,
                 "enable.partition.eof": True, "fetch.wait.max.ms": 10})  # fmt: skip
    reader = Consumer(conf)
    try:
        wanted = [TopicPartition(t, p) for t in topics for p in range(counts.get(t, 0))]
        if not wanted:
            return {}
        committed = reader.committed(wanted, timeout=timeout_s)
        # No commit yet (a negative offset): the group starts from the beginning.
        starts = [(tp, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING) for tp in committed]
        reader.assign([TopicPartition(tp.topic, tp.partition, at) for tp, at in starts])
        pending = {(tp.topic, tp.partition) for tp in committed}
        out: dict[tuple[str, str, int], datetime | None] = {}
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise KafkaError(
                    "read_backlog", None, "TIMEOUT",
                    f"{len(pending)} partitions of {stage.group_id} gave neither a record "
                    "nor their end; is the broker reachable?",
                )  # fmt: skip
            for message in reader.consume(num_messages=len(pending), timeout=0.5):
                topic, partition = message.topic(), message.partition()
                key = (topic, partition)
                if topic is None or partition is None or key not in pending:
                    continue
                err = message.error()
                if err is not None and err.code() != RdKafkaError._PARTITION_EOF:
                    continue  # transient: the next fetch answers
                pending.discard(key)
                # Stop fetching a partition once answered; the first record is the one.
                reader.pause([TopicPartition(topic, partition)])
                if err is None:
                    out[(stage.group_id, topic, partition)] = stage.topics[topic](message.value())
        return out
    finally:
        reader.close()
