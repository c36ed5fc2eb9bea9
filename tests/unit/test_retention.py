"""Finished tasks leave the worker's state; events for them afterwards are set aside.

Deadlines and expiries below are worked out by hand from the rules: deadline = first
whole hour after last event + 24 h; expiry = deadline + retention; a task leaves when
the partition's watermark (latest event time seen) reaches its expiry.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.agents.base import Stage
from pipeline.agents.batch import InputRecord, apply_batch
from pipeline.agents.task_store import watermark_key
from pipeline.join.retention import RetentionIndex
from pipeline.join.state import TaskState
from tests.unit.test_agents import context

HOUR = 3_600_000


def call(event_id: str, task_id: str, ts: str, partition: int = 0) -> InputRecord:
    body = {
        "type": "call", "event_id": event_id, "task_id": task_id, "ts": ts,
        "provider": "openai", "model": "gpt-4o-mini", "usage": {"input_tokens": 1000},
    }  # fmt: skip
    return InputRecord(
        "call", "costflow.calls", partition, 0, task_id.encode(), json.dumps(body).encode()
    )


def outcome(event_id: str, task_id: str, ts: str) -> InputRecord:
    body = {
        "type": "outcome", "event_id": event_id, "task_id": task_id, "ts": ts,
        "outcome": "accepted", "source": "user",
    }  # fmt: skip
    return InputRecord(
        "outcome", "costflow.outcomes", 0, 0, task_id.encode(), json.dumps(body).encode()
    )


def run(ctx: Stage, records: list[InputRecord]) -> None:
    """Each record as a fetch of its own (the order the tests' hand-worked times assume)."""
    for one in records:
        apply_batch(ctx, [one])


def one_hour_retention() -> tuple[dict[str, Any], Stage]:
    table: dict[str, Any] = {}
    ctx = context(table)
    ctx.store.retention = RetentionIndex(HOUR)
    return table, ctx


def test_a_finished_task_leaves_exactly_at_its_expiry() -> None:
    table, ctx = one_hour_retention()
    run(ctx, [call("c1", "t1", "2026-11-02T10:00:00Z")])
    run(ctx, [outcome("o1", "t1", "2026-11-02T11:00:00Z")])
    # last event 11:00 -> deadline Nov 3 12:00 -> expiry Nov 3 13:00
    run(ctx, [call("c2", "t2", "2026-11-03T12:59:59.999Z")])
    assert "t1" in table and ctx.counters.evicted == 0
    run(ctx, [call("c3", "t2", "2026-11-03T13:00:00Z")])
    assert "t1" not in table and ctx.counters.evicted == 1
    assert set(table) == {"t2", watermark_key(0)} and len(ctx.store.retention) == 1
    # The sink is told, with the state that left (it becomes the task's base there).
    evicted = [json.loads(s["value"]) for s in ctx.outputs.task_snapshots.sent][-1]
    assert (evicted["kind"], evicted["task_id"], evicted["version"]) == ("evicted", "t1", 2)
    assert sorted(evicted["state"]["seen"]) == ["c1", "o1"]
    assert evicted["state"]["window_ms"] == 24 * HOUR
    # The watermark that evicted it is kept: Nov 3 13:00 UTC in epoch ms.
    assert int(table[watermark_key(0)]) == 1_793_710_800_000


def test_a_task_that_got_later_events_is_kept_until_its_new_expiry() -> None:
    table, ctx = one_hour_retention()
    run(ctx, [call("c1", "t1", "2026-11-02T10:00:00Z")])  # expiry Nov 3 12:00
    run(ctx, [call("c2", "t1", "2026-11-02T20:00:00Z")])  # expiry Nov 3 22:00
    run(ctx, [call("c3", "t2", "2026-11-03T21:59:59Z")])
    assert "t1" in table and ctx.counters.evicted == 0
    run(ctx, [call("c4", "t2", "2026-11-03T22:00:00Z")])
    assert "t1" not in table and ctx.counters.evicted == 1


def test_retention_is_per_partition() -> None:
    table, ctx = one_hour_retention()
    run(ctx, [call("c1", "t1", "2026-11-02T10:00:00Z", partition=0)])  # expiry Nov 3 12:00
    run(ctx, [call("c2", "t2", "2026-11-09T00:00:00Z", partition=1)])
    assert "t1" in table  # partition 1's clock does not expire partition 0's tasks
    run(ctx, [call("c3", "t3", "2026-11-03T12:00:00Z", partition=0)])
    assert "t1" not in table


def test_an_event_for_a_task_that_left_is_dead_lettered_as_too_late() -> None:
    table, ctx = one_hour_retention()
    run(ctx, [call("c1", "t1", "2026-11-02T10:00:00Z")])
    run(ctx, [call("c2", "t2", "2026-11-03T13:00:00Z")])  # t1 (expiry Nov 3 12:00) leaves
    assert "t1" not in table
    late = call("c9", "t1", "2026-11-02T10:30:00Z")  # own expiry Nov 3 12:00 <= 13:00
    run(ctx, [late])
    assert ctx.counters.dead_lettered == {"too_late": 1}
    sent = ctx.outputs.dead_letter.sent[0]
    assert sent["value"] == late.value
    assert b"COSTFLOW_WORKER_STATE_RETENTION_S" in dict(sent["headers"])["costflow.detail"]
    assert "t1" not in table  # not started again from nothing


def test_an_event_too_old_for_the_start_of_its_tasks_state_is_too_late() -> None:
    """Too late is judged against the watermark when the task's state began, so it does
    not depend on arrival order, and a state that began again after its task left never
    shares an event with the state the sink already holds."""
    table, ctx = one_hour_retention()
    run(ctx, [call("c1", "t1", "2026-11-02T10:00:00Z")])
    # t2 begins while the watermark is Nov 2 10:00 (c2 itself is applied first).
    run(ctx, [call("c2", "t2", "2026-11-03T13:00:00Z")])
    assert TaskState.from_stored(table["t2"]).born_ms == 1_793_613_600_000  # Nov 2 10:00
    # Nov 1 00:00 -> deadline Nov 2 01:00 -> expiry Nov 2 02:00 <= Nov 2 10:00: refused,
    # as it would have been had it arrived before c2.
    run(ctx, [call("c10", "t2", "2026-11-01T00:00:00Z")])
    assert ctx.counters.dead_lettered == {"too_late": 1}
    assert (
        b"started this task's state again"
        in dict(ctx.outputs.dead_letter.sent[0]["headers"])["costflow.detail"]
    )
    # Nov 2 09:30 -> deadline Nov 3 10:00 -> expiry Nov 3 11:00 > Nov 2 10:00: applied.
    run(ctx, [call("c11", "t2", "2026-11-02T09:30:00Z")])
    assert ctx.counters.dead_lettered == {"too_late": 1}
    assert TaskState.from_stored(table["t2"]).version == 2


def test_after_a_restart_the_eviction_watermark_still_refuses_old_events() -> None:
    table, ctx = one_hour_retention()
    run(ctx, [call("c1", "t1", "2026-11-02T10:00:00Z")])
    run(ctx, [call("c2", "t2", "2026-11-03T13:00:00Z")])  # t1 (expiry Nov 3 12:00) leaves
    restarted = context(table)  # the table came back from its changelog; the index did not
    restarted.store.retention = RetentionIndex(HOUR)
    restarted.store.reindex()
    assert restarted.store.retention.watermark[0] == 1_793_710_800_000  # Nov 3 13:00
    run(restarted, [call("c9", "t1", "2026-11-02T10:30:00Z")])  # a re-delivery of old input
    assert restarted.counters.dead_lettered == {"too_late": 1} and "t1" not in table


def test_after_a_restart_recovered_tasks_are_tracked_again() -> None:
    table, ctx = one_hour_retention()
    run(ctx, [call("c1", "t1", "2026-11-02T10:00:00Z", partition=3)])
    restarted = context(table)  # the table came back from its changelog; the index did not
    restarted.store.retention = RetentionIndex(HOUR)
    restarted.store.reindex()
    assert len(restarted.store.retention) == 1
    run(restarted, [call("c2", "t2", "2026-11-03T12:00:00Z", partition=3)])
    assert "t1" not in table and restarted.counters.evicted == 1


def test_an_event_stamped_in_the_future_is_refused_and_moves_no_watermark() -> None:
    """One bad clock would otherwise make every true event after it look too late."""
    from datetime import UTC, datetime, timedelta

    table, ctx = one_hour_retention()
    now = datetime.now(UTC)
    ahead = call("f1", "t1", (now + timedelta(hours=2)).isoformat())  # default limit: 1 h
    run(ctx, [ahead])
    assert ctx.counters.dead_lettered == {"future_timestamp": 1} and "t1" not in table
    assert ctx.store.retention.watermark[0] == 0
    detail = dict(ctx.outputs.dead_letter.sent[0]["headers"])["costflow.detail"]
    assert b"ahead of this clock" in detail
    run(ctx, [call("f2", "t1", (now + timedelta(minutes=30)).isoformat())])  # clock skew
    assert "t1" in table and ctx.counters.dead_lettered == {"future_timestamp": 1}
