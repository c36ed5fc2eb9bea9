"""SIGKILL the stage-1 worker and the sink mid-stream; after restarts ClickHouse
equals the batch reference exactly: nothing lost, nothing counted twice."""

from __future__ import annotations

import random

import pytest

from pipeline.clickhouse.client import connect
from pipeline.config import Settings
from pipeline.demo.workload import generate, write_jsonl
from pipeline.kafka.produce import produce_lines
from tests.integration.conftest import assert_matches_reference, await_condition, live_stack

pytestmark = pytest.mark.integration


def test_worker_and_sink_killed_mid_stream(isolated_settings: Settings) -> None:
    events = generate(1200, seed=21)
    delivered = list(events)
    random.Random(2).shuffle(delivered)
    with live_stack(isolated_settings) as live:
        produce_lines(live.kafka, live.settings.topics, write_jsonl(delivered))
        inputs = live.worker_probe.end_offsets(live.settings.topics.inputs())
        total = sum(inputs.values())

        def committed_share() -> float:
            return (total - live.worker_probe.remaining(inputs)) / total

        for role, share in (("worker", 0.2), ("sink", 0.4), ("worker", 0.6)):
            await_condition(lambda s=share: committed_share() >= s, 300, f"{share:.0%}")
            live.stack.children[role].kill()  # SIGKILL: no flush, no commit, no goodbye
            live.stack.children[role].wait()
            live.stack.respawn(role)
        live.drain(live.stack.check_alive)
    settings = live.settings

    client = connect(settings.clickhouse, settings.stack, create=False)
    assert_matches_reference(client, events)
    distinct_calls = len({e["event_id"] for e in events if e["type"] == "call"})
    assert client.query("SELECT count() FROM calls FINAL").result_rows[0][0] == distinct_calls
