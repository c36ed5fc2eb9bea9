"""The sink's writes against real chDB: idempotent batches, latest snapshot wins."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pipeline.config import TopicSettings
from pipeline.query.migrate import migrate
from pipeline.sink.base import Batch, Record
from pipeline.sink.clickhouse import ClickHouseSink

TOPICS = TopicSettings()


def snapshot(task_id: str, version: int, cost: str, outcome: str = "") -> dict[str, Any]:
    return {
        "task_id": task_id,
        "version": version,
        "scenario_id": "s",
        "environment": "prod",
        "owner": "o",
        "first_event_ms": 1_793_577_600_000,
        "last_event_ms": 1_793_577_601_000,
        "started_ms": None,
        "completed_ms": None,
        "calls": version,
        "failed_calls": 0,
        "retried_calls": 0,
        "fallback_calls": 0,
        "unpriced_calls": 0,
        "total_cost": cost,
        "input_tokens": 1,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "output_tokens": 0,
        "reasoning_tokens": 0,
        "outcome": outcome,
        "outcome_source": "",
        "outcome_ms": None,
    }


def batch_of(records: list[tuple[str, int, bytes, tuple[tuple[str, bytes], ...]]]) -> Batch:
    batch = Batch()
    for offset, (topic, partition, value, headers) in enumerate(records):
        batch.add(Record(topic, partition, offset, b"k", value, headers))
    return batch


def test_highest_version_wins_and_a_retried_batch_changes_nothing(chdb_client: Any) -> None:
    migrate(chdb_client)
    sink = ClickHouseSink(chdb_client, TOPICS)
    batch = batch_of(
        [
            (TOPICS.task_snapshots, 0, json.dumps(snapshot("a", 2, "0.2")).encode(), ()),
            (TOPICS.task_snapshots, 0, json.dumps(snapshot("a", 1, "0.1")).encode(), ()),
            (
                TOPICS.task_snapshots,
                0,
                json.dumps(snapshot("b", 1, "0.000000000000000001")).encode(),
                (),
            ),
        ]
    )
    assert sink.write(batch) == {"tasks": 2}
    sink.write(batch)  # a retry after a crash before the offset commit
    rows = chdb_client.query("SELECT task_id, version, total_cost FROM tasks ORDER BY task_id")
    assert rows.result_rows == [("a", 2, Decimal("0.2")), ("b", 1, Decimal("1E-18"))]


def test_dead_letters_keep_reason_and_original_bytes(chdb_client: Any) -> None:
    migrate(chdb_client)
    original = b"\x00\xffnot json"
    headers = (
        ("costflow.reason", b"not_json"),
        ("costflow.detail", b"record is not JSON"),
        ("costflow.source_topic", b"costflow.calls"),
        ("costflow.source_partition", b"3"),
        ("costflow.source_offset", b"41"),
    )
    sink = ClickHouseSink(chdb_client, TOPICS)
    sink.write(batch_of([(TOPICS.dead_letter, 1, original, headers)]))
    row = chdb_client.query(
        "SELECT reason, source_topic, source_partition, source_offset, hex(payload) "
        "FROM dead_letters"
    ).result_rows[0]
    assert row == ("not_json", "costflow.calls", 3, 41, original.hex().upper())
