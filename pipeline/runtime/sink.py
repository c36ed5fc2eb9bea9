"""Runs stage 2 in the foreground until SIGINT/SIGTERM: the configured store behind the
generic runner."""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.kafka.topics import ensure_topics
from pipeline.runtime.gc_tuning import tune_for_streaming
from pipeline.sink.runner import SinkRunner
from pipeline.sink.stores import open_store


def run_sink(settings: Settings) -> None:
    ensure_topics(settings.kafka, settings.topics)
    store = open_store(settings)
    runner = SinkRunner(settings, store)
    loop = None
    files = settings.sink.alert_rule_files()
    if files:
        from pipeline.runtime.alert_loop import AlertLoop

        loop = AlertLoop(getattr(store, "client"), files, settings)  # noqa: B009 (ClickHouse stores)
        loop.start()
    tune_for_streaming()
    try:
        runner.run()
    finally:
        if loop is not None:
            loop.stop()
