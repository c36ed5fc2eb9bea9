"""Stage 1's handler of a fetch: apply it, then send its outputs as record batches.

:class:`FetchHandler` is the :class:`~pipeline.agents.batch_consumer.BatchHandler`
of the worker. For one fetch it runs :func:`~pipeline.agents.batch.apply_batch`,
which leaves the outputs in :class:`CollectingTopic` buffers and the table's
changes in :attr:`FetchHandler.changes`, then sends all of them through the
worker's aiokafka producer (``acks=all``) as one record batch per topic partition:

- priced calls, snapshots and evictions, keyed by task_id, partitioned as Kafka's
  Java client does (murmur2 of the key), so every record of a task lands in one
  partition, the same one ``costflow reprice`` writes to;
- dead letters, by their original key (a keyless one on a random partition);
- one changelog record per changed table key (the latest value; None for a
  deleted task), to the table's own partition: the source partition, as Faust's
  table writes do, so recovery and standbys read it as their own.

The returned future completes once the broker acknowledged every record; only then
are the fetch's input offsets acknowledged (see the consumer).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.partitioner import murmur2  # type: ignore[import-untyped]

from pipeline.agents.base import Stage
from pipeline.agents.batch import InputRecord, apply_batch

# (key, value, headers) as handed to ``send_soon``.
_Sent = tuple[bytes | None, bytes | None, Any]


@dataclass
class CollectingTopic:
    """A :class:`~pipeline.agents.outputs.RecordTopic` that keeps what it is given
    until the handler sends it."""

    name: str
    sent: list[_Sent] = field(default_factory=list)

    def send_soon(self, *, key: bytes | None, value: bytes, headers: Any = None) -> None:
        self.sent.append((key, value, headers))


@dataclass
class FetchHandler:
    """Applies fetches to ``stage`` and sends what they produced.

    ``producer`` returns the started aiokafka producer; ``encode_change`` turns a
    table key and stored value (None: deleted) into the changelog record's key and
    value bytes, as the table itself would.
    """

    topics: Mapping[str, str]
    stage: Stage
    outputs: Sequence[CollectingTopic]
    changelog_topic: str
    encode_change: Callable[[str, str | None], tuple[bytes, bytes | None]]
    producer: Callable[[], Any]
    max_in_flight: int = 4
    # table key -> (partition, stored value or None) for the fetch being handled,
    # filled by the TaskStore's changelog hook (the latest value per key wins)
    changes: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    _partitions: dict[str, int] = field(default_factory=dict)
    # key -> murmur2 hash, shared by the output topics (a task's key is hashed once)
    _key_hashes: dict[bytes, int] = field(default_factory=dict)

    async def handle(self, records: Sequence[InputRecord]) -> Awaitable[Any]:
        self.changes.clear()
        apply_batch(self.stage, records)
        producer = self.producer()
        futures = []
        for topic in self.outputs:
            if not topic.sent:
                continue
            count = await self._partition_count(producer, topic.name)
            by_partition: list[list[_Sent]] = [[] for _ in range(count)]
            hashes = self._key_hashes
            if len(hashes) > 200_000:  # bounded: tasks come and go
                hashes.clear()
            for sent in topic.sent:
                key = sent[0]
                if key is None:
                    by_partition[random.randrange(count)].append(sent)
                    continue
                # Kafka's default partition for the key (murmur2, as the Java client).
                hashed = hashes.get(key)
                if hashed is None:
                    hashed = hashes[key] = murmur2(key) & 0x7FFFFFFF
                by_partition[hashed % count].append(sent)
            topic.sent.clear()
            for partition, sent_list in enumerate(by_partition):
                if sent_list:
                    futures.extend(await _send(producer, topic.name, partition, sent_list))
        changelog: dict[int, list[_Sent]] = {}
        for table_key, (partition, value) in self.changes.items():
            encoded_key, encoded_value = self.encode_change(table_key, value)
            changelog.setdefault(partition, []).append((encoded_key, encoded_value, None))
        self.changes.clear()
        for partition, sent_list in changelog.items():
            futures.extend(await _send(producer, self.changelog_topic, partition, sent_list))
        return asyncio.gather(*futures)

    async def _partition_count(self, producer: Any, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            count = self._partitions[topic] = len(await producer.partitions_for(topic))
        return count


async def _send(producer: Any, topic: str, partition: int, records: list[_Sent]) -> list[Any]:
    """Send ``records`` to one partition in as few record batches as fit; the
    futures of their delivery."""
    futures = []
    builder = producer.create_batch()
    for key, value, headers in records:
        if builder.append(key=key, value=value, timestamp=None, headers=headers or []) is None:
            futures.append(await producer.send_batch(builder, topic, partition=partition))
            builder = producer.create_batch()
            builder.append(key=key, value=value, timestamp=None, headers=headers or [])
    futures.append(await producer.send_batch(builder, topic, partition=partition))
    return futures
