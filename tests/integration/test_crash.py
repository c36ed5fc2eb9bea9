"""SIGKILL the stage-1 worker and the sink mid-stream; after restarts ClickHouse
equals the batch reference exactly: nothing lost, nothing counted twice."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

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


# Loaded into the worker process only (sitecustomize on its PYTHONPATH): on the
# worker's third fetch, SIGKILL itself right after handing the fetch's first record
# batch to the producer and before any delivery is acknowledged, once (the marker
# file says it happened).
_KILL_IN_FLIGHT = """
import os, signal, sys
if sys.argv[-1] == "worker" and not os.path.exists(os.environ["KILL_MARKER"]):
    from pipeline.agents import batch_output
    original, fetches = batch_output._send, []

    async def send_then_die(producer, topic, partition, records):
        futures = await original(producer, topic, partition, records)
        fetches.append(topic)
        if len(fetches) >= 3 and not any(f.done() for f in futures):
            open(os.environ["KILL_MARKER"], "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return futures

    batch_output._send = send_then_die
"""


def test_worker_killed_while_a_fetchs_outputs_are_in_flight(
    isolated_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inputs of a fetch whose outputs were not yet acknowledged stay uncommitted:
    after the restart they are processed again and ClickHouse equals the reference."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_KILL_IN_FLIGHT)
    marker = tmp_path / "killed"
    monkeypatch.setenv("PYTHONPATH", f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("KILL_MARKER", str(marker))
    events = generate(600, seed=23)
    with live_stack(isolated_settings, max_poll_records=200) as live:
        produce_lines(live.kafka, live.settings.topics, write_jsonl(events))
        worker = live.stack.children["worker"]
        await_condition(lambda: worker.poll() is not None, 300, "the worker to kill itself")
        assert worker.returncode == -signal.SIGKILL and marker.exists()
        live.stack.respawn("worker")
        live.drain(live.stack.check_alive)
    client = connect(live.settings.clickhouse, live.settings.stack, create=False)
    assert_matches_reference(client, events)
