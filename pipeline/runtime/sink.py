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
    runner = SinkRunner(settings, open_store(settings))
    tune_for_streaming()
    runner.run()
