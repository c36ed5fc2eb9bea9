"""Where the fetch handler sends stage 1's outputs: Kafka's default partition of each
key, as the Java client computes it (the partition ``costflow reprice`` writes to).

Expected partitions come from the murmur2 values of Kafka's own test vectors
(``org.apache.kafka.common.utils.UtilsTest.testMurmur2``), not from the code under test.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pipeline.agents.base import new_stage
from pipeline.agents.batch_output import CollectingTopic, FetchHandler
from tests.unit.test_agents import BOOK, record

# key -> Java's Utils.murmur2(key) (signed 32-bit), from Kafka's UtilsTest
JAVA_MURMUR2 = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "abc": 479470107,
}
PARTITIONS = {"priced": 6, "snapshots": 4, "dead": 3}


class _Builder:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None, Any]] = []

    def append(self, *, key: Any, value: Any, timestamp: Any, headers: Any) -> object:
        self.records.append((key, value, headers))
        return object()


class _Producer:
    """Records every batch sent: (topic, partition, records)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, list[tuple[bytes | None, bytes | None, Any]]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(PARTITIONS.get(topic, 2)))

    def create_batch(self) -> _Builder:
        return _Builder()

    async def send_batch(self, builder: _Builder, topic: str, *, partition: int) -> Any:
        self.sent.append((topic, partition, builder.records))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _events() -> list[dict[str, Any]]:
    events = []
    for n, task_id in enumerate(JAVA_MURMUR2):
        ts = f"2026-11-01T10:0{n}:00Z"
        events.append({"type": "task", "event_id": f"{task_id}-t", "task_id": task_id,
                       "ts": ts, "phase": "started", "scenario_id": "s"})
        events.append({"type": "call", "event_id": f"{task_id}-c", "task_id": task_id,
                       "ts": ts, "provider": "openai", "model": "gpt-4o-mini",
                       "usage": {"input_tokens": 10, "output_tokens": 5}})  # fmt: skip
    return events


def test_outputs_go_to_the_java_clients_partition_of_their_key() -> None:
    outputs = [CollectingTopic(name) for name in PARTITIONS]
    changes: dict[str, tuple[int, str | None]] = {}
    stage = new_stage(
        table={}, priced_calls=outputs[0], task_snapshots=outputs[1], dead_letter=outputs[2],
        book=BOOK, changelog=lambda p, key, value: changes.__setitem__(key, (p, value)),
    )  # fmt: skip
    producer = _Producer()
    handler = FetchHandler(
        topics={}, stage=stage, outputs=outputs, changelog_topic="changelog",
        encode_change=lambda key, value: (key.encode(), (value or "").encode() or None),
        producer=lambda: producer, changes=changes,
    )  # fmt: skip
    input_partition = 5
    records = [record(e, offset=i, partition=input_partition) for i, e in enumerate(_events())]
    keyless = record(_events()[0], offset=99, partition=input_partition)
    records.append(type(keyless)(keyless.event_type, keyless.topic, input_partition, 99, None,
                                 json.dumps({"type": "task"}).encode()))  # fmt: skip

    async def run() -> None:
        await asyncio.gather(await handler.handle(records))

    asyncio.run(run())

    seen: dict[str, int] = {}
    for topic, partition, sent in producer.sent:
        for key, _value, _headers in sent:
            seen[topic] = seen.get(topic, 0) + 1
            if topic == "changelog":
                assert partition == input_partition  # the table's own partition
            elif key is None:
                assert topic == "dead" and 0 <= partition < PARTITIONS["dead"]
            else:
                expected = (JAVA_MURMUR2[key.decode()] & 0x7FFFFFFF) % PARTITIONS[topic]
                assert partition == expected, (topic, key)
    tasks = len(JAVA_MURMUR2)
    assert seen == {"priced": tasks, "snapshots": tasks, "dead": 1, "changelog": tasks}
    assert all(not topic.sent for topic in outputs) and not changes
