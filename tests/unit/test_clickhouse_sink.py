"""The sink's writes against real chDB: idempotent batches, latest snapshot wins."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pipeline.clickhouse.migrate import migrate
from pipeline.config import TopicSettings
from pipeline.records import decode_task_record
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


def snapshots(*snaps: dict[str, Any]) -> Batch:
    return batch_of([(TOPICS.task_snapshots, 0, json.dumps(s).encode(), ()) for s in snaps])


def aggregate(client: Any) -> dict[str, tuple[int, Decimal]]:
    """What the incremental aggregate says, read without FINAL or OPTIMIZE."""
    rows = client.query(
        "SELECT outcome, sum(tasks), sum(total_cost) FROM task_outcomes_daily "
        "GROUP BY outcome HAVING sum(tasks) != 0"
    ).result_rows
    return {row[0]: (row[1], row[2]) for row in rows}


def test_highest_version_wins_and_a_retried_batch_changes_nothing(chdb_client: Any) -> None:
    migrate(chdb_client)
    sink = ClickHouseSink(chdb_client, TOPICS)
    batch = snapshots(
        snapshot("a", 2, "0.2"), snapshot("a", 1, "0.1"), snapshot("b", 1, "0.000000000000000001")
    )
    assert sink.write(batch) == {"task_changes": 2}
    assert sink.write(batch) == {}  # a retry after a crash before the offset commit
    assert ClickHouseSink(chdb_client, TOPICS).write(batch) == {}  # ... in a new process
    rows = chdb_client.query(
        "SELECT task_id, bitShiftRight(version, 20), total_cost FROM tasks ORDER BY task_id"
    )
    assert rows.result_rows == [("a", 2, Decimal("0.2")), ("b", 1, Decimal("1E-18"))]
    assert aggregate(chdb_client) == {"": (2, Decimal("0.200000000000000001"))}


def test_a_restated_task_moves_between_aggregates_exactly(chdb_client: Any) -> None:
    """A late call and a changed outcome restate the task; sums stay exact unmerged."""
    migrate(chdb_client)
    ClickHouseSink(chdb_client, TOPICS).write(snapshots(snapshot("a", 1, "1.5", "rejected")))
    assert aggregate(chdb_client) == {"rejected": (1, Decimal("1.5"))}
    # A fresh process (empty cache) must cancel the row it finds in ClickHouse.
    sink = ClickHouseSink(chdb_client, TOPICS)
    assert sink.write(snapshots(snapshot("a", 3, "2.25", "accepted"))) == {"task_changes": 2}
    assert aggregate(chdb_client) == {"accepted": (1, Decimal("2.25"))}
    # A stale snapshot (stage 1 re-emitted an older version) changes nothing.
    assert sink.write(snapshots(snapshot("a", 2, "9", "rejected"))) == {}
    assert aggregate(chdb_client) == {"accepted": (1, Decimal("2.25"))}
    signs = chdb_client.query(
        "SELECT version, sign FROM task_changes ORDER BY version, sign"
    ).result_rows
    # Stored versions are events * 2^20 + reprice revision (none here).
    assert signs == [(1 << 20, -1), (1 << 20, 1), (3 << 20, 1)]


def test_a_batch_cut_off_between_table_and_view_is_completed_on_start(
    chdb_client: Any,
) -> None:
    """The server dies after task_changes got the block and before the aggregate did."""
    migrate(chdb_client)
    sink = ClickHouseSink(chdb_client, TOPICS)
    snap = snapshot("a", 1, "1.5", "rejected")
    rows, _ = sink.restater.changes({"a": [decode_task_record(json.dumps(snap).encode())]})
    chdb_client.command("DETACH TABLE task_outcomes_daily_mv")
    sink.plans.started("p1", ["task_changes"])
    sink.plans.insert("p1", "task_changes", rows)  # no view block, no "done"
    chdb_client.command("ATTACH TABLE task_outcomes_daily_mv")
    assert aggregate(chdb_client) == {}

    # The restarted sink completes the batch before its first write, then finds the
    # re-consumed batch already stored and writes nothing.
    restarted = ClickHouseSink(chdb_client, TOPICS)
    assert restarted.write(snapshots(snap)) == {}
    assert aggregate(chdb_client) == {"rejected": (1, Decimal("1.5"))}
    assert restarted.plans.repair() == 0  # done once, not repeated
    assert chdb_client.query("SELECT count() FROM task_changes").result_rows == [(1,)]


def test_a_call_delivered_twice_is_stored_once(chdb_client: Any) -> None:
    migrate(chdb_client)
    call = {
        "event_id": "c1", "task_id": "a", "ts_ms": 1_793_577_600_000, "provider": "openai",
        "model": "gpt-4o-mini", "scenario_id": "s", "environment": "prod", "role": "generator",
        "status": "ok", "service_tier": "standard", "attempt": 1, "retry_of": "",
        "fallback_from": "", "latency_ms": 10, "input_tokens": 1, "cache_read_tokens": 0,
        "cache_write_tokens": 0, "cache_write_1h_tokens": 0, "output_tokens": 1,
        "reasoning_tokens": 0, "cost_input": "1", "cost_cache_read": "0",
        "cost_cache_write": "0", "cost_output": "2", "cost_reasoning": "0", "cost_request": "0",
        "cost_total": "3", "currency": "USD", "price_book_version": "b@1", "pricing_error": "",
        "attributes": {},
    }  # fmt: skip
    record = (TOPICS.priced_calls, 0, json.dumps(call).encode(), ())
    sink = ClickHouseSink(chdb_client, TOPICS)
    assert sink.write(batch_of([record, record])) == {"calls": 1}
    # Re-delivered at another offset: another token, found by event_id instead.
    assert sink.write(batch_of([record] * 3)) == {}
    assert sink.skipped() == {"calls_already_stored": 1}
    assert chdb_client.query("SELECT count(), sum(cost_total) FROM calls").result_rows == [
        (1, Decimal(3))
    ]


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


def test_too_many_parts_asks_the_runner_for_a_pause(chdb_client: Any) -> None:
    from pipeline.sink.base import SinkBackpressure
    from pipeline.sink.clickhouse.writer import BACKPRESSURE_PAUSE_S

    migrate(chdb_client)
    sink = ClickHouseSink(chdb_client, TOPICS)

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)")

    sink.plans.insert = refuse  # type: ignore[method-assign]
    try:
        sink.write(snapshots(snapshot("a", 1, "1")))
    except SinkBackpressure as exc:
        assert exc.retry_after_s == BACKPRESSURE_PAUSE_S
    else:
        raise AssertionError("TOO_MANY_PARTS did not become backpressure")
