"""Recovery's end offsets: a slow broker is read again, not a crashed worker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from pipeline.agents import true_ends
from pipeline.config import KafkaSettings
from pipeline.errors import KafkaError


class TP:
    def __init__(self, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition


def test_a_timed_out_read_of_the_ends_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    tp = TP("changelog", 0)
    calls: list[dict[tuple[str, int], int]] = []

    async def listed(_self: Any, *_tps: Any) -> dict[Any, int]:
        return {tp: 510}  # Tansu's stale ListOffsets answer

    def read_to_end(_kafka: Any, starts: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        calls.append(starts)
        if len(calls) < 3:
            raise KafkaError("end_offsets", None, "TIMEOUT", "no EOF for 1 partitions")
        return {("changelog", 0): 532}

    monkeypatch.setattr(faust_aiokafka.Consumer, "highwaters", faust_aiokafka.Consumer.highwaters)
    monkeypatch.setattr(true_ends, "_ORIGINAL", listed)
    monkeypatch.setattr(true_ends, "read_to_end", read_to_end)
    true_ends.install(KafkaSettings())
    ends = asyncio.run(faust_aiokafka.Consumer.highwaters(object(), tp))
    assert ends == {tp: 532} and calls == [{("changelog", 0): 509}] * 3
    calls.clear()

    def never(_kafka: Any, starts: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        calls.append(starts)
        raise KafkaError("end_offsets", None, "TIMEOUT", "no EOF for 1 partitions")

    monkeypatch.setattr(true_ends, "read_to_end", never)
    with pytest.raises(KafkaError, match="no EOF"):
        asyncio.run(faust_aiokafka.Consumer.highwaters(object(), tp))
    assert len(calls) == 3
