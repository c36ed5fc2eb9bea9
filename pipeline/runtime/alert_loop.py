"""Alert rules evaluated inside a long-running process (the sink, under ``costflow up``).

A daemon thread runs cycles of :class:`pipeline.alerts.engine.AlertEngine` at the data's
time every rule group's shortest interval; an error in a cycle is logged and the next
cycle retries, so the sink never stops for an alert rule.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.config import Settings

log = logging.getLogger("costflow.alerts")


class AlertLoop(threading.Thread):
    """Evaluate ``files`` over ``client`` until :meth:`stop`."""

    def __init__(self, client: Any, files: list[Path], settings: Settings | None = None) -> None:
        """``settings``: the stack's (Kafka receivers, and the consumer groups whose
        progress bounds the data's time); None: stored calls only, no Kafka."""
        super().__init__(name="costflow-alerts", daemon=True)
        from pipeline.alerts.engine import AlertEngine
        from pipeline.alerts.history import AlertHistory
        from pipeline.alerts.rules import load_rule_files
        from pipeline.query.alert_inputs import ClickHouseAlertInputs
        from pipeline.runtime.data_time import DataClock

        merged = load_rule_files(files)  # invalid files: refused at start
        self.client = client
        self.engine = AlertEngine(merged, ClickHouseAlertInputs(client))
        self.history = AlertHistory(client)
        # A receiver without its secret must not stop the sink (ingestion is the money
        # path): it is left out, said every cycle, and told once configured (outbox).
        self.unconfigured: list[str] = []
        kafka = settings.kafka if settings else None
        self.deliveries = self.engine.deliveries(kafka, self.unconfigured)
        self.clock = DataClock(client, settings)
        self.interval_s = max(1.0, min(g.interval for g in merged.groups).total_seconds())
        self.stats = AlertCycles()  # for /metrics (stage_metrics.AlertLoopMetrics)
        self._stopping = threading.Event()

    def run(self) -> None:
        from pipeline.alerts.engine import EvaluationBeforeHistory

        try:
            firing = self.engine.restore(self.history)
            log.warning("alerts: %d rules, %d firing from before", len(self.engine.rules), firing)
        except Exception as exc:  # no history table yet, ClickHouse down: next cycle
            log.error("alerts: could not restore state (%s); starting empty", exc)
        while not self._stopping.is_set():
            for problem in self.unconfigured:
                log.error("alerts: %s; that receiver is not notified until the sink is "
                          "restarted with it (its alerts are kept and sent then, up to a "
                          "day back)", problem)  # fmt: skip
            try:
                now = datetime.now(UTC)
                at = self.clock.at(now)  # a KafkaError: not judged this cycle
                if at is not None:
                    for event in self.engine.cycle(at, self.history, self.deliveries, now=now):
                        log.warning("alert %s %s %s", event.state, event.alert,
                                    dict(event.labels))  # fmt: skip
                    self.stats.judged(self.engine, at)
                self.stats.ran()
            except EvaluationBeforeHistory:
                # The data's time went back (a partition fell behind): wait for it.
                log.info("alerts: the data's time is behind the last evaluation; waiting")
                self.stats.ran()
            except Exception as exc:
                self.stats.failed()
                log.error("alerts: cycle failed (%s); retrying in %.0fs", exc, self.interval_s)
            self._stopping.wait(self.interval_s)

    def stop(self) -> None:
        self._stopping.set()


@dataclass
class AlertCycles:
    """What an evaluator (the sink's :class:`AlertLoop`, or ``costflow alerts run``)
    did, for /metrics and readiness. ``firing``: alert -> (severity, instances firing)
    after the last judged cycle, swapped whole (a scrape thread reads it);
    ``data_time``: where its windows ended (the pipeline's event-time watermark as the
    evaluator read it)."""

    cycles: int = 0
    failed_cycles: int = 0
    failed_last: bool = False
    firing: dict[str, tuple[str, int]] = field(default_factory=dict)
    data_time: datetime | None = None

    def judged(self, engine: Any, at: datetime) -> None:
        """A cycle judged up to ``at``: what fires now."""
        self.firing, self.data_time = firing_counts(engine.firing(at)), at

    def ran(self) -> None:
        self.cycles += 1
        self.failed_last = False

    def failed(self) -> None:
        self.failed_cycles += 1
        self.failed_last = True


def firing_counts(events: list[Any]) -> dict[str, tuple[str, int]]:
    """Instances firing per alert, with the alert's severity."""
    counts: dict[str, tuple[str, int]] = {}
    for event in events:
        severity, n = counts.get(event.alert, (event.severity, 0))
        counts[event.alert] = (severity, n + 1)
    return counts
