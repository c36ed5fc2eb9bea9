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
    # The comparison's old cost is the part that was known, so the difference is what
    # the reprice added: 2 x $0.03.
    side_by_side = chdb_client.query(
        "SELECT calls, previously_unpriced_calls, old_cost, new_cost, difference "
        "FROM v_reprice_comparison"
    ).result_rows
    assert side_by_side == [(1, 1, Decimal("0.00075"), Decimal("0.06075"), Decimal("0.06"))]
    # A day's cost per accepted outcome says it is a lower bound (c3 has no price).
    rows = chdb_client.query("SELECT total_cost, unpriced_calls FROM v_cost_per_outcome")
    assert rows.result_rows == [(Decimal("0.06135"), 1)]


def test_whatif_counts_the_known_part_and_marks_lower_bounds(chdb_client: Any) -> None:
    from pipeline.query.analytics import Slice
    from pipeline.query.whatif import what_if
    from pipeline.render.whatif import render_what_if

    migrate(chdb_client)
    ClickHouseSink(chdb_client, TOPICS).write(batch_of(stage1(context({}), EVENTS)))
    at = datetime(2026, 11, 20, tzinfo=UTC)
    growth = what_if(chdb_client, BOOK, Slice(scenario_id="s"), None, at, growth=Decimal(10))
    # c1 $0.0006 + c2's known $0.00075; c3 has nothing known. Two calls incomplete.
    assert growth.recorded_cost == Decimal("0.00135") and growth.unpriced == 2
    text = render_what_if(growth)
    assert "2 of 3 calls" in text and "1 of them counted at the part" in text
    variable = next(line for line in text.splitlines() if line.startswith("variable cost"))
    # $0.00135 and $0.0135 at 2 places; the first, too small for them, shows 2 digits
    assert variable.split()[-2:] == [">=$0.0014", ">=$0.01"]
    # Against a target model only like for like compares: c2 and c3 are left out of
    # both sides, so both sides are lower bounds.
    target = what_if(chdb_client, BOOK, Slice(scenario_id="s"), "openai/gpt-4.1-mini", at)
    assert target.left_out == {"unpriced as recorded": 2} and target.moved_calls == 1
    # gpt-4.1-mini: 2,000 x $0.40 + 500 x $1.60 per MTok = $0.0016
    assert (target.recorded_cost, target.estimated_cost) == (Decimal("0.0006"), Decimal("0.0016"))
    lines = render_what_if(target).splitlines()
    period = next(line for line in lines if line.startswith("cost of the period"))
    assert period.split()[-3:] == [">=$0.00060", ">=$0.0016", "$0.0010"]  # 0.0016 - 0.0006
    assert any(line.startswith("LOWER BOUND (>=): left out of both sides") for line in lines)


def test_compare_marks_arms_with_calls_not_completely_priced(chdb_client: Any) -> None:
    from pipeline.query.analytics import Slice
    from pipeline.query.compare import compare
    from pipeline.render.compare import render_comparison

    migrate(chdb_client)
    ClickHouseSink(chdb_client, TOPICS).write(batch_of(stage1(context({}), EVENTS)))
    result = compare(chdb_client, "model", Slice(scenario_id="s"))
    arms = {arm.arm: arm for arm in result.arms}
    # Task t used both models and has two incomplete calls: c2 (gpt-4o-mini, in part)
    # and c3 (no-such-model, nothing known).
    assert {name: arm.unpriced_calls for name, arm in arms.items()} == {
        "gpt-4o-mini": 2, "no-such-model": 2,
    }  # fmt: skip
    assert arms["gpt-4o-mini"].unpriced_model_calls == 1
    assert arms["gpt-4o-mini"].task_cost == Decimal("0.00135")
    line = next(x for x in render_comparison("s", result).splitlines() if x.startswith("gpt"))
    assert ">=" in line
