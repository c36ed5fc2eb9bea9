"""Nothing the sink skips is lost: the task states it keeps, against real chDB.

Events go through the real stage-1 code (recording topics in place of Kafka) and
the real sink. Three situations that used to end in a silent "superseded":
- a task whose state left stage 1 (retention) and that then got a recent event:
  the new start is merged with the stored state exactly;
- a snapshot built on a stale state (lost or short-read changelog): not applied,
  its new events kept as pending and shown by the report's health;
- re-emitted or older snapshots: skipped, and provably nothing is lost.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

from pipeline.clickhouse.migrate import migrate
from pipeline.join.retention import RetentionIndex
from pipeline.join.state import OutcomeWindow
from pipeline.query.report import health
from pipeline.sink.clickhouse import ClickHouseSink
from pipeline.sink.clickhouse.rows import CALL_COLUMNS, CHANGE_COLUMNS, call_row
from pipeline.sink.clickhouse.rows import task_row as change_row
from pipeline.sink.lineage import Applied, Lineage, Part
from tests.clickhouse_rows import utc
from tests.reference import expected_tasks
from tests.unit.test_agents import context, stage1
from tests.unit.test_clickhouse_sink import TOPICS, aggregate, batch_of

HOUR = 3_600_000


def call(event_id: str, task_id: str, ts: str, tokens: int = 1000) -> dict[str, Any]:
    return {"type": "call", "event_id": event_id, "task_id": task_id, "ts": ts,
            "provider": "openai", "model": "gpt-4o-mini", "scenario_id": "s",
            "usage": {"input_tokens": tokens, "output_tokens": tokens // 10}}  # fmt: skip


def outcome(event_id: str, task_id: str, ts: str, value: str = "accepted") -> dict[str, Any]:
    return {"type": "outcome", "event_id": event_id, "task_id": task_id, "ts": ts,
            "outcome": value, "source": "user"}  # fmt: skip


def task_row(client: Any, task_id: str) -> tuple[Any, ...]:
    return tuple(
        utc(v)
        for v in client.query(
            "SELECT calls, total_cost, outcome, outcome_deadline, bitShiftRight(version, 20) "
            "FROM tasks FINAL WHERE task_id = %(t)s",
            parameters={"t": task_id},
        ).result_rows[0]
    )


def test_a_task_that_left_stage_1_and_came_back_is_merged_exactly(chdb_client: Any) -> None:
    """The case docs/design.md used to list as not done: silent for longer than its
    window plus retention, then an event stamped with a recent time."""
    migrate(chdb_client)
    sink = ClickHouseSink(chdb_client, TOPICS)
    ctx = context({})
    ctx.store.window = OutcomeWindow(default_ms=HOUR)
    ctx.store.retention = RetentionIndex(HOUR)
    first = [call("a1", "a", "2026-11-02T10:00:00Z"), outcome("a2", "a", "2026-11-02T10:30:00Z")]
    sink.write(batch_of(stage1(ctx, first)))
    # Other traffic moves the watermark far past a's expiry (deadline 12:00, expiry 13:00).
    sink.write(batch_of(stage1(ctx, [call("b1", "b", "2026-11-05T00:00:00Z")])))
    assert ctx.counters.evicted == 1
    # a gets a recent event: stage 1 starts it again from nothing.
    late = [call("a3", "a", "2026-11-05T00:10:00Z", tokens=5000),
            outcome("a4", "a", "2026-11-05T00:20:00Z", "rejected")]  # fmt: skip
    sink.write(batch_of(stage1(ctx, late)))
    events = first + late + [call("b1", "b", "2026-11-05T00:00:00Z")]
    expected = expected_tasks(events, {"s": timedelta(hours=1)})["a"]
    assert task_row(chdb_client, "a") == (
        expected.calls, expected.total_cost, expected.outcome, expected.outcome_deadline, 4
    )  # fmt: skip
    assert expected.calls == 2 and expected.outcome == "rejected"
    # The aggregate moved the whole task, unmerged: one rejected task at its full cost.
    assert aggregate(chdb_client) == {
        "rejected": (1, expected.total_cost),
        "": (1, expected_tasks(events)["b"].total_cost),  # b: no outcome yet
    }
    assert health(chdb_client)["restarted_tasks"] == 1
    assert sink.skipped().get("task_records_diverged", 0) == 0


def test_a_snapshot_built_on_a_stale_state_is_kept_pending_and_reported(
    chdb_client: Any,
) -> None:
    migrate(chdb_client)
    sink = ClickHouseSink(chdb_client, TOPICS)
    ctx = context({})
    sink.write(batch_of(stage1(ctx, [call("c1", "t", "2026-11-02T10:00:00Z"),
                                     call("c2", "t", "2026-11-02T10:01:00Z")])))  # fmt: skip
    stored = task_row(chdb_client, "t")
    # Stage 1 lost its state (a changelog that came back short) and applies c3 to nothing.
    lost = context({})
    sink.write(batch_of(stage1(lost, [call("c3", "t", "2026-11-02T10:02:00Z")])))
    assert task_row(chdb_client, "t") == stored  # not applied: it would lose c1 and c2
    assert sink.skipped()["task_records_diverged"] == 1
    report = health(chdb_client)
    assert (report["diverged_tasks"], report["pending_events"]) == (1, 1)
    # A snapshot that covers everything (stage 1 restored, c3 re-submitted) clears it.
    restored = ctx
    sink.write(batch_of(stage1(restored, [call("c3", "t", "2026-11-02T10:02:00Z")])))
    assert task_row(chdb_client, "t")[0] == 3
    assert health(chdb_client)["diverged_tasks"] == 0


def test_older_and_reemitted_snapshots_carry_nothing_the_row_lacks(chdb_client: Any) -> None:
    migrate(chdb_client)
    sink = ClickHouseSink(chdb_client, TOPICS)
    ctx = context({})
    records = stage1(ctx, [call("c1", "t", "2026-11-02T10:00:00Z"),
                           call("c2", "t", "2026-11-02T10:01:00Z")])  # fmt: skip
    older = next(r for r in records if r[0] == TOPICS.task_snapshots)
    sink.write(batch_of(records))
    assert sink.write(batch_of([older])) == {}
    assert sink.skipped()["task_records_already_stored"] == 1
    assert task_row(chdb_client, "t")[0] == 2


def _part(events: list[dict[str, Any]], born_ms: int = 0) -> Part:
    ctx = context({})
    ctx.store.retention.watermark[0] = born_ms
    snapshots = [r for r in stage1(ctx, events) if r[0] == TOPICS.task_snapshots]
    return Part.from_record(json.loads(snapshots[-1][2])["state"])


def test_lineage_rules_by_hand() -> None:
    c1, c2, c3 = (call(f"c{i}", "t", f"2026-11-02T10:0{i}:00Z") for i in (1, 2, 3))
    one, two, three_alone = _part([c1]), _part([c1, c2]), _part([c3])
    lineage, applied = Lineage().apply_snapshot(one)
    assert applied is Applied.applied and lineage.events() == {"c1"}
    lineage, applied = lineage.apply_snapshot(two)
    assert applied is Applied.applied and lineage.events() == {"c1", "c2"}
    assert lineage.apply_snapshot(one)[1] is Applied.already_stored
    diverged, applied = lineage.apply_snapshot(three_alone)
    assert applied is Applied.diverged and diverged.pending == {"c3"}
    assert diverged.events() == {"c1", "c2"}  # the row is unchanged
    # The start left stage 1; a new start with c3 merges with it.
    evicted, applied = lineage.apply_eviction(two)
    assert applied is Applied.applied and evicted.current is None and evicted.evictions == 1
    assert evicted.apply_eviction(two)[1] is Applied.already_stored  # delivered again
    merged, applied = evicted.apply_snapshot(three_alone)
    whole = merged.whole()
    assert applied is Applied.applied and whole is not None
    assert whole.state.seen == {"c1", "c2", "c3"} and whole.state.calls == 3
    assert whole.state.total_cost == Decimal(sum(
        (p.state.total_cost for p in (two, three_alone)), Decimal(0)
    ))  # fmt: skip


def test_upgrade_from_the_previous_release_keeps_every_number(
    chdb_client: Any, tmp_path: Any
) -> None:
    """Migrations 0001-0007 and a worker that sent no state (the previous release),
    then migration 0008 and today's worker: the rows equal the reference."""
    import random
    import shutil

    from pipeline.demo.workload import generate
    from pipeline.resources import sql_dir

    previous = tmp_path / "sql-0.1"
    previous.mkdir()
    for path in sorted(sql_dir().glob("*.sql"))[:7]:
        shutil.copy(path, previous)
    migrate(chdb_client, previous)
    events = generate(120, seed=31, days=2)
    delivered = list(events)
    random.Random(3).shuffle(delivered)
    cut = len(delivered) // 2
    ctx = context({})
    # What the previous release stored for these events: its sink wrote each priced
    # call, and per task the +1 row of the newest snapshot (rows only, no state).
    calls, newest = [], {}
    for topic, _partition, value, _headers in stage1(ctx, delivered[:cut]):
        record = json.loads(value)
        if topic == TOPICS.priced_calls:
            calls.append(call_row(record))
        elif record["version"] > newest.get(record["task_id"], {"version": 0})["version"]:
            record.pop("state")
            newest[record["task_id"]] = record
    unique_calls = list({row[0]: row for row in calls}.values())
    # The previous release's calls table has no audio or image columns (migration 0010)
    # and nothing of partial prices (0011).
    later = ("cost_known", "cost_known_parts", "unpriced_dimensions")
    kept = [
        i
        for i, c in enumerate(CALL_COLUMNS)
        if "audio" not in c and "image" not in c and c not in later
    ]
    chdb_client.insert(
        "calls",
        [tuple(row[i] for i in kept) for row in unique_calls],
        column_names=[CALL_COLUMNS[i] for i in kept],
    )
    changes = [
        (*row[:2], 1, *row[2:])
        for row in (change_row({**r, "version": r["version"] << 20}) for r in newest.values())
    ]
    chdb_client.insert("task_changes", changes, column_names=list(CHANGE_COLUMNS))

    migrate(chdb_client)  # the upgrade: 0008 and on
    upgraded = ClickHouseSink(chdb_client, TOPICS)  # today's sink, cache empty
    upgraded.write(batch_of(stage1(ctx, delivered[cut:])))
    stored = {
        row[0]: (row[1], row[2], row[3])
        for row in chdb_client.query(
            "SELECT task_id, calls, total_cost, outcome FROM tasks FINAL"
        ).result_rows
    }
    assert stored == {
        t.task_id: (t.calls, t.total_cost, t.outcome) for t in expected_tasks(events).values()
    }
    assert health(chdb_client)["diverged_tasks"] == 0
