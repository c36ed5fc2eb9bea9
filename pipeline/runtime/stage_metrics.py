"""The stages' Prometheus metrics, read from their own counters at scrape time.

Nothing is counted twice and nothing is added to the hot path: each stage already
keeps what it did (:class:`~pipeline.agents.base.WorkerCounters`, the sink runner's
``written``); a custom collector turns them into metric families when Prometheus
scrapes. Names follow Prometheus' conventions (``costflow_<stage>_…_total``, base
units); no task id is ever a label. Money is not exported: it lives in ClickHouse.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from typing import Any, TypeVar

import prometheus_client as prom
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.agents.base import Stage
from pipeline.sink.runner import SinkRunner

K = TypeVar("K")


def _snapshot(counter: Mapping[K, int]) -> dict[K, int]:
    """A copy the stage's thread cannot change under us (retry if it did)."""
    for _ in range(5):
        try:
            return dict(counter)
        except RuntimeError:  # changed size while copied
            continue
    return {}


def _counter(name: str, doc: str, label: str, values: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(_snapshot(values).items()):
        family.add_metric([key], value)
    return family


class WorkerMetrics(Collector):
    """Stage 1: events by type, duplicates, dead letters by reason, unpriced calls by
    provider and model, tasks in state, evictions, consumer lag per input partition
    (``lag``: as the stall watchdog last measured it, every 10 s), and each
    partition's event-time watermark (the latest event time applied) and its age."""

    def __init__(
        self, stage: Stage, lag: Callable[[], Mapping[tuple[str, int], int]] = dict
    ) -> None:
        self.stage = stage
        self.lag = lag

    def collect(self) -> Iterator[Metric]:
        counters = self.stage.counters
        yield _counter("costflow_worker_events", "Input events applied, by type",
                       "type", counters.processed)  # fmt: skip
        yield _counter("costflow_worker_duplicate_events", "Events seen before (by event_id)",
                       "type", counters.duplicates)  # fmt: skip
        yield _counter("costflow_worker_dead_letters", "Input records set aside, by reason",
                       "reason", counters.dead_lettered)  # fmt: skip
        unpriced = CounterMetricFamily(
            "costflow_worker_unpriced_calls", "Calls the price book could not price",
            labels=["provider", "model"],
        )  # fmt: skip
        for key, value in sorted(_snapshot(counters.unpriced).items()):
            provider, _, model = key.partition("/")
            unpriced.add_metric([provider, model], value)
        yield unpriced
        yield CounterMetricFamily(
            "costflow_worker_evicted_tasks",
            "Tasks dropped from state after retention",
            value=counters.evicted,
        )
        yield GaugeMetricFamily(
            "costflow_worker_open_tasks", "Tasks held in stage-1 state", value=len(self.stage.store)
        )
        lag = GaugeMetricFamily(
            "costflow_worker_consumer_lag_records",
            "Input records after the committed offset, per assigned partition",
            labels=["topic", "partition"],
        )
        for (topic, partition), records in sorted(self.lag().items()):
            lag.add_metric([topic, str(partition)], records)
        yield lag
        yield from watermark_families(
            "costflow_worker", _snapshot(self.stage.store.retention.watermark), time.time()
        )


def watermark_families(
    prefix: str, marks_ms: Mapping[int, int], now_s: float
) -> Iterator[GaugeMetricFamily]:
    """The event-time watermark per partition (Unix seconds) and its age against the
    wall clock ``now_s`` (seconds; an idle partition ages too, which is the point: a
    watermark that stops moving is what an on-call engineer must see). Partitions
    without an event yet (watermark 0) are left out rather than reported 56 years old."""
    mark = GaugeMetricFamily(
        f"{prefix}_event_time_watermark_timestamp_seconds",
        "Latest event time applied, per input partition (Unix time)",
        labels=["partition"],
    )
    age = GaugeMetricFamily(
        f"{prefix}_event_time_watermark_age_seconds",
        "Wall clock minus the event-time watermark, per input partition",
        labels=["partition"],
    )
    for partition, ms in sorted(marks_ms.items()):
        if ms <= 0:
            continue
        mark.add_metric([str(partition)], ms / 1000)
        age.add_metric([str(partition)], max(0.0, now_s - ms / 1000))
    yield mark
    yield age


class SinkMetrics(Collector):
    """Stage 2: rows written by table, failed writes, the last durable write and
    commit, records skipped by reason, task restatements, and consumer lag per
    partition (measured every ``LAG_EVERY_S`` of :mod:`pipeline.sink.runner`)."""

    def __init__(self, runner: SinkRunner) -> None:
        self.runner = runner

    def collect(self) -> Iterator[Metric]:
        runner = self.runner
        yield _counter("costflow_sink_rows_written", "Rows made durable, by table",
                       "table", runner.written)  # fmt: skip
        yield CounterMetricFamily(
            "costflow_sink_failed_writes",
            "Writes that failed and were retried",
            value=runner.failed_writes,
        )
        last = runner.last_durable_at
        yield GaugeMetricFamily(
            "costflow_sink_last_durable_write_timestamp_seconds",
            "Unix time of the last batch made durable (0: none yet)",
            value=last or 0.0,
        )
        yield GaugeMetricFamily(
            "costflow_sink_last_commit_timestamp_seconds",
            "Unix time of the last offset commit after a durable write (0: none yet)",
            value=runner.last_commit_at or 0.0,
        )
        yield GaugeMetricFamily(
            "costflow_sink_batch_records",
            "Records in the batch being built",
            value=len(runner.batch),
        )
        yield _counter("costflow_sink_skipped_records",
                       "Records that changed nothing stored (replays, stale snapshots), by reason",
                       "reason", runner.sink.skipped())  # fmt: skip
        yield CounterMetricFamily(
            "costflow_sink_task_restatements",
            "Stored task rows replaced by a newer state (late calls or outcomes, reprices)",
            value=runner.sink.restatements(),
        )
        lag = GaugeMetricFamily(
            "costflow_sink_consumer_lag_records",
            "Stage-1 output records after the sink's committed offset, per assigned partition",
            labels=["topic", "partition"],
        )
        for (topic, partition), records in sorted(runner.lag.items()):
            lag.add_metric([topic, str(partition)], records)
        yield lag


class IngestMetrics(Collector):
    """``ingest otlp``: records, spans, call events sent, spans that were not model
    calls, dead letters by reason."""

    def __init__(self, counts: Any) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = self.counts
        for name, doc, value in (
            ("records", "Trace export records read", counts.records),
            ("spans", "Spans read", counts.spans),
            ("call_events", "Call events sent", counts.calls),
            ("skipped_spans", "Spans that were not model calls", counts.not_model_calls),
        ):
            yield CounterMetricFamily(f"costflow_ingest_otlp_{name}", doc, value=value)
        yield _counter("costflow_ingest_otlp_dead_letters", "Records or spans set aside",
                       "reason", counts.dead_lettered)  # fmt: skip


class AlertLoopMetrics(Collector):
    """Alert rules evaluated (in the sink, or by ``costflow alerts run``): cycles,
    failed cycles, alert instances firing per alert and severity after the last
    cycle, and the data time the last cycle judged up to, with its age.

    ``loop``: an evaluator's :class:`~pipeline.runtime.alert_loop.AlertCycles` (or
    anything with its ``cycles``, ``failed_cycles``, ``firing``, ``data_time``)."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop

    def collect(self) -> Iterator[Metric]:
        loop = self.loop
        yield CounterMetricFamily("costflow_alerts_cycles", "Evaluation cycles run",
                                  value=loop.cycles)  # fmt: skip
        yield CounterMetricFamily("costflow_alerts_failed_cycles", "Cycles that failed",
                                  value=loop.failed_cycles)  # fmt: skip
        firing = GaugeMetricFamily(
            "costflow_alerts_firing", "Alert instances firing, by alert and severity",
            labels=["alert", "severity"],
        )  # fmt: skip
        for alert, (severity, instances) in sorted(loop.firing.items()):
            firing.add_metric([alert, severity], instances)
        yield firing
        data_time = loop.data_time
        if data_time is not None:  # absent until a cycle judged something
            at = data_time.timestamp()
            yield GaugeMetricFamily(
                "costflow_alerts_data_time_timestamp_seconds",
                "Where the last cycle's windows ended: the pipeline's event-time "
                "watermark as the evaluator read it (Unix time)",
                value=at,
            )
            yield GaugeMetricFamily(
                "costflow_alerts_data_time_age_seconds",
                "Wall clock minus the data time of the last cycle",
                value=max(0.0, time.time() - at),
            )


def registry(stage_collector: Collector, price_book: str) -> prom.CollectorRegistry:
    """A registry with the stage's collector and ``costflow_build_info``."""
    reg = prom.CollectorRegistry()
    reg.register(stage_collector)
    info = prom.Info("costflow_build", "Version of costflow and of the price book", registry=reg)
    try:
        version = metadata.version("costflow")
    except metadata.PackageNotFoundError:
        version = "unknown"
    info.info({"version": version, "price_book": price_book})
    return reg


def write_timer(reg: prom.CollectorRegistry) -> Callable[[float], None]:
    """A histogram of write latency in ``reg``; returns the function that observes."""
    histogram = prom.Histogram(
        "costflow_sink_write_duration_seconds", "Time to make one batch durable",
        registry=reg, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    )  # fmt: skip
    return histogram.observe
