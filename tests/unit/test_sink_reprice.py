"""Reprice records applied by the sink against real chDB: calls, history and task rows."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pipeline.clickhouse.migrate import migrate
from pipeline.sink.clickhouse import ClickHouseSink
from tests.unit.test_clickhouse_sink import TOPICS, aggregate, batch_of, snapshot


def priced_call(event_id: str, task_id: str, cost: str | None) -> dict[str, Any]:
    zero = None if cost is None else "0"
    return {
        "event_id": event_id, "task_id": task_id, "ts_ms": 1_793_577_600_000,
        "provider": "openai", "model": "gpt-4.1", "scenario_id": "s", "environment": "prod",
        "owner": "o", "role": "", "status": "ok", "service_tier": "standard", "attempt": 1,
        "retry_of": "", "fallback_from": "", "latency_ms": None, "input_tokens": 1000,
        "cache_read_tokens": 0, "cache_write_tokens": 0, "cache_write_1h_tokens": 0,
        "output_tokens": 0, "reasoning_tokens": 0, "units": {},
        "cost_input": cost, "cost_cache_read": zero, "cost_cache_write": zero,
        "cost_output": zero, "cost_reasoning": zero, "cost_request": zero, "cost_units": zero,
        "cost_total": cost,
        "currency": "" if cost is None else "USD", "list_currency": "", "fx_rate": None,
        "price_book_version": "b@1", "price_overlay": "",
        "pricing_error": "" if cost else "price_not_found: ...", "attributes": {},
    }  # fmt: skip


def reprice(task_id: str, reprice_id: str, **costs: str) -> dict[str, Any]:
    return {
        "kind": "reprice",
        "reprice_id": reprice_id,
        "task_id": task_id,
        "price_book_version": "b@2",
        "calls": [
            {
                "event_id": event_id,
                **{
                    f"cost_{p}": "0"
                    for p in (
                        "cache_read",
                        "cache_write",
                        "output",
                        "reasoning",
                        "request",
                        "units",
                    )
                },
                "cost_input": cost,
                "cost_total": cost,
                "currency": "USD",
                "list_currency": "USD",
                "fx_rate": None,
                "price_overlay": "",
            }
            for event_id, cost in costs.items()
        ],
    }


def records(*items: tuple[str, dict[str, Any]]) -> Any:
    return batch_of([(topic, 0, json.dumps(value).encode(), ()) for topic, value in items])


def seed(client: Any) -> ClickHouseSink:
    """Task a: two calls (0.002 + 0.003); task b: one priced (0.5), one unpriced call."""
    migrate(client)
    sink = ClickHouseSink(client, TOPICS)
    snap_b = {**snapshot("b", 2, "0.5", "accepted"), "calls": 2, "unpriced_calls": 1}
    sink.write(
        records(
            (TOPICS.priced_calls, priced_call("a1", "a", "0.002")),
            (TOPICS.priced_calls, priced_call("a2", "a", "0.003")),
            (TOPICS.priced_calls, priced_call("b1", "b", "0.5")),
            (TOPICS.priced_calls, priced_call("b2", "b", None)),
            (TOPICS.task_snapshots, snapshot("a", 2, "0.005", "accepted")),
            (TOPICS.task_snapshots, snap_b),
        )
    )
    return sink


def tasks(client: Any) -> dict[str, tuple[Any, ...]]:
    rows = client.query(
        "SELECT task_id, total_cost, unpriced_calls, reprice_cost_delta, reprice_priced_calls, "
        "bitShiftRight(version, 20), bitAnd(version, 1048575) FROM tasks FINAL"
    ).result_rows
    return {r[0]: tuple(r[1:]) for r in rows}


def test_a_reprice_rewrites_the_calls_and_moves_the_task_totals_exactly(
    chdb_client: Any,
) -> None:
    sink = seed(chdb_client)
    assert aggregate(chdb_client) == {"accepted": (2, Decimal("0.505"))}
    # a1 0.002 -> 0.001, a2 unchanged; b2 unpriced -> 0.25
    written = sink.write(
        records(
            (TOPICS.task_snapshots, reprice("a", "r1", a1="0.001", a2="0.003")),
            (TOPICS.task_snapshots, reprice("b", "r1", b2="0.25")),
        )
    )
    assert written == {
        "calls": 2, "call_repricings": 2, "task_changes": 4, "call_cancellations": 2
    }  # fmt: skip
    assert tasks(chdb_client) == {
        "a": (Decimal("0.004"), 0, Decimal("-0.001"), 0, 2, 1),
        "b": (Decimal("0.75"), 0, Decimal("0.25"), 1, 2, 1),
    }
    # 0.505 - 0.001 + 0.25, read unmerged.
    assert aggregate(chdb_client) == {"accepted": (2, Decimal("0.754"))}
    calls = chdb_client.query(
        "SELECT event_id, cost_total, price_book_version, reprice_id, pricing_error "
        "FROM calls FINAL ORDER BY event_id"
    ).result_rows
    assert calls == [
        ("a1", Decimal("0.001"), "b@2", "r1", ""),
        ("a2", Decimal("0.003"), "b@1", "", ""),  # same price: keeps the version that priced it
        ("b1", Decimal("0.5"), "b@1", "", ""),
        ("b2", Decimal("0.25"), "b@2", "r1", ""),
    ]
    side_by_side = chdb_client.query(
        "SELECT calls, previously_unpriced_calls, old_cost, new_cost, difference "
        "FROM v_reprice_comparison"
    ).result_rows
    assert side_by_side == [(2, 1, Decimal("0.002"), Decimal("0.251"), Decimal("0.249"))]
    # The call aggregates, unmerged: the replaced rows left them, the new ones came in.
    assert call_aggregate(chdb_client) == (4, 0, Decimal("0.754"))


def call_aggregate(client: Any) -> tuple[int, int, Decimal]:
    """Calls, unpriced calls and cost in the call aggregates, read without FINAL."""
    row = client.query(
        "SELECT sum(calls), sum(unpriced_calls), sum(cost_total) FROM call_costs_hourly"
    ).result_rows[0]
    return (row[0], row[1], row[2])


def test_a_replayed_reprice_changes_nothing_and_a_later_snapshot_keeps_the_correction(
    chdb_client: Any,
) -> None:
    sink = seed(chdb_client)
    batch = records((TOPICS.task_snapshots, reprice("a", "r1", a1="0.001")))
    sink.write(batch)
    # The same records consumed again (a crash before the offset commit), by a new process.
    assert ClickHouseSink(chdb_client, TOPICS).write(batch) == {}
    assert tasks(chdb_client)["a"] == (Decimal("0.004"), 0, Decimal("-0.001"), 0, 2, 1)
    # 0.002 -> 0.001 once in the call aggregates too; b2 is still unpriced.
    assert call_aggregate(chdb_client) == (4, 1, Decimal("0.504"))
    # Stage 1 knows nothing of the reprice: a late call makes its snapshot 0.005 + 0.010.
    late = records(
        (TOPICS.priced_calls, priced_call("a3", "a", "0.010")),
        (TOPICS.task_snapshots, snapshot("a", 3, "0.015", "accepted")),
    )
    assert ClickHouseSink(chdb_client, TOPICS).write(late) == {"calls": 1, "task_changes": 2}
    # 0.001 + 0.003 + 0.010: the carried delta corrects stage 1's total.
    assert tasks(chdb_client)["a"] == (Decimal("0.014"), 0, Decimal("-0.001"), 0, 3, 1)
    assert aggregate(chdb_client) == {"accepted": (2, Decimal("0.514"))}
    # A stale re-emission of the old snapshot is still superseded.
    assert sink.write(records((TOPICS.task_snapshots, snapshot("a", 2, "0.005")))) == {}
    total = chdb_client.query("SELECT sum(cost_total) FROM calls FINAL WHERE task_id = 'a'")
    assert total.result_rows == [(Decimal("0.014"),)]


def test_two_reprices_of_one_call_in_a_batch_apply_in_order(chdb_client: Any) -> None:
    sink = seed(chdb_client)
    sink.write(
        records(
            (TOPICS.task_snapshots, reprice("a", "r1", a1="0.001")),
            (TOPICS.task_snapshots, reprice("a", "r2", a1="0.007")),
        )
    )
    # Each difference is taken against the call as it stands: 0.002 -> 0.001 -> 0.007.
    assert tasks(chdb_client)["a"] == (Decimal("0.010"), 0, Decimal("0.005"), 0, 2, 1)
    history = chdb_client.query(
        "SELECT reprice_id, old_cost_total, new_cost_total FROM call_repricings ORDER BY reprice_id"
    ).result_rows
    assert history == [
        ("r1", Decimal("0.002"), Decimal("0.001")),
        ("r2", Decimal("0.001"), Decimal("0.007")),
    ]


def test_a_reprice_for_a_call_or_task_not_stored_is_counted_not_applied(
    chdb_client: Any,
) -> None:
    sink = seed(chdb_client)
    assert sink.write(records((TOPICS.task_snapshots, reprice("zz", "r1", z1="1")))) == {}
    assert sink.write(records((TOPICS.task_snapshots, reprice("a", "r1", nope="1")))) == {}
    assert sink.repricer.counts == {"task_not_stored": 1, "call_not_stored": 1}
    assert sink.skipped() == {"reprice_task_not_stored": 1, "reprice_call_not_stored": 1}
    assert aggregate(chdb_client) == {"accepted": (2, Decimal("0.505"))}


def test_a_call_with_units_fx_and_an_overlay_lands_with_every_dimension(
    chdb_client: Any,
) -> None:
    """Engine -> stage-1 record -> sink row -> chDB, for the dimensions added in 0005."""
    from pipeline.events.models import CallEvent
    from pipeline.pricing import CompiledBook, PriceBook, price_call
    from pipeline.records import priced_call

    book = CompiledBook(
        PriceBook.model_validate(
            {
                "name": "eu",
                "version": "3",
                "entries": [
                    {
                        "provider": "mistral",
                        "model": "large",
                        "effective_from": "2026-01-01",
                        "currency": "EUR",
                        "input_per_mtok": "2",
                        "output_per_mtok": "6",
                        "per_unit": {"tool_call": "0.01"},
                    }
                ],
                "overlays": [
                    {
                        "name": "search-deal",
                        "match": {"owner": "search"},
                        "effective_from": "2026-01-01",
                        "multiplier": "0.9",
                    }
                ],
                "fx_rates": [
                    {
                        "currency": "EUR",
                        "effective_from": "2026-01-01",
                        "rate_to_book_currency": "1.1",
                    }
                ],
            }
        )
    )
    call = CallEvent.model_validate(
        {
            "event_id": "u1", "task_id": "t", "ts": "2026-11-01T00:00:00Z",
            "provider": "mistral", "model": "large", "owner": "search",
            "usage": {"input_tokens": 1_000_000, "output_tokens": 500_000},
            "units": {"tool_call": 4},
        }
    )  # fmt: skip
    cost = price_call(call, book)
    migrate(chdb_client)
    record = json.loads(priced_call(call, cost, None, book.label))
    ClickHouseSink(chdb_client, TOPICS).write(records((TOPICS.priced_calls, record)))
    row = chdb_client.query(
        "SELECT owner, units, cost_input, cost_output, cost_units, cost_total, currency, "
        "list_currency, fx_rate, price_overlay, price_book_version FROM calls"
    ).result_rows[0]
    # EUR 2 x 1.1 x 0.9 = 1.98; 3 x 1.1 x 0.9 = 2.97; 4 x 0.01 x 1.1 x 0.9 = 0.0396
    assert row == (
        "search", {"tool_call": Decimal(4)}, Decimal("1.98"), Decimal("2.97"),
        Decimal("0.0396"), Decimal("4.9896"), "USD", "EUR", Decimal("1.1"), "search-deal",
        "eu@3",
    )  # fmt: skip


def test_batches_whose_ids_exceed_max_query_size_are_written_and_looked_up(
    chdb_client: Any,
) -> None:
    """6,000 calls with 60-character ids: their id lists (~400 KB) are longer than
    ClickHouse's 256 KiB max_query_size; every lookup must still fit."""
    from pipeline.clickhouse.lookups import id_chunks
    from pipeline.query.calls import calls_of_tasks

    migrate(chdb_client)
    sink = ClickHouseSink(chdb_client, TOPICS)
    pad = "x" * 50
    calls = [priced_call(f"e{n:05d}-{pad}", f"t{n:05d}-{pad}", "0.001") for n in range(6000)]
    batch = records(*((TOPICS.priced_calls, c) for c in calls))
    assert sink.write(batch)["calls"] == 6000
    # Written again (a re-delivery): the lookup of what is stored finds all 6,000.
    assert sink.write(batch).get("calls", 0) == 0
    tasks = [c["task_id"] for c in calls]
    assert sum(1 for _ in calls_of_tasks(chdb_client, tasks, ("event_id",))) == 6000
    chunks = list(id_chunks(tasks))
    assert len(chunks) > 1 and [t for c in chunks for t in c] == tasks


def test_two_tasks_reusing_an_event_id_keep_a_call_each(chdb_client: Any) -> None:
    """Stage 1 applies an event once per task; so does the sink: a call is
    (task_id, event_id), also when it is written again and when it is repriced."""
    migrate(chdb_client)
    sink = ClickHouseSink(chdb_client, TOPICS)
    batch = records(
        (TOPICS.priced_calls, priced_call("call-1", "a", "0.002")),
        (TOPICS.priced_calls, priced_call("call-1", "b", "0.003")),
    )
    assert sink.write(batch)["calls"] == 2
    assert sink.write(batch).get("calls", 0) == 0  # a re-delivery adds nothing
    sink.write(records((TOPICS.task_snapshots, snapshot("b", 1, "0.003", "accepted"))))
    sink.write(records((TOPICS.task_snapshots, reprice("b", "r1", **{"call-1": "0.004"}))))
    rows = chdb_client.query(
        "SELECT task_id, event_id, cost_total FROM calls FINAL ORDER BY task_id"
    ).result_rows
    assert rows == [("a", "call-1", Decimal("0.002")), ("b", "call-1", Decimal("0.004"))]
