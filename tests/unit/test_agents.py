"""Agent logic without Faust's transport: what each event sends, including after a crash.

The Kafka and ClickHouse paths are covered by the integration tests; here the crash
window that those can only hit by chance is reproduced exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.agents.base import Delivery, Stage, new_stage
from pipeline.agents.calls import apply_call
from pipeline.agents.outcomes import apply_outcome
from pipeline.agents.tasks import apply_task
from pipeline.config import TopicSettings
from pipeline.errors import SchemaViolation
from pipeline.events.models import CallEvent, OutcomeEvent, TaskEvent
from pipeline.pricing import CompiledBook, load_price_book

BOOK = CompiledBook(load_price_book(Path(__file__).resolve().parents[2] / "pricing" / "default"))


@dataclass
class RecordingTopic:
    sent: list[dict[str, Any]] = field(default_factory=list)

    def send_soon(self, key: bytes | None, value: bytes, headers: Any = None) -> None:
        self.sent.append({"key": key, "value": value, "headers": headers})


def context(table: dict[str, Any]) -> Stage:
    return new_stage(
        table=table,
        priced_calls=RecordingTopic(),
        task_snapshots=RecordingTopic(),
        dead_letter=RecordingTopic(),
        book=BOOK,
    )


TOPICS = TopicSettings()
_APPLY = {"call": (CallEvent, apply_call), "task": (TaskEvent, apply_task),
          "outcome": (OutcomeEvent, apply_outcome)}  # fmt: skip


def stage1(stage: Stage, events: list[dict[str, Any]]) -> list[tuple[str, int, bytes, tuple[()]]]:
    """Events through the agents' path on partition 0 (check, apply, observe); the
    records they sent, as (topic, partition, value, headers) for the sink."""
    for event in events:
        model, apply = _APPLY[event["type"]]
        decoded = model.model_validate(event)
        delivery = Delivery(0, stage.store.check_in_time(decoded, 0))
        apply(stage, decoded, delivery)
        stage.observed(decoded, delivery)
    outputs: Any = stage.outputs
    records = [(TOPICS.priced_calls, 0, s["value"], ()) for s in outputs.priced_calls.sent]
    records += [(TOPICS.task_snapshots, 0, s["value"], ()) for s in outputs.task_snapshots.sent]
    outputs.priced_calls.sent.clear()
    outputs.task_snapshots.sent.clear()
    return records


CALL = CallEvent.model_validate(
    {
        "event_id": "c1",
        "task_id": "t1",
        "ts": "2026-11-02T10:00:00Z",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "usage": {"input_tokens": 1_000_000, "output_tokens": 1_000_000},
    }
)
OUTCOME = OutcomeEvent.model_validate(
    {
        "event_id": "o1",
        "task_id": "t1",
        "ts": "2026-11-02T11:00:00Z",
        "outcome": "accepted",
        "source": "user",
    }
)


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
    assert apply_call(ctx, CALL, Delivery(0)) is True
    priced = json.loads(ctx.outputs.priced_calls.sent[0]["value"])
    # 1M x 0.15 + 1M x 0.60 = 0.75
    assert priced["cost_total"] == "0.75" and priced["price_book_version"] == BOOK.label
    assert snapshots(ctx)[0]["total_cost"] == "0.75" and snapshots(ctx)[0]["version"] == 1
    assert ctx.outputs.priced_calls.sent[0]["key"] == b"t1"


def test_outputs_lost_after_the_state_was_persisted_are_re_emitted_on_redelivery() -> None:
    table: dict[str, Any] = {}
    first = context(table)
    apply_call(first, CALL, Delivery(0))
    apply_outcome(first, OUTCOME, Delivery(0))
    # Crash: the changelog (table) kept both events, the outputs were never produced.
    after_crash = context(table)
    assert apply_call(after_crash, CALL, Delivery(0)) is False  # a duplicate, not re-applied
    assert apply_outcome(after_crash, OUTCOME, Delivery(0)) is False
    assert [json.loads(r["value"]) for r in after_crash.outputs.priced_calls.sent] == [
        json.loads(r["value"]) for r in first.outputs.priced_calls.sent
    ]
    # The full state at the highest version reaches the sink again, identical.
    assert snapshots(after_crash)[-1] == snapshots(first)[-1]
    assert snapshots(after_crash)[-1]["version"] == 2
    assert snapshots(after_crash)[-1]["total_cost"] == "0.75"  # counted once


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
