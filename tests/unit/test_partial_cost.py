"""A call priced in part, from stage 1 to ClickHouse and back through a reprice.

Stage 1 runs the agents' path with the default book; the sink writes to real chDB;
the reprice is planned from the stored rows with a book that prices what was
missing. Every expected figure is worked by hand from gpt-4o-mini's list prices
($0.15 input, $0.075 cached input, $0.60 output per million tokens).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pipeline.clickhouse.migrate import migrate
from pipeline.pricing import CompiledBook
from pipeline.query.report import health
from pipeline.runtime.reprice import plan_reprice, scan_calls
from pipeline.sink.clickhouse import ClickHouseSink
from tests.unit.test_agents import BOOK, TOPICS, context, stage1
from tests.unit.test_clickhouse_sink import batch_of


def call(
    event_id: str, model: str, units: dict[str, int] | None = None, **usage: int
) -> dict[str, Any]:
    return {
        "type": "call", "event_id": event_id, "task_id": "t", "ts": "2026-11-20T12:00:00Z",
        "provider": "openai", "model": model, "scenario_id": "s", "usage": usage,
        "units": units or {},
    }  # fmt: skip


EVENTS = [
    # 2,000 x $0.15 + 500 x $0.60 = $0.0003 + $0.0003 = $0.0006
    call("c1", "gpt-4o-mini", input_tokens=2000, output_tokens=500),
    # Tokens 1,000 x $0.15 + 1,000 x $0.60 = $0.00015 + $0.0006 = $0.00075 known;
    # two code_interpreter sessions, which the default book does not price.
    call("c2", "gpt-4o-mini", {"code_interpreter": 2}, input_tokens=1000, output_tokens=1000),
    # No entry at all: nothing is known.
    call("c3", "no-such-model", input_tokens=10),
]


ZERO = Decimal(0)
# c2's known part per billed dimension: only input and output tokens had a price.
C2_KNOWN_PARTS = {
    "input": Decimal("0.00015"), "cache_read": ZERO, "cache_write": ZERO,
    "output": Decimal("0.0006"), "reasoning": ZERO, "audio": ZERO, "image": ZERO,
    "request": ZERO, "units": ZERO,
}  # fmt: skip


def stored_calls(client: Any) -> dict[str, tuple[Any, ...]]:
    rows = client.query(
        "SELECT event_id, cost_total, cost_known, cost_known_parts, unpriced_dimensions "
        "FROM calls FINAL"
    ).result_rows
    return {r[0]: tuple(r[1:]) for r in rows}


def hourly(client: Any) -> tuple[Any, ...]:
    """Unpriced, partly priced, billed and known cost in the call aggregates (unmerged)."""
    row = client.query(
        "SELECT sum(unpriced_calls), sum(partly_priced_calls), sum(cost_total), "
        "sum(cost_known) FROM call_costs_hourly"
    ).result_rows[0]
    return tuple(row)


def task(client: Any) -> tuple[Any, ...]:
    row = client.query("SELECT total_cost, unpriced_calls FROM tasks FINAL").result_rows[0]
    return tuple(row)


def test_a_call_priced_in_part_counts_what_is_known_and_a_reprice_completes_it(
    chdb_client: Any,
) -> None:
    stage = context({})
    records = stage1(stage, EVENTS)
    priced = {
        json.loads(value)["event_id"]: json.loads(value)
        for topic, _p, value, _h in records
        if topic == TOPICS.priced_calls
    }
    assert priced["c2"]["cost_total"] is None and priced["c2"]["cost_known"] == "0.00075"
    assert priced["c2"]["unpriced_dimensions"] == ["code_interpreter"]
    assert priced["c2"]["pricing_error"].startswith("unit_not_priced: ")
    assert priced["c3"]["cost_known"] is None and priced["c3"]["unpriced_dimensions"] == []
    assert priced["c1"]["cost_known"] == priced["c1"]["cost_total"] == "0.0006"

    migrate(chdb_client)
    sink = ClickHouseSink(chdb_client, TOPICS)
    sink.write(batch_of(records))
    assert stored_calls(chdb_client) == {
        "c1": (Decimal("0.0006"), Decimal("0.0006"), {}, []),
        "c2": (None, Decimal("0.00075"), C2_KNOWN_PARTS, ["code_interpreter"]),
        "c3": (None, None, {}, []),
    }
    # The task counts the known part: at least $0.0006 + $0.00075, two calls incomplete.
    assert task(chdb_client) == (Decimal("0.00135"), 2)
    assert hourly(chdb_client) == (2, 1, Decimal("0.0006"), Decimal("0.00135"))
    stats = health(chdb_client)
    assert (stats["unpriced_calls"], stats["partly_priced_calls"]) == (2, 1)
    assert stats["partly_priced_known"] == Decimal("0.00075")

    # The book learns the price: $0.03 per code_interpreter session (OpenAI's rule).
    openai = next(r for r in BOOK.book.provider_rules if r.provider == "openai")
    learned = openai.model_copy(
        update={"per_unit": {**openai.per_unit, "code_interpreter": Decimal("0.03")}}
    )
    rules = tuple(learned if r is openai else r for r in BOOK.book.provider_rules)
    corrected = CompiledBook(
        BOOK.book.model_copy(update={"version": "corrected", "provider_rules": rules})
    )
    sent: list[tuple[str, int, bytes, tuple[()]]] = []
    november = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))

    def emit(_task_id: str, record: dict[str, Any]) -> None:
        sent.append((TOPICS.task_snapshots, 0, json.dumps(record).encode(), ()))

    summary = plan_reprice(scan_calls(chdb_client, *november), corrected, "r1", emit)
    assert summary.changed == 1 and summary.not_priced == {"price_not_found": 1}
    sink.write(batch_of(sent))
    # c2 complete: $0.00075 + 2 x $0.03 = $0.06075; the task gains only what was missing.
    c2 = stored_calls(chdb_client)["c2"]
    assert c2 == (Decimal("0.06075"), Decimal("0.06075"), {}, [])
    assert task(chdb_client) == (Decimal("0.06135"), 1)
    assert hourly(chdb_client) == (1, 0, Decimal("0.06135"), Decimal("0.06135"))
