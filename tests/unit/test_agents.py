"""Agent logic without Faust's transport: what each event sends, including after a crash.

The Kafka and ClickHouse paths are covered by the integration tests; here the crash
window that those can only hit by chance is reproduced exactly.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.agents.base import StageContext
from pipeline.agents.calls import apply_call
from pipeline.agents.outcomes import apply_outcome
from pipeline.errors import SchemaViolation
from pipeline.events.models import CallEvent, OutcomeEvent
from pipeline.pricing import CompiledBook, load_price_book

BOOK = CompiledBook(load_price_book(Path(__file__).resolve().parents[2] / "pricing" / "default"))


@dataclass
class RecordingTopic:
    sent: list[dict[str, Any]] = field(default_factory=list)

    def send_soon(self, key: bytes | None, value: bytes, headers: Any = None) -> None:
        self.sent.append({"key": key, "value": value, "headers": headers})


def context(table: dict[str, Any]) -> StageContext:
    return StageContext(
        task_state=table,
        priced_calls=RecordingTopic(),
        task_snapshots=RecordingTopic(),
        dead_letter=RecordingTopic(),
        book=BOOK,
    )


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


def snapshots(ctx: StageContext) -> list[dict[str, Any]]:
    """The snapshots sent, with the state's sets (event ids, models) as sets: their
    list order carries no meaning and differs between processes."""
    out = []
    for sent in ctx.task_snapshots.sent:
        record = json.loads(sent["value"])
        state = record.get("state")
        if state is not None:
            state["seen"], state["models"] = set(state["seen"]), set(state["models"])
        out.append(record)
    return out


def test_a_call_sends_its_priced_record_and_the_task_snapshot() -> None:
    table: dict[str, Any] = {}
    ctx = context(table)
    assert asyncio.run(apply_call(ctx, CALL)) is True
    priced = json.loads(ctx.priced_calls.sent[0]["value"])
    # 1M x 0.15 + 1M x 0.60 = 0.75
    assert priced["cost_total"] == "0.75" and priced["price_book_version"] == "default@2026.11.1"
    assert snapshots(ctx)[0]["total_cost"] == "0.75" and snapshots(ctx)[0]["version"] == 1
    assert ctx.priced_calls.sent[0]["key"] == b"t1"


def test_outputs_lost_after_the_state_was_persisted_are_re_emitted_on_redelivery() -> None:
    table: dict[str, Any] = {}
    first = context(table)
    asyncio.run(apply_call(first, CALL))
    asyncio.run(apply_outcome(first, OUTCOME))
    # Crash: the changelog (table) kept both events, the outputs were never produced.
    after_crash = context(table)
    assert asyncio.run(apply_call(after_crash, CALL)) is False  # a duplicate, not re-applied
    assert asyncio.run(apply_outcome(after_crash, OUTCOME)) is False
    assert [json.loads(r["value"]) for r in after_crash.priced_calls.sent] == [
        json.loads(r["value"]) for r in first.priced_calls.sent
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

    asyncio.run(ctx.send_dead_letter(Message(), SchemaViolation("usage.input_tokens: bad")))
    sent = ctx.dead_letter.sent[0]
    assert sent["value"] == b"\xffnot json" and sent["key"] == b"k"
    assert dict(sent["headers"]) == {
        "costflow.reason": b"schema_violation",
        "costflow.detail": b"usage.input_tokens: bad",
        "costflow.source_topic": b"costflow.calls",
        "costflow.source_partition": b"2",
        "costflow.source_offset": b"17",
    }
    assert ctx.dead_lettered == {"schema_violation": 1}
