"""Stage 1's Faust transport: each fetch goes to one batch handler; input offsets are
acknowledged only once every record derived from them is delivered.

faust-streaming delivers records one at a time through a path that costs about
115 µs of worker CPU per record (asyncio task churn per record in the drain loop,
an Event and a queue hop per record, an ack under a lock per record; measured in
``../shared/design/stage1-throughput-research.md``). :class:`BatchConsumer`
replaces only that drain loop. Faust keeps everything else: group membership, the
assignor, table recovery and standbys (changelog records still take the stock
per-record path), flow control on rebalance, and its commits.

Per fetch, for the input topics the handler names:

- the same filters as the stock loop (active partitions, generation, read
  offsets, gaps), then one marker message per partition is tracked, so Faust's
  ``wait_empty()`` on a rebalance or a stop waits for batches in flight;
- ``handler.handle(records)`` applies the batch and starts sending its outputs
  (``acks=all``); it returns the future of their delivery;
- when that future succeeds, and only then, every offset of the batch is acked
  (in fetch order: a later batch never acks before an earlier one), which lets
  Faust's commit advance past them; if it fails, or the handler raises, the
  process stops without acking (fail-stop; a restart re-delivers).

The internals used here are pinned by ``tests/unit/test_batch_consumer.py``, which
fails when a Faust upgrade changes them; faust-streaming is pinned exactly.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.drivers import by_url

from pipeline.agents.batch import InputRecord
from pipeline.agents.commit_safety import RETRY_EXIT, fail_stop

log = logging.getLogger("costflow.worker")

SCHEME = "costflow-kafka"


class BatchHandler(Protocol):
    """What the consumer hands fetches to."""

    # input topic -> event type ("call", "task", "outcome")
    topics: Mapping[str, str]
    # fetches whose outputs may be in flight at once (bounds memory)
    max_in_flight: int

    async def handle(self, records: Sequence[InputRecord]) -> Awaitable[Any]:
        """Apply the records and start sending the outputs; the awaitable completes
        when the broker acknowledged every one of them."""
        ...


_HANDLERS: weakref.WeakKeyDictionary[Any, BatchHandler] = weakref.WeakKeyDictionary()


def install(app: Any, handler: BatchHandler) -> None:
    """Hand ``app``'s input fetches to ``handler`` (the app's broker URL must use
    the ``costflow-kafka://`` scheme, see :data:`SCHEME`)."""
    _HANDLERS[app] = handler


@dataclass
class _Fetched:
    """One fetch handed to the handler: its delivery and what to ack after it."""

    generation: int
    delivered: asyncio.Future[Any]
    # (tp, offsets in order, marker message = the last offset's)
    partitions: list[tuple[Any, list[int], Any]]


class BatchConsumer(faust_aiokafka.Consumer):  # type: ignore[misc]
    """Faust's aiokafka consumer with a per-fetch drain loop (see the module)."""

    async def _drain_messages(self, fetcher: Any) -> None:
        handler = _HANDLERS[self.app]
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        in_flight: deque[_Fetched] = deque()
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records, active = await self._wait_next_records(1.0)
                if records is None or self.should_stop:
                    continue
                if not self.flow_active:
                    await self._seek_back()
                    continue
                fetched = await self._collect(handler, records, active)
                if fetched is None:
                    continue
                batch, partitions, generation = fetched
                for tp, offsets, _marker in partitions:
                    self._read_offset[tp] = offsets[-1]
                for _tp, _offsets, marker in partitions:
                    self.track_message(marker)
                try:
                    delivered = asyncio.ensure_future(await handler.handle(batch))
                except Exception as error:  # nothing acked: a restart re-delivers
                    fail_stop(error, f"handling a fetch of {len(batch)} records")
                    raise
                item = _Fetched(generation, delivered, partitions)
                in_flight.append(item)
                delivered.add_done_callback(lambda _f: self._ack_delivered(in_flight))
                while len(in_flight) >= handler.max_in_flight:
                    await asyncio.wait([in_flight[0].delivered])
                    self._ack_delivered(in_flight)
                commit_every = self._commit_every
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _seek_back(self) -> None:
        try:
            await self.perform_seek()
        except Exception as error:
            log.warning("seeking back to committed offsets failed: %s", error)

    async def _collect(
        self, handler: BatchHandler, records: Mapping[Any, list[Any]], active: Any
    ) -> tuple[list[InputRecord], list[tuple[Any, list[int], Any]], int] | None:
        """The fetch's new input records; changelog records go the stock way."""
        generation = self.app.consumer_generation_id
        batch: list[InputRecord] = []
        partitions: list[tuple[Any, list[int], Any]] = []
        for tp, fetched in records.items():
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            event_type = handler.topics.get(tp.topic)
            if event_type is None:
                await self._deliver_each(tp, fetched)
                continue
            fresh = await self._fresh(tp, fetched)
            if not fresh:
                continue
            partitions.append((tp, [r.offset for r in fresh], self._to_message(tp, fresh[-1])))
            topic, partition = tp.topic, tp.partition
            batch.extend(
                InputRecord(event_type, topic, partition, r.offset, r.key, r.value) for r in fresh
            )
        # A rebalance began while the fetch was read: drop it, Faust seeks back.
        if not partitions or not self.flow_active:
            return None
        if self.app.consumer_generation_id != generation:
            return None
        return batch, partitions, generation

    async def _fresh(self, tp: Any, fetched: list[Any]) -> list[Any]:
        """Records at or after the read offset, registering gaps as the stock loop."""
        read = self._read_offset[tp]
        acks_enabled = self.app.topics.acks_enabled_for(tp.topic)
        fresh = []
        for record in fetched:
            offset = record.offset
            if read is None or offset >= read:
                if read and offset - read > 1 and acks_enabled:
                    await self._add_gap(tp, read + 1, offset)
                fresh.append(record)
                read = offset
        return fresh

    async def _deliver_each(self, tp: Any, fetched: list[Any]) -> None:
        """The stock per-record path (changelogs: recovery and standbys), after the same
        read-offset and gap filter as input fetches."""
        for record in await self._fresh(tp, fetched):
            if not self.flow_active:
                return
            message = self._to_message(tp, record)
            await self.wait_first(self.callback(message), self.suspend_flow.wait())
            self._read_offset[tp] = record.offset

    def _ack_delivered(self, in_flight: deque[_Fetched]) -> None:
        """Ack every delivered fetch at the head of the queue, in fetch order."""
        while in_flight and in_flight[0].delivered.done():
            item = in_flight.popleft()
            error = item.delivered.exception()
            if error is not None:  # aiokafka retried already: the broker is in trouble
                fail_stop(error, "delivering a fetch's outputs", RETRY_EXIT)
                return
            current = self.app.consumer_generation_id == item.generation
            for tp, offsets, marker in item.partitions:
                if current:
                    self._ack_offsets(tp, offsets[:-1])
                    self.ack(marker)
                else:  # its partitions were reassigned: the new owner re-processes
                    marker.acked = True
                    self._unacked_messages.discard(marker)

    def _ack_offsets(self, tp: Any, offsets: list[int]) -> None:
        """``Consumer.ack`` for many offsets of one partition at once."""
        if not offsets or not self.app.topics.acks_enabled_for(tp.topic):
            return
        committed = self._committed_offset[tp]
        index = self._acked_index[tp]
        acked = self._acked[tp]
        for offset in offsets:
            if (committed is None or offset >= committed) and offset not in index:
                index.add(offset)
                acked.append(offset)
                self._n_acked += 1


class Transport(faust_aiokafka.Transport):  # type: ignore[misc]
    """Faust's aiokafka transport with :class:`BatchConsumer`."""

    Consumer = BatchConsumer


def register() -> None:
    """Make ``costflow-kafka://`` URLs resolve to :class:`Transport`."""
    from faust.transport.drivers import TRANSPORTS

    TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
    assert by_url(f"{SCHEME}://localhost") is Transport
