from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import (
    ClickHouseSettings,
    KafkaSettings,
    Settings,
    SinkSettings,
    StackSettings,
    TopicSettings,
    WorkerSettings,
)
from pipeline.embedded.broker import EmbeddedBroker
from pipeline.kafka.offsets import LagProbe
from pipeline.runtime.progress import PipelineProgress
from pipeline.runtime.supervisor import Stack
from tests.clickhouse_rows import utc
from tests.reference import CallCost, call_cost, expected_cost_per_outcome, expected_tasks


@pytest.fixture
def isolated_settings(tmp_path: Path) -> Settings:
    """Own topics, consumer groups, database and data directory for one test."""
    uid = uuid.uuid4().hex[:8]
    return Settings(
        stack=StackSettings(data_dir=tmp_path / "data"),
        topics=TopicSettings.with_prefix(f"it-{uid}."),
        clickhouse=ClickHouseSettings(database=f"it_{uid}"),
        # Workloads span more than a week and arrive shuffled: keep every task's state
        # (retention has its own tests).
        # A stalled worker restarts after 30 s, not 120: within one test's time budget
        # (sessions time out after 6 s, so no healthy rebalance or step waits that long).
        worker=WorkerSettings(
            app_id=f"it-stage1-{uid}",
            commit_interval_s=0.5,
            state_retention_s=365 * 86_400,
            stall_timeout_s=30,
        ),
        sink=SinkSettings(group_id=f"it-sink-{uid}", flush_interval_s=0.5),
    )


def await_condition(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll a condition the test cannot subscribe to, failing with ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def write_events(path: Path, events: list[dict[str, Any]], extra: list[bytes] = ()) -> Path:  # type: ignore[assignment]
    with path.open("wb") as handle:
        for event in events:
            handle.write(json.dumps(event).encode() + b"\n")
        for line in extra:
            handle.write(line + b"\n")
    return path


@dataclass
class LiveStack:
    """A running pipeline on a private broker: worker and sink as child processes."""

    kafka: KafkaSettings
    settings: Settings
    stack: Stack
    progress: PipelineProgress

    @property
    def logs(self) -> Path:
        return self.settings.stack.data_dir / "logs"

    @property
    def worker_probe(self) -> LagProbe:
        return self.progress.worker_probe

    def drain(self, check: Callable[[], None] = lambda: None) -> None:
        self.progress.wait_flushed(300, check)


@contextmanager
def live_stack(isolated: Settings, **worker_overrides: Any) -> Iterator[LiveStack]:
    with EmbeddedBroker() as broker:
        kafka = KafkaSettings(bootstrap=broker.bootstrap)
        settings = isolated.replace(
            kafka=kafka, worker=isolated.worker.model_copy(update=worker_overrides)
        )
        with (
            PipelineProgress(settings) as progress,
            Stack(settings, log_dir=settings.stack.data_dir / "logs") as stack,
        ):
            try:
                yield LiveStack(kafka, settings, stack, progress)
            except BaseException:  # pytest-timeout's Failed included: CI shows only this
                _print_log_tails(settings.stack.data_dir / "logs")
                raise


@contextmanager
def clickhouse_of(settings: Settings) -> Iterator[Any]:
    """A client of the test's ClickHouse, closed after: chDB opens one path per process,
    so a client left open would stop the next test from opening its own."""
    from pipeline.clickhouse.client import connect

    client = connect(settings.clickhouse, settings.stack, create=False)
    try:
        yield client
    finally:
        client.close()


def _print_log_tails(logs: Path, lines: int = 40) -> None:
    """The last lines of the worker's and sink's logs, on the test's stderr."""
    for path in sorted(logs.glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        sys.stderr.write(f"\n--- last {len(tail)} lines of {path.name} ---\n")
        sys.stderr.write("\n".join(line[:2000] for line in tail) + "\n")


VIEW_COLUMNS = ("tasks", "accepted", "rejected", "failed", "unresolved", "pending",
                "total_cost", "accepted_cost", "cost_per_task", "cost_per_accepted_outcome",
                "final")  # fmt: skip
TASK_COLUMNS = ("scenario_id", "environment", "owner", "calls", "unpriced_calls", "total_cost",
                "outcome", "outcome_deadline")  # fmt: skip


def assert_matches_reference(
    client: Any,
    events: list[dict[str, Any]],
    windows: dict[str, timedelta] | None = None,
    cost: CallCost = call_cost,
) -> None:
    """Every task row and every v_cost_per_outcome row equal the batch reference, exactly.

    The view is read from pre-aggregated sign rows, unmerged: this is the check
    that restatements keep incremental aggregates exact.
    """
    stored_tasks = {
        row[0]: tuple(utc(v) for v in row[1:])
        for row in client.query(
            f"SELECT task_id, {', '.join(TASK_COLUMNS)} FROM tasks FINAL"
        ).result_rows
    }
    assert stored_tasks == {
        task.task_id: tuple(getattr(task, column) for column in TASK_COLUMNS)
        for task in expected_tasks(events, windows, cost).values()
    }
    # now64() is one value per query: the reference judges pending/unresolved at it.
    view = client.query(
        f"SELECT day, scenario_id, environment, {', '.join(VIEW_COLUMNS)}, now64(3) "
        "FROM v_cost_per_outcome"
    ).result_rows
    as_of = utc(view[0][-1]) if view else datetime.now(UTC)
    assert {
        (row[0], row[1], row[2]): dict(zip(VIEW_COLUMNS, row[3:-1], strict=True)) for row in view
    } == expected_cost_per_outcome(events, as_of, windows, cost)
