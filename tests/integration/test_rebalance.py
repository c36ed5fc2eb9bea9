"""Two stage-1 workers share the partitions; a rebalance happens mid-stream and the
first worker is then SIGKILLed. ClickHouse equals the batch reference exactly."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.clickhouse.client import connect
from pipeline.config import Settings
from pipeline.demo.workload import generate, write_jsonl
from pipeline.kafka.produce import produce_lines
from tests.integration.conftest import assert_matches_reference, live_stack

pytestmark = pytest.mark.integration


def handled_by(log: Path) -> int:
    """Events a worker reports handling (processed or skipped as duplicates) in its log.

    Tansu's DescribeGroups does not list every member, so the worker's own progress
    line is the evidence that it was assigned partitions."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if "processed=" in line]
    if not lines:
        return 0
    return sum(int(n) for n in re.findall(r"'(?:call|task|outcome)': (\d+)", lines[-1]))


def test_second_worker_joins_then_first_is_killed(isolated_settings: Settings) -> None:
    events = generate(2000, seed=5)
    delivered = list(events)
    random.Random(3).shuffle(delivered)
    with live_stack(isolated_settings, report_interval_s=0.5) as live:
        env = dict(os.environ)
        env.update(live.settings.env())
        second: subprocess.Popen[bytes] | None = None
        try:
            half = len(delivered) // 2
            produce_lines(live.kafka, live.settings.topics, write_jsonl(delivered[:half]))
            with (live.logs / "worker2.log").open("ab") as out:
                second = subprocess.Popen(
                    [sys.executable, "-m", "pipeline.cli", "worker"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            deadline = time.monotonic() + 180
            while handled_by(live.logs / "worker2.log") == 0:  # the rebalance gave it partitions
                assert time.monotonic() < deadline, "the second worker never got partitions"
                assert second.poll() is None, "the second worker exited"
                time.sleep(0.1)
            # The second half arrives; the first worker dies with it unprocessed.
            produce_lines(live.kafka, live.settings.topics, write_jsonl(delivered[half:]))
            live.stack.children["worker"].kill()
            live.stack.children["worker"].wait()
            inputs = live.worker_probe.end_offsets(live.settings.topics.inputs())
            left_at_kill = live.worker_probe.remaining(inputs)
            live.drain()  # the killed worker stays dead: no liveness check
        finally:
            if second is not None:
                second.terminate()
                second.wait(60)
    settings = live.settings

    assert left_at_kill > 0, "nothing was left for the surviving worker"
    client = connect(settings.clickhouse, settings.stack, create=False)
    assert_matches_reference(client, events)
