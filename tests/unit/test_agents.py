"""Agent logic without Faust's transport: what each event sends, including after a crash.

The Kafka and ClickHouse paths are covered by the integration tests; here the crash
window that those can only hit by chance is reproduced exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.agents.base import Stage, new_stage
from pipeline.agents.batch import InputRecord, apply_batch
from pipeline.config import TopicSettings
from pipeline.errors import SchemaViolation
from pipeline.pricing import CompiledBook, load_price_book

BOOK = CompiledBook(load_price_book(Path(__file__).resolve().parents[2] / "pricing" / "default"))


@dataclass
class RecordingTopic:
    sent: list[dict[str, Any]] = field(default_factory=list)

    def send_soon(self, key: bytes | None, value: bytes, headers: Any = None) -> None:
        self.sent.append({"key": key, "value": value, "headers": headers})


def context(table: dict[str, Any], changelog: Any = None) -> Stage:
    return new_stage(
        table=table,
        priced_calls=RecordingTopic(),
        task_snapshots=RecordingTopic(),
        dead_letter=RecordingTopic(),
        book=BOOK,
        changelog=changelog,
    )


TOPICS = TopicSettings()
_TOPIC_OF = {"call": TOPICS.calls, "task": TOPICS.tasks, "outcome": TOPICS.outcomes}


def record(event: dict[str, Any], offset: int = 0, partition: int = 0) -> InputRecord:
    """An event as the input record a gateway would produce (key = task_id)."""
    kind = event["type"]
    return InputRecord(
        kind, _TOPIC_OF[kind], partition, offset, event["task_id"].encode(),
        json.dumps(event, default=str).encode(),
    )  # fmt: skip


def stage1(
    stage: Stage, events: list[dict[str, Any]], fetch: int = 100
) -> list[tuple[str, int, bytes, tuple[()]]]:
    """Events through stage 1's batch path on partition 0, ``fetch`` records per batch;
    the records it sent, as (topic, partition, value, headers) for the sink."""
    records = [record(event, offset) for offset, event in enumerate(events)]
    for start in range(0, len(records), fetch):
        apply_batch(stage, records[start : start + fetch])
    outputs: Any = stage.outputs
    sent = [(TOPICS.priced_calls, 0, s["value"], ()) for s in outputs.priced_calls.sent]
    sent += [(TOPICS.task_snapshots, 0, s["value"], ()) for s in outputs.task_snapshots.sent]
    outputs.priced_calls.sent.clear()
    outputs.task_snapshots.sent.clear()
    return sent


CALL = {
    "type": "call", "event_id": "c1", "task_id": "t1", "ts": "2026-11-02T10:00:00Z",
    "provider": "openai", "model": "gpt-4o-mini",
    "usage": {"input_tokens": 1_000_000, "output_tokens": 1_000_000},
}  # fmt: skip
OUTCOME = {
    "type": "outcome", "event_id": "o1", "task_id": "t1", "ts": "2026-11-02T11:00:00Z",
    "outcome": "accepted", "source": "user",
}  # fmt: skip


def snapshots(ctx: Stage) -> list[dict[str, Any]]:
    """The snapshots sent, with the state's sets (event ids, models) as sets: their
    list order carries no meaning and differs between processes."""
    out = []
    for sent in ctx.outputs.task_snapshots.sent:
        record = json.loads(sent["value"])
        state = record.get("state")
        if state is not None:
            state["seen"], state["models"] = set(state["seen"]), set(state["models"])
        out.append(record)
    return out


def test_a_call_sends_its_priced_record_and_the_task_snapshot() -> None:
    table: dict[str, Any] = {}
    ctx = context(table)
    apply_batch(ctx, [record(CALL)])
    priced = json.loads(ctx.outputs.priced_calls.sent[0]["value"])
    # 1M x 0.15 + 1M x 0.60 = 0.75
    assert priced["cost_total"] == "0.75" and priced["price_book_version"] == BOOK.label
    assert snapshots(ctx)[0]["total_cost"] == "0.75" and snapshots(ctx)[0]["version"] == 1
    assert ctx.outputs.priced_calls.sent[0]["key"] == b"t1"
    assert ctx.counters.processed == {"call": 1}


def test_outputs_lost_after_the_state_was_persisted_are_re_emitted_on_redelivery() -> None:
    table: dict[str, Any] = {}
    first = context(table)
    apply_batch(first, [record(CALL, 0), record(OUTCOME, 1)])
    # Crash: the changelog (table) kept both events, the outputs were never delivered.
    after_crash = context(table)
    apply_batch(after_crash, [record(CALL, 0), record(OUTCOME, 1)])
    assert after_crash.counters.duplicates == {"call": 1, "outcome": 1}
    assert not after_crash.counters.processed  # not re-applied
    assert [json.loads(r["value"]) for r in after_crash.outputs.priced_calls.sent] == [
        json.loads(r["value"]) for r in first.outputs.priced_calls.sent
    ]
    # The full state at the highest version reaches the sink again, identical.
    assert snapshots(after_crash)[-1] == snapshots(first)[-1]
    assert snapshots(after_crash)[-1]["version"] == 2
    assert snapshots(after_crash)[-1]["total_cost"] == "0.75"  # counted once


def test_a_fetch_stores_and_snapshots_each_task_once() -> None:
    writes: list[tuple[int, str, str | None]] = []
    table: dict[str, Any] = {}
    ctx = context(table, changelog=lambda p, k, v: writes.append((p, k, v)))
    second = {**CALL, "event_id": "c2", "ts": "2026-11-02T10:05:00Z"}
    other = {**CALL, "event_id": "c3", "task_id": "t2"}
    apply_batch(ctx, [record(CALL, 0), record(OUTCOME, 1), record(second, 2), record(other, 3)])
    # One priced record per call, one snapshot and one changelog write per task.
    assert len(ctx.outputs.priced_calls.sent) == 3
    assert sorted((s["task_id"], s["version"]) for s in snapshots(ctx)) == [("t1", 3), ("t2", 1)]
    assert sorted(key for _p, key, _v in writes) == ["t1", "t2"]
    assert writes[0][2] == table[writes[0][1]]  # the write carries the stored value
    # A fetch of duplicates only: nothing written, the snapshot sent again.
    writes.clear()
    apply_batch(ctx, [record(CALL, 0)])
    assert writes == [] and snapshots(ctx)[-1]["version"] == 3


def test_bad_records_are_dead_lettered_and_the_rest_of_the_fetch_applied() -> None:
    ctx = context({})
    bad = InputRecord("call", TOPICS.calls, 0, 5, b"t1", b"\xffnot json")
    wrong_key = InputRecord(
        "call", TOPICS.calls, 0, 6, b"other", json.dumps({**CALL, "event_id": "c9"}).encode()
    )
    apply_batch(ctx, [bad, record(CALL, 7), wrong_key])
    assert ctx.counters.dead_lettered == {"not_json": 1, "key_mismatch": 1}
    assert ctx.counters.processed == {"call": 1}
    assert [s["value"] for s in ctx.outputs.dead_letter.sent] == [bad.value, wrong_key.value]


def test_dead_letter_keeps_original_bytes_and_says_why() -> None:
    ctx = context({})

    @dataclass
    class Message:
        topic: str = "costflow.calls"
        partition: int = 2
        offset: int = 17
        key: bytes = b"k"
        value: bytes = b"\xffnot json"

    ctx.outputs.dead_letter_of(Message(), SchemaViolation("usage.input_tokens: bad"))
    sent = ctx.outputs.dead_letter.sent[0]
    assert sent["value"] == b"\xffnot json" and sent["key"] == b"k"
    assert dict(sent["headers"]) == {
        "costflow.reason": b"schema_violation",
        "costflow.detail": b"usage.input_tokens: bad",
        "costflow.source_topic": b"costflow.calls",
        "costflow.source_partition": b"2",
        "costflow.source_offset": b"17",
    }
