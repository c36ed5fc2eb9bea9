"""Audio and image tokens from the contract to the ClickHouse rows and aggregates."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pipeline.clickhouse.migrate import migrate
from pipeline.sink.clickhouse import ClickHouseSink
from tests.unit.test_agents import TOPICS, context, stage1
from tests.unit.test_clickhouse_sink import batch_of


def test_audio_and_image_tokens_are_stored_priced_and_summed(chdb_client: Any) -> None:
    migrate(chdb_client)
    events = [
        {"type": "call", "event_id": "c1", "task_id": "t", "ts": "2026-11-02T10:00:00Z",
         "provider": "openai", "model": "gpt-audio-mini",
         "usage": {"input_tokens": 15, "output_tokens": 13, "input_audio_tokens": 100,
                   "output_audio_tokens": 34}},
        {"type": "outcome", "event_id": "o1", "task_id": "t", "ts": "2026-11-02T10:01:00Z",
         "outcome": "accepted", "source": "user"},
    ]  # fmt: skip
    ClickHouseSink(chdb_client, TOPICS).write(batch_of(stage1(context({}), events)))
    row = chdb_client.query(
        "SELECT input_audio_tokens, output_audio_tokens, cost_audio, cost_image, cost_total "
        "FROM calls FINAL"
    ).result_rows
    # audio: 100 x $10.00 (in) + 34 x $20.00 (out) per MTok = $0.00168; text 15 x $0.60
    # + 13 x $2.40 per MTok = $0.0000402; image none
    assert row == [(100, 34, Decimal("0.00168"), Decimal(0), Decimal("0.0017202"))]
    hourly = chdb_client.query(
        "SELECT sum(audio_tokens), sum(cost_audio), sum(cost_total) FROM call_costs_hourly"
    ).result_rows
    assert hourly == [(134, Decimal("0.00168"), Decimal("0.0017202"))]
    task = chdb_client.query("SELECT total_cost FROM tasks FINAL").result_rows
    assert task == [(Decimal("0.0017202"),)]
