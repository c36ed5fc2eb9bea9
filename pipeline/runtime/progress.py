"""How far the pipeline has got, from committed offsets, and waiting until it is done.

"Done" is never guessed with a sleep: first the worker's group must have committed
the input topics' end offsets (Faust flushes its producer before it commits, so all
outputs of those inputs are in Kafka), then the sink's group must have committed the
output topics' end offsets as they stood at that moment (the sink commits only after
ClickHouse has the rows).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from pipeline.config import Settings
from pipeline.errors import CostflowError
from pipeline.kafka.offsets import LagProbe


class ProgressTimeout(CostflowError):
    code = "progress_timeout"


def _show(label: str, done: int, total: int, started: float, done_at_start: int = 0) -> None:
    # The rate of this wait's own progress: records committed before it began are not
    # throughput (they made "1,867,698/s" out of a restart).
    rate = (done - done_at_start) / max(time.monotonic() - started, 1e-9)
    sys.stderr.write(f"\r  {label}: {done:,}/{total:,} records ({rate:,.0f}/s)   ")
    sys.stderr.flush()


def wait_for_group(
    probe: LagProbe,
    targets: dict[tuple[str, int], int],
    label: str,
    timeout_s: float,
    check: Callable[[], None],
) -> float:
    """Block until the group committed ``targets``; returns seconds waited.

    ``check`` runs each round and raises if a process the wait depends on died.
    """
    total = sum(targets.values())
    started = time.monotonic()
    done_at_start: int | None = None
    while True:
        check()
        remaining = probe.remaining(targets)
        if done_at_start is None:
            done_at_start = total - remaining
        _show(label, total - remaining, total, started, done_at_start)
        if remaining == 0:
            sys.stderr.write("\n")
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            sys.stderr.write("\n")
            raise ProgressTimeout(
                f"{label}: {remaining:,} records still unprocessed after {timeout_s:.0f}s; "
                "check the worker and sink logs"
            )
        time.sleep(0.2)  # committed offsets cannot be subscribed to: poll them


@dataclass(frozen=True)
class Flushed:
    stage1_s: float
    stage2_s: float
    output_records: int


class PipelineProgress:
    """The worker's and the sink's consumer groups, read without joining them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker_probe = LagProbe(settings.kafka, settings.worker.app_id)
        self.sink_probe = LagProbe(settings.kafka, settings.sink.group_id)

    def wait_flushed(self, timeout_s: float, check: Callable[[], None] = lambda: None) -> Flushed:
        """Until every input present now is joined and priced, and its outputs are in
        the store."""
        topics = self.settings.topics
        inputs = self.worker_probe.end_offsets(topics.inputs())
        stage1_s = wait_for_group(
            self.worker_probe, inputs, "stage 1 (join + price)", timeout_s, check
        )
        outputs = self.sink_probe.end_offsets(topics.sink_inputs())
        stage2_s = wait_for_group(
            self.sink_probe, outputs, "stage 2 (to ClickHouse)", timeout_s, check
        )
        return Flushed(stage1_s, stage2_s, sum(outputs.values()))

    def close(self) -> None:
        self.worker_probe.close()
        self.sink_probe.close()

    def __enter__(self) -> PipelineProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
