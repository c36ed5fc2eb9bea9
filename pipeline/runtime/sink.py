"""Runs stage 2 in the foreground until SIGINT/SIGTERM: the configured store behind the
generic runner."""

from __future__ import annotations

from typing import Any

from pipeline.config import Settings
from pipeline.kafka.topics import ensure_topics
from pipeline.runtime.gc_tuning import tune_for_streaming
from pipeline.runtime.health_server import HealthServer
from pipeline.runtime.stage_metrics import AlertLoopMetrics, SinkMetrics, registry, write_timer
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
    server = _serve_metrics(settings, runner, loop)
    tune_for_streaming()
    try:
        runner.run()
    finally:
        if loop is not None:
            loop.stop()
        if server is not None:
            server.close()


def _serve_metrics(
    settings: Settings, runner: SinkRunner, alerts: Any | None
) -> HealthServer | None:
    """Stage 2's /metrics, /healthz and /readyz, when a port is set (with the alert
    loop's metrics when it evaluates rules)."""
    port = settings.sink.metrics_port
    if port is None:
        return None
    from pipeline.pricing.book import load_price_book

    reg = registry(SinkMetrics(runner), load_price_book(settings.worker.price_book_dir).label)
    if alerts is not None:
        reg.register(AlertLoopMetrics(alerts.stats))
    runner.observe_write_s = write_timer(reg)
    runner.measure_lag = True

    def ready() -> tuple[bool, str]:
        if runner.write_failing:
            return False, "the store refuses writes; the sink retries (see its log)"
        return True, "ready"

    return HealthServer(settings.sink.metrics_host, port, reg, ready)
