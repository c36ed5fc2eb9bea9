"""One-shot replay: start the stack, produce a file, wait until every event is
processed by stage 1 and flushed by stage 2 (see :mod:`pipeline.runtime.progress`), stop.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

from pipeline.config import Settings
from pipeline.kafka.produce import produce_file
from pipeline.runtime.progress import PipelineProgress
from pipeline.runtime.supervisor import Stack


def private_stack(settings: Settings) -> Settings:
    """A one-shot replay owns its embedded broker: any free port will do."""
    if not settings.kafka.embedded:
        return settings
    from pipeline.embedded.broker import free_port

    return settings.replace(kafka=settings.kafka.model_copy(update={"embedded_port": free_port()}))


def replay(settings: Settings, path: Path, timeout_s: float = 1800) -> dict[str, object]:
    settings = private_stack(settings)
    log_dir = settings.stack.data_dir / "logs"
    with Stack(settings, log_dir=log_dir) as stack:
        sys.stderr.write(f"costflow: stack up (logs in {log_dir}); producing {path}\n")
        t0 = time.monotonic()
        try:
            sent: Counter[str] = produce_file(settings.kafka, settings.topics, path)
            produced_s = time.monotonic() - t0
            with PipelineProgress(settings) as progress:
                flushed = progress.wait_flushed(timeout_s, stack.check_alive)
        except KeyboardInterrupt:
            # What the broker acknowledged is finished (Ctrl-C again stops at once and
            # leaves it for the next run); what was not produced is not.
            sys.stderr.write("\ncostflow: interrupted; events not yet produced are not sent\n")
            stack.drain()
            raise
        stack.drained()
        total_s = time.monotonic() - t0
    return {
        "events": sum(sent.values()),
        "by_topic": dict(sent),
        "produce_s": produced_s,
        "stage1_s": flushed.stage1_s,
        "stage2_s": flushed.stage2_s,
        "total_s": total_s,
        "output_records": flushed.output_records,
    }
