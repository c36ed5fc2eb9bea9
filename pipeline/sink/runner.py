"""The stage-2 loop: consume, batch, write idempotently, then commit.

Offsets are committed only after the batch is durable in the store, so a crash
replays at most the uncommitted batch, and the store's deduplication makes the
replay change nothing. While the store is down, the consumer pauses its
partitions (memory stays bounded by one batch), keeps its group membership
alive, and retries with capped exponential backoff.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka import KafkaError as RdKafkaError

from pipeline.config import Settings
from pipeline.errors import CostflowError, KafkaError
from pipeline.sink.base import Batch, Record, Sink, SinkBackpressure

log = logging.getLogger("costflow.sink")

# How often the sink measures its consumer lag for /metrics (seconds).
LAG_EVERY_S = 10.0


class SinkRunner:
    def __init__(self, settings: Settings, sink: Sink) -> None:
        self.settings = settings
        self.sink = sink
        self.stopping = False
        self.batch = Batch()
        self.written: Counter[str] = Counter()
        # Failed writes so far, and the wait before the latest retry (observable
        # by an operator's logs and by tests).
        self.failed_writes = 0
        self.last_retry_delay_s = 0.0
        # For metrics and readiness: when the last batch became durable (Unix time),
        # whether the store is failing now, and a timer of each successful write.
        self.last_durable_at: float | None = None
        self.write_failing = False
        self.observe_write_s: Callable[[float], None] | None = None
        self.last_commit_at: float | None = None
        # Records after the committed offset per assigned (topic, partition), measured
        # every LAG_EVERY_S when ``measure_lag`` (the metrics endpoint turns it on).
        self.measure_lag = False
        self.lag: dict[tuple[str, int], int] = {}
        self._flushing = False
        self._revoked_while_flushing = False
        # Called after each batch is durable, before its offsets are committed: the
        # seam for metrics and in-flight alerting. A hook must not raise.
        self.on_durable: list[Callable[[Batch, dict[str, int]], None]] = []
        conf = settings.kafka.librdkafka()
        conf.update(
            {
                "group.id": settings.sink.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": settings.kafka.session_timeout_ms,
                "heartbeat.interval.ms": settings.kafka.heartbeat_interval_ms,
                "partition.assignment.strategy": "cooperative-sticky",
                "enable.partition.eof": False,
            }
        )
        self.consumer = Consumer(conf)

    # --- lifecycle ----------------------------------------------------------

    def stop(self, *_args: Any) -> None:
        self.stopping = True

    def run(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        topics = self.settings.topics.sink_inputs()
        self.consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.warning("sink consuming %s as group %s", topics, self.settings.sink.group_id)
        last_report = last_lag = time.monotonic()
        try:
            while not self.stopping:
                self._poll()
                if self._due():
                    self._flush()
                if self.measure_lag and time.monotonic() - last_lag > LAG_EVERY_S:
                    last_lag = time.monotonic()
                    self._measure_lag()
                if time.monotonic() - last_report > 30:
                    last_report = time.monotonic()
                    log.warning(
                        "sink rows written so far: %s; skipped: %s",
                        dict(self.written),
                        self.sink.skipped(),
                    )
            self._flush()
        finally:
            self.consumer.close()
            self.sink.close()
            log.warning(
                "sink stopped; rows written: %s; skipped: %s",
                dict(self.written),
                self.sink.skipped(),
            )

    # --- steps --------------------------------------------------------------

    def _poll(self) -> None:
        room = max(1, self.settings.sink.batch_rows - len(self.batch))
        messages = self.consumer.consume(num_messages=min(room, 10_000), timeout=0.2)
        for message in messages:
            err = message.error()
            if err is not None:
                if err.code() == RdKafkaError._PARTITION_EOF:
                    continue
                if err.fatal():
                    raise KafkaError.wrap("consume", err)
                log.warning("consume error (librdkafka retries): %s", err)
                continue
            self.batch.add(
                Record(
                    topic=message.topic(),  # type: ignore[arg-type]
                    partition=message.partition(),  # type: ignore[arg-type]
                    offset=message.offset(),  # type: ignore[arg-type]
                    key=message.key(),
                    value=message.value(),
                    headers=tuple(message.headers() or ()),  # type: ignore[arg-type]
                )
            )

    def _due(self) -> bool:
        return len(self.batch) >= self.settings.sink.batch_rows or (
            len(self.batch) > 0 and self.batch.age_s() >= self.settings.sink.flush_interval_s
        )

    def _flush(self) -> None:
        if not self.batch:
            return
        batch, delay = self.batch, self.settings.sink.retry_initial_s
        self._flushing, self._revoked_while_flushing = True, False
        try:
            self._write_until_durable(batch, delay)
        finally:
            self._flushing = False
            if self.consumer.assignment():
                self.consumer.resume(self.consumer.assignment())
        self.batch = Batch()

    def _write_until_durable(self, batch: Batch, delay: float) -> None:
        paused = False
        while True:
            started = time.monotonic()
            try:
                written = self.sink.write(batch)
                break
            except CostflowError as exc:
                self.write_failing = True
                if not paused:
                    self.consumer.pause(self.consumer.assignment())
                    paused = True
                if isinstance(exc, SinkBackpressure) and exc.retry_after_s is not None:
                    delay = exc.retry_after_s  # the store knows best when to come back
                self.failed_writes += 1
                self.last_retry_delay_s = delay
                log.error(
                    "write failed (%d so far), partitions paused, retrying in %.1fs: %s",
                    self.failed_writes,
                    delay,
                    exc,
                )
                deadline = time.monotonic() + delay
                while time.monotonic() < deadline:
                    # Keeps the group session alive; returns nothing while paused.
                    self.consumer.consume(num_messages=1, timeout=min(0.5, delay))
                delay = min(delay * 2, self.settings.sink.retry_max_s)
                if self.stopping:
                    # Not committed: the next sink re-consumes and writes this batch.
                    log.warning("stopping with an unwritten batch of %d records", len(batch))
                    return
                if self._revoked_while_flushing:
                    self._give_back(batch)
                    return
        if self.observe_write_s is not None:
            self.observe_write_s(time.monotonic() - started)
        self.write_failing = False
        self.last_durable_at = time.time()
        self.written.update(written)
        for hook in self.on_durable:
            hook(batch, written)
        offsets = [TopicPartition(t, p, o) for (t, p), o in batch.next_offsets().items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
            self.last_commit_at = time.time()
        except Exception as exc:
            # The rows are durable and idempotent; the next owner re-writes them harmlessly.
            log.warning("offset commit failed after a durable write (will be replayed): %s", exc)

    def _measure_lag(self) -> None:
        """Refresh :attr:`lag` (swapped whole, read by the metrics thread). The end
        offsets come from the last fetch responses when there were any, so this asks
        the broker only for the committed offsets; a failure leaves the last figures
        and is not the sink's business to stop for."""
        try:
            assigned = self.consumer.assignment()
            lag: dict[tuple[str, int], int] = {}
            for tp in self.consumer.committed(assigned, timeout=5) if assigned else []:
                low, high = self.consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:  # not fetched yet
                    low, high = self.consumer.get_watermark_offsets(tp, timeout=5)
                start = tp.offset if tp.offset >= 0 else low
                lag[(tp.topic, tp.partition)] = max(0, high - start)  # type: ignore[index]
            self.lag = lag
        except Exception as exc:
            log.info("consumer lag not measured this time: %s", exc)

    def _give_back(self, batch: Batch) -> None:
        """Partitions moved during an outage: one writer per task, so drop the batch.

        Revoked partitions are re-consumed by their new owner from the committed
        offsets; the ones still ours are rewound to the batch's first offsets.
        """
        owned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        for (topic, partition), (first, _) in batch.ranges.items():
            if (topic, partition) in owned:
                self.consumer.seek(TopicPartition(topic, partition, first))
        log.warning("partitions were reassigned during the outage; batch given back")

    def _on_assign(self, _consumer: Any, _partitions: list[TopicPartition]) -> None:
        self.sink.partitions_changed()

    def _on_revoke(self, _consumer: Any, _partitions: list[TopicPartition]) -> None:
        if self._flushing:  # called from inside the retry loop's consume()
            self._revoked_while_flushing = True
            return
        # Write what we hold before another member takes these partitions.
        try:
            self._flush()
        except Exception as exc:
            log.warning("flush on revoke failed; records will be re-consumed: %s", exc)
            self.batch = Batch()
        self.sink.partitions_changed()
