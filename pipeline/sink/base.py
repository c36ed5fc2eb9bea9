"""The sink interface and the batch it writes.

A batch is a set of Kafka records with the offset range it covers per
partition; the writer turns it into rows and writes them idempotently (the same
batch written twice changes nothing), and only then are the offsets committed.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from pipeline.errors import CostflowError


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class Batch:
    records: list[Record] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)
    # (topic, partition) -> (first offset, last offset)
    ranges: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)

    def add(self, record: Record) -> None:
        if not self.records:
            self.started_at = time.monotonic()
        self.records.append(record)
        key = (record.topic, record.partition)
        first, _ = self.ranges.get(key, (record.offset, record.offset))
        self.ranges[key] = (first, record.offset)

    def __len__(self) -> int:
        return len(self.records)

    def age_s(self) -> float:
        return time.monotonic() - self.started_at if self.records else 0.0

    def next_offsets(self) -> dict[tuple[str, int], int]:
        """Offsets to commit once this batch is durable: one past the last record."""
        return {key: last + 1 for key, (_, last) in self.ranges.items()}

    def token(self, table: str, topic: str) -> str:
        """Deduplication token for one table's insert from one topic: its offset ranges."""
        ranges = sorted((p, r) for (t, p), r in self.ranges.items() if t == topic)
        text = f"{table}|{topic}|" + ",".join(f"{p}:{a}-{b}" for p, (a, b) in ranges)
        return hashlib.sha256(text.encode()).hexdigest()


class SinkBackpressure(CostflowError):
    """The store is up but asks for a pause (too many parts, a merge backlog): the
    runner keeps the batch, pauses the partitions and retries after ``retry_after_s``
    (its own capped backoff when None)."""

    code = "sink_backpressure"

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Sink(ABC):
    """Writes batches durably and idempotently; raises on failure so the caller retries."""

    @abstractmethod
    def write(self, batch: Batch) -> dict[str, int]:
        """Write a batch; returns rows written per table."""

    def skipped(self) -> dict[str, int]:
        """Records that wrote nothing, by reason (replays, stale snapshots, ...)."""
        return {}

    def restatements(self) -> int:
        """Stored task rows replaced by a newer state so far (a late call or outcome,
        a reprice): each one changed a figure already visible to readers."""
        return 0

    def partitions_changed(self) -> None:  # noqa: B027 - optional hook
        """The consumer's assignment changed; forget anything cached about other partitions."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
