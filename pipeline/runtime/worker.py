"""Runs stage 1 in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import time

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
    probe = LagProbe(settings.kafka, settings.worker.app_id)
    inputs = set(settings.topics.inputs())

    @app.timer(interval=10.0)
    async def watchdog() -> None:
        if app.in_recovery or app.rebalancing:
            watch.observe(time.monotonic(), {}, 0)  # restoring state is progress of its own
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
        if watch.observe(time.monotonic(), lagging, stage.counters.progress()):
            log.critical(
                "stage 1 stalled: %s have input waiting (committed, end) and nothing moved "
                "for %d s; exiting to be restarted (nothing is lost)",
                lagging,
                settings.worker.stall_timeout_s,
            )
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(STALL_EXIT)

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
