"""One stack per data directory, and whether its last run finished."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import EmbeddedStackError
from pipeline.runtime.run_state import DataDirLock, mark_drained, mark_running, unfinished


def test_a_second_stack_on_a_data_directory_is_refused(tmp_path: Path) -> None:
    with DataDirLock(tmp_path):
        # Another process, as a second `costflow up` would be.
        other = subprocess.run(
            [sys.executable, "-c",
             "import sys; from pathlib import Path; from pipeline.runtime.run_state import "
             "DataDirLock; DataDirLock(Path(sys.argv[1])).acquire()", str(tmp_path)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert other.returncode != 0 and "one costflow up or replay per data directory" in (
            other.stderr
        )
        with pytest.raises(EmbeddedStackError, match="in use by costflow pid"):
            DataDirLock(tmp_path).acquire()
    DataDirLock(tmp_path).acquire().release()  # free again once released


def test_a_run_that_did_not_drain_says_so(tmp_path: Path) -> None:
    assert unfinished(tmp_path) is None  # never run
    mark_running(tmp_path)
    why = unfinished(tmp_path)
    assert why is not None and why.startswith("INCOMPLETE") and "costflow up" in why
    mark_drained(tmp_path)
    assert unfinished(tmp_path) is None


def test_a_running_stack_is_live_not_incomplete(tmp_path: Path) -> None:
    """While `up` holds the directory, a report is live, not an alarm about a crash."""
    with DataDirLock(tmp_path):
        mark_running(tmp_path)
        why = unfinished(tmp_path)
        assert why is not None and why.startswith("LIVE") and f"pid {os.getpid()}" in why
    why = unfinished(tmp_path)  # released while still marked running: it did not drain
    assert why is not None and why.startswith("INCOMPLETE")


def test_a_stall_is_input_waiting_with_nothing_moving_for_the_timeout() -> None:
    from pipeline.agents.stall import StallWatch

    watch = StallWatch(timeout_s=120)
    waiting = {"calls[2]": (114, 255)}
    assert not watch.observe(0, waiting, progress=500)
    assert not watch.observe(119, waiting, progress=500)
    assert watch.observe(120, waiting, progress=500)  # 120 s, nothing moved
    # Progress anywhere (events handled, or the partition's commit) restarts the clock.
    assert not watch.observe(121, waiting, progress=501)
    assert not watch.observe(200, {"calls[2]": (120, 255)}, progress=501)
    assert not watch.observe(319, {"calls[2]": (120, 255)}, progress=501)
    assert watch.observe(320, {"calls[2]": (120, 255)}, progress=501)
    # Nothing waiting is never a stall, however long it stays so.
    idle = StallWatch(timeout_s=120)
    assert not idle.observe(0, {}, 0) and not idle.observe(10_000, {}, 0)


def test_the_supervisor_restarts_what_a_restart_fixes_and_nothing_else() -> None:
    from pipeline.agents.stall import STALL_EXIT
    from pipeline.config import Settings
    from pipeline.runtime.supervisor import RESTARTS_PER_WINDOW, Stack

    stack = Stack(Settings())
    spawned: list[str] = []

    def spawn(role: str) -> subprocess.Popen[bytes]:
        spawned.append(role)
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        stack.children[role] = process
        return process

    stack._spawn = spawn  # type: ignore[method-assign]
    stalled = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({STALL_EXIT})"])
    stalled.wait()
    stack.children["worker"] = stalled
    stack.check_alive()  # restarted, not raised
    assert spawned == ["worker"]
    crashed = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    crashed.wait()
    stack.children["sink"] = crashed
    with pytest.raises(EmbeddedStackError, match="sink exited with code 1"):
        stack.check_alive()
    # SIGKILLed (the OOM killer at 3 a.m.): restarted, it resumes from its commits ...
    del stack.children["sink"]
    for n in range(RESTARTS_PER_WINDOW - 1):  # the stall above was the first restart
        stack.children["worker"].kill()
        stack.children["worker"].wait()
        stack.check_alive()
        assert spawned == ["worker"] * (n + 2)
    # ... but not forever: a sixth restart in ten minutes is refused, with why.
    stack.children["worker"].kill()
    stack.children["worker"].wait()
    with pytest.raises(EmbeddedStackError, match="restarted 5 times in 10 min"):
        stack.check_alive()


def test_a_recovery_or_rebalance_that_stops_moving_is_a_stall() -> None:
    """The watchdog used to skip workers in recovery or a rebalance; one that never
    left either hung a CI run for good. Recovery progress is its changes left."""
    from types import SimpleNamespace

    from pipeline.agents.stall import StallWatch
    from pipeline.runtime.worker import _waiting_on_group

    left = [500]
    recovery = SimpleNamespace(active_remaining_total=lambda: left[0])
    app = SimpleNamespace(in_recovery=True, tables=SimpleNamespace(recovery=recovery))
    watch = StallWatch(timeout_s=30)
    assert not watch.observe(0, _waiting_on_group(app), progress=0)
    left[0] = 200  # restoring: progress
    assert not watch.observe(29, _waiting_on_group(app), progress=0)
    assert not watch.observe(58, _waiting_on_group(app), progress=0)
    assert watch.observe(59, _waiting_on_group(app), progress=0)  # 30 s at 200 left
    rebalancing = SimpleNamespace(in_recovery=False)
    watch = StallWatch(timeout_s=30)
    assert not watch.observe(0, _waiting_on_group(rebalancing), progress=7)
    assert watch.observe(30, _waiting_on_group(rebalancing), progress=7)


def test_alert_loop_metrics_count_instances_firing_per_alert() -> None:
    from types import SimpleNamespace

    import prometheus_client as prom

    from pipeline.runtime.alert_loop import firing_counts
    from pipeline.runtime.stage_metrics import AlertLoopMetrics

    events = [SimpleNamespace(alert="SpendSpike", severity="critical")] * 2 + [
        SimpleNamespace(alert="WeeklyBudget", severity="warning")
    ]
    data_time = datetime(2026, 11, 5, 15, tzinfo=UTC)
    loop = SimpleNamespace(
        cycles=7, failed_cycles=1, firing=firing_counts(events), data_time=data_time
    )
    reg = prom.CollectorRegistry()
    reg.register(AlertLoopMetrics(loop))
    text = prom.generate_latest(reg).decode()
    # 2026-11-05T15:00Z: 1970..2025 are 56 years with 14 leap days (1972..2024), then
    # January 1 to November 5, 2026 is 308 days; plus 15 hours.
    expected_s = ((56 * 365 + 14 + 308) * 24 + 15) * 3600
    assert expected_s == 1_793_890_800
    samples = {
        name: float(value)
        for name, value in (line.split() for line in text.splitlines() if line[:1] != "#")
    }
    assert samples["costflow_alerts_data_time_timestamp_seconds"] == expected_s
    age = samples["costflow_alerts_data_time_age_seconds"]
    assert age >= (datetime.now(UTC) - data_time).total_seconds() - 60
    assert 'costflow_alerts_firing{alert="SpendSpike",severity="critical"} 2.0' in text
    assert 'costflow_alerts_firing{alert="WeeklyBudget",severity="warning"} 1.0' in text
    assert "costflow_alerts_cycles_total 7.0" in text
    assert "costflow_alerts_failed_cycles_total 1.0" in text
