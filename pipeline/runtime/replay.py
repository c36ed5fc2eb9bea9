"""One-shot replay: start the stack, produce a file, wait until every event is
processed by stage 1 and flushed by stage 2, stop.

"Done" is read from committed offsets, never guessed with a sleep: first the
worker's group must have committed the input topics' end offsets (Faust flushes
its producer before it commits, so all outputs of those inputs are in Kafka),
then the sink's group must have committed the output topics' end offsets as
they stood at that moment (the sink commits only after ClickHouse has the rows).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import CostflowError
from pipeline.runtime.offsets import LagProbe
from pipeline.runtime.produce import produce_file
from pipeline.runtime.supervisor import Stack


class ReplayTimeout(CostflowError):
    code = "replay_timeout"


def _progress(label: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.monotonic() - started, 1e-9)
    sys.stderr.write(f"\r  {label}: {done:,}/{total:,} records ({rate:,.0f}/s)   ")
    sys.stderr.flush()


def wait_for_group(
    probe: LagProbe,
    targets: dict[tuple[str, int], int],
    label: str,
    timeout_s: float,
    check: Callable[[], None],
) -> float:
    """Block until the group committed ``targets``; returns seconds waited."""
    total = sum(targets.values())
    started = time.monotonic()
    while True:
        check()
        remaining = probe.remaining(targets)
        _progress(label, total - remaining, total, started)
        if remaining == 0:
            sys.stderr.write("\n")
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            sys.stderr.write("\n")
            raise ReplayTimeout(
                f"{label}: {remaining:,} records still unprocessed after {timeout_s:.0f}s; "
                "check the worker and sink logs"
            )
        time.sleep(0.2)  # poll interval of a progress display, not a wait for a condition


def private_stack(settings: Settings) -> Settings:
    """A one-shot replay owns its embedded broker: any free port will do."""
    if not settings.kafka.embedded:
        return settings
    from pipeline.embedded.broker import free_port

    kafka = settings.kafka.model_copy(update={"embedded_port": free_port()})
    return Settings(
        settings.stack, kafka, settings.topics, settings.clickhouse, settings.worker, settings.sink
    )


def replay(settings: Settings, path: Path, timeout_s: float = 1800) -> dict[str, object]:
    settings = private_stack(settings)
    log_dir = settings.stack.data_dir / "logs"
    with Stack(settings, log_dir=log_dir) as stack:
        sys.stderr.write(f"costflow: stack up (logs in {log_dir}); producing {path}\n")
        t0 = time.monotonic()
        sent: Counter[str] = produce_file(settings.kafka, settings.topics, path)
        produced_s = time.monotonic() - t0
        worker_probe = LagProbe(settings.kafka, settings.worker.app_id)
        sink_probe = LagProbe(settings.kafka, settings.sink.group_id)
        try:
            inputs = worker_probe.end_offsets(settings.topics.inputs())
            stage1_s = wait_for_group(
                worker_probe, inputs, "stage 1 (join + price)", timeout_s, stack.check_alive
            )
            outputs = sink_probe.end_offsets(settings.topics.sink_inputs())
            stage2_s = wait_for_group(
                sink_probe, outputs, "stage 2 (to ClickHouse)", timeout_s, stack.check_alive
            )
        finally:
            worker_probe.close()
            sink_probe.close()
        total_s = time.monotonic() - t0
    return {
        "events": sum(sent.values()),
        "by_topic": dict(sent),
        "produce_s": produced_s,
        "stage1_s": stage1_s,
        "stage2_s": stage2_s,
        "total_s": total_s,
        "output_records": sum(outputs.values()),
    }
