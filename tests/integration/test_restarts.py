"""Several runs on one data directory, stopped gracefully or SIGKILLed (broker included),
equal the batch reference over every acknowledged event.

This is how the embedded stack is really used: ``costflow replay`` after ``costflow
replay``, ``costflow up`` stopped and started. Each wave starts the whole stack
(durable embedded broker, worker, sink, chDB) on the same data directory, produces
its events (each acknowledged with acks=all), then stops it: by draining and a
graceful stop, or by SIGKILL of every process of the stack while work is in flight.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.clickhouse.client import connect
from pipeline.config import Settings
from pipeline.embedded.broker import free_port
from pipeline.kafka.produce import produce_lines
from pipeline.query.report import health
from pipeline.runtime.progress import PipelineProgress
from pipeline.runtime.supervisor import Stack
from tests.integration.conftest import assert_matches_reference, await_condition
from tests.waves import events_of, waves

pytestmark = pytest.mark.integration


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def kill_everything(stack: Stack) -> None:
    """SIGKILL every process of the stack at once: broker, its store, worker, sink."""
    victims = []
    for process in stack.children.values():
        victims += [process.pid, *descendants(process.pid)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for process in stack.children.values():
        process.wait()
    await_condition(lambda: all(gone(pid) for pid in victims), 30, "every process to die")
    if stack.lock is not None:  # the supervisor died too: the kernel drops its flock
        stack.lock.release()


def run_wave(base: Settings, lines: list[bytes], stop: str) -> None:
    """One session of the stack on the shared data directory."""
    settings = base.replace(
        kafka=base.kafka.model_copy(update={"embedded_port": free_port(), "bootstrap": None})
    )
    stack = Stack(settings, log_dir=settings.stack.data_dir / "logs").start()
    try:
        produce_lines(settings.kafka, settings.topics, lines)  # returns once all are acked
        with PipelineProgress(settings) as progress:
            if stop == "graceful":
                progress.wait_flushed(300, stack.check_alive)
            else:
                # In flight: stage 1 has committed a part of this wave (or, on a fast
                # machine, all of it), the sink has not caught up.
                inputs = progress.worker_probe.end_offsets(settings.topics.inputs())
                await_condition(
                    lambda: progress.worker_probe.remaining(inputs) <= len(lines) * 0.7, 300,
                    "stage 1 to commit part of the wave",
                )  # fmt: skip
    except BaseException:
        stack.stop()
        raise
    if stop == "graceful":
        stack.stop()
    else:
        kill_everything(stack)


def check(base: Settings, all_lines: list[list[bytes]]) -> None:
    # A last session with nothing new: whatever a kill left in flight is finished.
    run_wave(base, [], "graceful")
    client = connect(base.clickhouse, base.stack, create=False)
    try:
        events = events_of(all_lines)
        assert_matches_reference(client, events)
        distinct_calls = len({e["event_id"] for e in events if e["type"] == "call"})
        assert client.query("SELECT count() FROM calls FINAL").result_rows[0][0] == distinct_calls
        # Nothing stage 1 applied is missing from a stored row.
        assert health(client)["diverged_tasks"] == 0
    finally:
        client.close()


def test_three_waves_graceful_stop_then_sigkill_of_everything(
    isolated_settings: Settings,
) -> None:
    all_lines = waves(300, seed=5, count=3)
    run_wave(isolated_settings, all_lines[0], "graceful")
    run_wave(isolated_settings, all_lines[1], "kill")
    run_wave(isolated_settings, all_lines[2], "graceful")
    check(isolated_settings, all_lines)


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10_000),
    stops=st.lists(st.sampled_from(["graceful", "kill"]), min_size=2, max_size=4),
)
def test_any_waves_any_stops(isolated_settings: Settings, seed: int, stops: list[str]) -> None:
    import uuid

    base = isolated_settings.replace(
        stack=isolated_settings.stack.model_copy(
            update={"data_dir": isolated_settings.stack.data_dir / uuid.uuid4().hex[:8]}
        )
    )
    all_lines = waves(80, seed=seed, count=len(stops))
    for lines, stop in zip(all_lines, stops, strict=True):
        run_wave(base, lines, stop)
    check(base, all_lines)
