"""Faust's table recovery, made to read a changelog to its real end on Tansu.

Faust recovers a table by reading its changelog from the start up to the
partition's "highwater", which it takes from ListOffsets(latest). Tansu 0.6
answers that with a stale offset (measured after a restart of the durable
embedded broker: 510 against 532 records actually in one changelog partition,
123 against 183 in an input partition), so recovery stopped short and a task's
state came back as it was a few events ago; the next event then built on the
stale state, and the sink kept the older row of the same version. Three runs
on one data directory lost one event of 8 tasks in 300 that way.

The fix takes Faust's answer as a lower bound and reads each partition forward
to EOF (the high watermark in Tansu's fetch responses is right), as
:func:`pipeline.kafka.offsets.read_to_end` does for ``costflow replay``. On a
correct broker that is one empty fetch per partition at each rebalance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

from pipeline.config import KafkaSettings
from pipeline.errors import KafkaError
from pipeline.kafka.offsets import read_to_end

log = logging.getLogger("costflow.worker")
_ATTEMPTS = 3

_ORIGINAL = faust_aiokafka.Consumer.highwaters


def install(kafka: KafkaSettings) -> None:
    """Make every Faust consumer in this process report true end offsets."""

    async def highwaters(self: Any, *partitions: Any) -> Mapping[Any, int]:
        listed: Mapping[Any, int] = await _ORIGINAL(self, *partitions)
        starts = {(tp.topic, tp.partition): max(offset - 1, 0) for tp, offset in listed.items()}
        loop = asyncio.get_running_loop()
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                ends = await loop.run_in_executor(None, read_to_end, kafka, starts)
                break
            except KafkaError as error:
                # A broker slow to answer (a loaded machine, a restart under way) must not
                # end recovery: Faust would crash the worker. Reading again is safe.
                if attempt == _ATTEMPTS:
                    raise
                log.warning("reading true end offsets failed (%s); attempt %d of %d",
                            error, attempt + 1, _ATTEMPTS)  # fmt: skip
        return {tp: max(offset, ends[(tp.topic, tp.partition)]) for tp, offset in listed.items()}

    faust_aiokafka.Consumer.highwaters = highwaters  # type: ignore[method-assign]
