"""Runs stage 1 in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from pipeline.agents.base import Stage
from pipeline.agents.stall import STALL_EXIT, StallWatch
from pipeline.app import create_app
from pipeline.config import Settings
from pipeline.kafka.offsets import LagProbe
from pipeline.kafka.topics import ensure_topics
from pipeline.runtime.gc_tuning import tune_for_streaming

log = logging.getLogger("costflow.worker")


def quiet_client_loggers(level: int = logging.WARNING) -> None:
    """aiokafka logs a DEBUG record per send; with its logger left at DEBUG the
    records are built (and then filtered) on the hot path: ~11% of the worker."""
    for name in ("aiokafka", "kafka", "faust.transport", "faust.tables", "mode"):
        logging.getLogger(name).setLevel(level)


def run_worker(settings: Settings) -> None:
    import mode.loop

    # uvloop: the batch path's remaining framework cost is the event loop's
    # (stage1-throughput-research.md); it must be chosen before any loop exists.
    mode.loop.use("uvloop")
    ensure_topics(settings.kafka, settings.topics)
    app, stage = create_app(settings)
    tune_for_streaming()

    @app.timer(interval=settings.worker.report_interval_s)
    async def report_counters() -> None:
        _log_counters(stage)

    @app.task
    async def announce() -> None:
        # After Faust has set up logging; the one line an operator needs at any level.
        book = stage.book
        log.warning(
            "stage-1 worker %s pricing with %s (%d entries, %d from community lists, "
            "provider rules for %s)",
            settings.worker.app_id,
            book.label,
            len(book.book.entries),
            sum(1 for e in book.book.entries if e.source),
            ", ".join(sorted(book.rules)) or "no provider",
        )

    watch = StallWatch(settings.worker.stall_timeout_s)
    # (topic, partition) -> records not yet committed, as of the last watchdog round
    lag: list[dict[tuple[str, int], int]] = [{}]
    probe = LagProbe(settings.kafka, settings.worker.app_id)
    inputs = set(settings.topics.inputs())

    @app.timer(interval=10.0)
    async def watchdog() -> None:
        if app.in_recovery or app.rebalancing:
            # Restoring state is progress of its own; a restore or a rebalance that
            # stops moving is a stall like any other (seen once in CI, never pinned).
            waiting = _waiting_on_group(app)
            if watch.observe(time.monotonic(), waiting, stage.counters.progress()):
                _exit_stalled(app, inputs, waiting, settings.worker.stall_timeout_s)
            return
        tps = [tp for tp in app.consumer.assignment() if tp.topic in inputs]
        if not tps:
            return
        ends = await app.consumer.highwaters(*tps)  # true ends (agents.true_ends)
        loop = asyncio.get_running_loop()
        keys = [(tp.topic, tp.partition) for tp in tps]
        committed = await loop.run_in_executor(None, probe.committed, keys)
        lagging = {
            f"{tp.topic}[{tp.partition}]": (committed[(tp.topic, tp.partition)], ends[tp])
            for tp in tps
            if committed[(tp.topic, tp.partition)] < ends[tp]
        }
        # what /metrics reports as consumer lag: this assignment's, swapped in whole
        lag[0] = {key: max(0, ends[tp] - committed[key]) for key, tp in zip(keys, tps, strict=True)}
        if watch.observe(time.monotonic(), lagging, stage.counters.progress()):
            _exit_stalled(app, inputs, lagging, settings.worker.stall_timeout_s)

    server = None
    if settings.worker.metrics_port is not None:
        from pipeline.runtime.health_server import HealthServer
        from pipeline.runtime.stage_metrics import WorkerMetrics, registry

        def ready() -> tuple[bool, str]:
            if app.in_recovery:
                return False, "restoring task state from the changelog"
            if app.rebalancing:
                return False, "the consumer group is rebalancing"
            return True, "ready"

        reg = registry(WorkerMetrics(stage, lambda: lag[0]), stage.book.label)
        server = HealthServer(
            settings.worker.metrics_host, settings.worker.metrics_port, reg, ready
        )

    from faust.worker import Worker

    worker = Worker(
        app,
        loglevel=settings.worker.log_level,
        quiet=True,
        redirect_stdouts=False,
    )
    quiet_client_loggers()
    try:
        worker.execute_from_commandline()
    finally:
        _log_counters(stage)
        if server is not None:
            server.close()


def _waiting_on_group(app: Any) -> dict[str, tuple[int, int]]:
    """What a worker in recovery or a rebalance waits on, shaped as StallWatch's
    ``lagging``: the changes left to restore (it moves while recovery progresses)."""
    if not app.in_recovery:
        return {"rebalance": (0, 1)}
    try:
        remaining = int(app.tables.recovery.active_remaining_total())
    except Exception:  # diagnostics only: never let them kill the watchdog
        remaining = -1
    return {"table recovery (changes left)": (remaining, remaining + 1)}


def _exit_stalled(
    app: Any, inputs: set[str], lagging: dict[str, tuple[int, int]], timeout_s: int
) -> None:
    log.critical(
        "stage 1 stalled: %s have input waiting (committed, end) and nothing moved "
        "for %d s; exiting to be restarted (nothing is lost). Consumer state: %s",
        lagging,
        timeout_s,
        consumer_state(app, inputs),
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(STALL_EXIT)


def consumer_state(app: Any, inputs: set[str]) -> dict[str, Any]:
    """What Faust's consumer believes, for the log line of a stall: the flags that
    gate fetching and, per assigned input partition, the read and committed offsets
    and the acked offsets waiting for a commit. Faust internals, read defensively:
    a missing attribute reads as ``?``."""
    consumer = app.consumer

    def read(getter: Any) -> Any:
        try:
            return getter()
        except Exception:  # diagnostics only
            return "?"

    partitions = {
        f"{tp.topic}[{tp.partition}]": {
            "read": read(lambda tp=tp: consumer._read_offset[tp]),
            "committed": read(lambda tp=tp: consumer._committed_offset[tp]),
            "acked_waiting": read(lambda tp=tp: len(consumer._acked[tp])),
            "paused": read(lambda tp=tp: tp in consumer._paused_partitions),
        }
        for tp in read(consumer.assignment) or ()
        if getattr(tp, "topic", None) in inputs
    }
    return {
        "in_recovery": read(lambda: app.in_recovery),
        "rebalancing": read(lambda: app.rebalancing),
        "flow_active": read(lambda: consumer.flow_active),
        "unacked_messages": read(lambda: len(consumer._unacked_messages)),
        "recovery_remaining": read(lambda: app.tables.recovery.active_remaining_total()),
        "partitions": partitions,
    }


def _log_counters(stage: Stage) -> None:
    counters = stage.counters
    log.warning(
        "processed=%s duplicates=%s dead_lettered=%s unpriced=%s tasks_in_state=%d evicted=%d",
        dict(counters.processed),
        dict(counters.duplicates),
        dict(counters.dead_lettered),
        dict(counters.unpriced),
        len(stage.store),
        counters.evicted,
    )
