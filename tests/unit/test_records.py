"""The stage-1 -> stage-2 contract: what is encoded is what is decoded."""

from __future__ import annotations

import json

import pytest

from pipeline.join.state import DEFAULT_WINDOW, TaskState
from pipeline.records import (
    COST_PARTS,
    RECORD_VERSION,
    DeadLetterHeaders,
    decode_task_record,
    task_evicted,
    task_snapshot,
)
from pipeline.sink.clickhouse.rows import CALL_COLUMNS


def test_cost_parts_are_the_calls_tables_cost_columns() -> None:
    lower_bound = ("cost_known", "cost_known_parts")  # beside the parts, not one of them
    assert tuple(f"cost_{p}" for p in COST_PARTS) == tuple(
        c for c in CALL_COLUMNS if c.startswith("cost_") and c not in lower_bound
    )


def test_task_records_round_trip_with_their_state() -> None:
    state = TaskState(task_id="t1", seen={"e1", "e2"}, calls=1, last_event_ms=3_600_000)
    snapshot = decode_task_record(task_snapshot(state, DEFAULT_WINDOW))
    assert (snapshot.kind, snapshot.task_id) == ("snapshot", "t1")
    assert snapshot.data["v"] == RECORD_VERSION
    assert snapshot.data["version"] == 2 and snapshot.data["calls"] == 1
    assert snapshot.state is not None and sorted(snapshot.state["seen"]) == ["e1", "e2"]
    assert snapshot.state["window_ms"] == 24 * 3_600_000
    evicted = decode_task_record(task_evicted(state, DEFAULT_WINDOW))
    assert (evicted.kind, evicted.state is not None) == ("evicted", True)


def test_a_version_1_snapshot_has_no_state() -> None:
    old = decode_task_record(json.dumps({"task_id": "t1", "version": 3}).encode())
    assert (old.kind, old.state) == ("snapshot", None)


def test_records_the_sink_cannot_read_are_refused_with_the_reason() -> None:
    newer = {"v": RECORD_VERSION + 1, "task_id": "t1", "kind": "snapshot"}
    with pytest.raises(ValueError, match="upgrade the sink before the worker"):
        decode_task_record(json.dumps(newer).encode())
    with pytest.raises(ValueError, match="unknown task record kind"):
        decode_task_record(json.dumps({"task_id": "t1", "kind": "nope"}).encode())
    with pytest.raises(ValueError, match="task_id"):
        decode_task_record(b"[1]")


def test_dead_letter_headers_round_trip() -> None:
    headers = DeadLetterHeaders("not_json", "record is not JSON", "costflow.calls", 3, 41)
    assert DeadLetterHeaders.from_kafka(headers.to_kafka()) == headers
    assert DeadLetterHeaders.from_kafka(None).reason == "unknown"
