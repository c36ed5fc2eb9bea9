"""Every analytics view read from ClickHouse against the plain reference, column by column.

Shared by the chDB-level property test and the real-pipeline integration test.
Views are read without FINAL or OPTIMIZE: the aggregates must be exact unmerged.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pipeline.query.focus import load_rates
from tests.clickhouse_rows import read_rows
from tests.decision_checks import check_arm_views
from tests.reference import CallCost, call_cost, expected_tasks
from tests.reference_analytics import (
    OUTCOME_COSTS,
    OUTCOME_SUMS,
    call_facts,
    exact_tails,
    expected_histogram,
    expected_outcomes,
    expected_tails_daily,
    first_event_ts,
    group_calls,
    latency_quantile,
    total,
)
from tests.unit.test_agents import BOOK as DEFAULT_BOOK


def _keyed(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[tuple[Any, ...], Any]:
    return {tuple(r[k] for k in keys): {c: v for c, v in r.items() if c not in keys} for r in rows}


OUTCOME_COLUMNS = (*OUTCOME_SUMS, *OUTCOME_COSTS, "waste_cost", "cost_per_task",
                   "cost_per_accepted_outcome", "acceptance_rate", "final")  # fmt: skip


def check_outcome_views(
    client: Any,
    events: list[dict[str, Any]],
    windows: dict[str, timedelta] | None = None,
    cost: CallCost = call_cost,
) -> None:
    for view, period, daily in (("v_outcomes_hourly", "hour", False),
                                ("v_outcomes_daily", "day", True)):  # fmt: skip
        rows = read_rows(client, f"SELECT *, now64(3) AS as_of FROM {view}")
        as_of = rows[0]["as_of"] if rows else datetime.now(UTC)
        got = _keyed(rows, (period, "scenario_id", "environment", "owner"))
        want = expected_outcomes(events, as_of, daily, windows, cost)
        assert set(got) == set(want), view
        for key, row in want.items():
            assert {c: got[key][c] for c in OUTCOME_COLUMNS} == {
                c: row[c] for c in OUTCOME_COLUMNS
            }, (view, key)


def check_tail_views(client: Any, events: list[dict[str, Any]], cost: CallCost = call_cost) -> None:
    histogram = read_rows(client, "SELECT * FROM v_task_cost_histogram")
    got_bins = {
        (r["day"], r["scenario_id"], r["environment"], r["owner"], r["cost_bin"]): (
            r["tasks"],
            r["total_cost"],
        )
        for r in histogram
    }
    assert got_bins == expected_histogram(events, cost)
    for r in histogram:  # the bounds a BI tool shows hold the bin's tasks
        if r["cost_bin"] != -32768:
            mean = r["total_cost"] / r["tasks"]
            assert r["bin_lower"] * (1 - 1e-9) <= float(mean) <= r["bin_upper"] * (1 + 1e-9)

    tails = _keyed(
        read_rows(client, "SELECT * FROM v_task_cost_tails_daily"),
        ("day", "scenario_id", "environment", "owner"),
    )
    want = expected_tails_daily(events, cost)
    assert set(tails) == set(want)
    tasks = expected_tasks(events, None, cost).values()
    first = first_days(events)
    by_group: dict[tuple[Any, ...], list[Decimal]] = defaultdict(list)
    for task in tasks:
        by_group[(first[task.task_id], task.scenario_id, task.environment, task.owner)].append(
            task.total_cost
        )
    for key, row in want.items():
        got = tails[key]
        assert {c: got[c] for c in row} == row, key
        if row["total_cost"]:
            assert got["top5pct_share"] == float(row["top5pct_cost"]) / float(row["total_cost"])
        # The binned figures are within one bin (1%) of the exact ones.
        exact = exact_tails(by_group[key])
        for name in ("p50", "p90", "p95", "p99", "top5pct_cost", "top1pct_cost"):
            assert abs(got[name] - exact[name]) <= exact[name] * Decimal("0.0101"), (key, name)
        assert abs(got["max_bin_mean"] - exact["max"]) <= exact["max"] * Decimal("0.0101")


def first_days(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {t: ts.date() for t, ts in first_event_ts(events).items()}


def check_costliest_tasks(
    client: Any, events: list[dict[str, Any]], cost: CallCost = call_cost
) -> None:
    first = first_days(events)
    per_day: dict[Any, list[tuple[Decimal, str]]] = defaultdict(list)
    for task in expected_tasks(events, None, cost).values():
        per_day[first[task.task_id]].append((task.total_cost, task.task_id))
    want = sorted(
        (day, task_id, c)
        for day, items in per_day.items()
        for c, task_id in sorted(items, key=lambda x: (-x[0], x[1]))[:100]
    )
    got = sorted(
        (r["day"], r["task_id"], r["total_cost"])
        for r in read_rows(client, "SELECT day, task_id, total_cost FROM v_costliest_tasks")
    )
    assert got == want


SUMMED = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
          "reasoning_tokens", "calls_with_cap", "capped_calls", "cap_tokens",
          "capped_output_tokens", "cost_input", "cost_cache_read", "cost_cache_write",
          "cost_total", "cost_cache_read_uncached", "cost_cache_write_uncached")  # fmt: skip
DAY_KEYS = ("day", "scenario_id", "environment", "owner")
MODEL_KEYS = (*DAY_KEYS, "provider", "model")


def _ratio(a: Any, b: Any) -> float | None:
    return None if b == 0 else a / b


def check_call_views(client: Any, events: list[dict[str, Any]]) -> None:
    facts = call_facts(events)

    overhead = group_calls(facts, DAY_KEYS)
    expected_overhead = {
        key: {
            "calls": total(rows, "calls"),
            "total_cost": total(rows, "cost_total"),
            "retry_calls": total(rows, "calls", lambda r: r["is_retry"]),
            "retry_cost": total(rows, "cost_total", lambda r: r["is_retry"]),
            "fallback_calls": total(rows, "calls", lambda r: r["is_fallback"]),
            "fallback_cost": total(rows, "cost_total", lambda r: r["is_fallback"]),
            "failed_calls": total(rows, "calls", lambda r: r["status"] != "ok"),
            "failed_call_cost": total(rows, "cost_total", lambda r: r["status"] != "ok"),
            "unpriced_calls": total(rows, "unpriced_calls"),
            "retry_rate": total(rows, "calls", lambda r: r["is_retry"]) / len(rows),
            "failed_call_rate": total(rows, "calls", lambda r: r["status"] != "ok") / len(rows),
        }
        for key, rows in overhead.items()
    }
    assert _keyed(read_rows(client, "SELECT * FROM v_call_overhead_daily"), DAY_KEYS) == (
        expected_overhead
    )

    role_keys = (*DAY_KEYS, "role", "model")
    roles = group_calls(facts, role_keys)
    assert _keyed(read_rows(client, "SELECT * FROM v_cost_by_role_daily"), role_keys) == {
        key: {
            "calls": len(rows),
            "total_cost": total(rows, "cost_total"),
            "prompt_tokens": sum(
                r["input_tokens"] + r["cache_read_tokens"] + r["cache_write_tokens"] for r in rows
            ),
            "completion_tokens": sum(r["output_tokens"] + r["reasoning_tokens"] for r in rows),
        }
        for key, rows in roles.items()
    }

    by_model = group_calls(facts, MODEL_KEYS)
    cache: dict[tuple[Any, ...], dict[str, Any]] = {}
    tokens: dict[tuple[Any, ...], dict[str, Any]] = {}
    models: dict[tuple[Any, ...], dict[str, Any]] = {}
    for key, rows in by_model.items():
        t = {c: total(rows, c) for c in SUMMED}
        prompt = t["input_tokens"] + t["cache_read_tokens"] + t["cache_write_tokens"]
        savings = t["cost_cache_read_uncached"] - t["cost_cache_read"]
        premium = t["cost_cache_write"] - t["cost_cache_write_uncached"]
        cache[key] = {
            "calls": len(rows),
            "input_tokens": t["input_tokens"],
            "cache_read_tokens": t["cache_read_tokens"],
            "cache_write_tokens": t["cache_write_tokens"],
            "cache_hit_rate": _ratio(t["cache_read_tokens"], prompt),
            "cache_read_cost": t["cost_cache_read"],
            "cache_read_savings": savings,
            "cache_write_cost": t["cost_cache_write"],
            "cache_write_premium": premium,
            "net_cache_savings": savings - premium,
            "effective_input_cost": t["cost_input"] + t["cost_cache_read"] + t["cost_cache_write"],
            "stable_prefix_cost": t["cost_cache_read"] + t["cost_cache_write"],
            "dynamic_input_cost": t["cost_input"],
        }
        completion = t["output_tokens"] + t["reasoning_tokens"]
        tokens[key] = {
            "calls": len(rows),
            **{c: t[c] for c in SUMMED[:7]},
            "prompt_tokens": prompt,
            "avg_prompt_tokens": prompt / len(rows),
            "avg_completion_tokens": completion / len(rows),
            "reasoning_share": _ratio(t["reasoning_tokens"], prompt + completion),
            "cap_hit_rate": _ratio(t["capped_calls"], t["calls_with_cap"]),
            "output_to_cap_ratio": _ratio(t["capped_output_tokens"], t["cap_tokens"]),
        }
        judged = [r for r in rows if r["status"] in ("ok", "invalid_output")]
        latencies = [r["latency_ms"] for r in rows if r["latency_ms"] is not None]
        models[key] = {
            "calls": len(rows),
            "raw_token_cost": t["cost_total"]
            - t["cost_cache_read"]
            - t["cost_cache_write"]
            + t["cost_cache_read_uncached"]
            + t["cost_cache_write_uncached"],
            "cache_adjusted_cost": t["cost_total"],
            "retry_rate": sum(r["is_retry"] for r in rows) / len(rows),
            "quality_pass_rate": _ratio(sum(r["status"] == "ok" for r in judged), len(judged)),
            "latency_p50_ms": latency_quantile(latencies, 50),
            "latency_p95_ms": latency_quantile(latencies, 95),
        }
    assert _keyed(read_rows(client, "SELECT * FROM v_cache_economics_daily"), MODEL_KEYS) == cache
    assert _keyed(read_rows(client, "SELECT * FROM v_token_economics_daily"), MODEL_KEYS) == tokens
    got_models = _keyed(read_rows(client, "SELECT * FROM v_model_calls_daily"), MODEL_KEYS)
    assert set(got_models) == set(models)
    for key, row in models.items():
        got = got_models[key]
        for name in ("latency_p50_ms", "latency_p95_ms"):  # a mean of integers: float
            if row[name] is None:
                assert got[name] is None
            else:
                assert abs(got[name] - row[name]) <= 1e-9 * row[name], (key, name)
        assert {c: got[c] for c in row if "latency" not in c} == {
            c: v for c, v in row.items() if "latency" not in c
        }, key

    # FOCUS rows price each usage class at the unit prices of the book that priced the
    # calls, which `costflow focus export` loads per month (the default book here): they
    # must add up to the stored cost of the priced calls (unpriced calls are not in it).
    priced_months = {
        date(r["day"].year, r["day"].month, 1) for r, m in facts if not m["unpriced_calls"]
    }
    for month in sorted(priced_months):
        load_rates(client, [DEFAULT_BOOK], month)
    focus = read_rows(client, "SELECT * FROM v_focus_costs")
    assert sum((r["BilledCost"] for r in focus), Decimal(0)) == total(
        [m for _, m in facts], "cost_total"
    )
    assert {r["BillingCurrency"] for r in focus} <= {"USD"}


def check_all_views(
    client: Any,
    events: list[dict[str, Any]],
    windows: dict[str, timedelta] | None = None,
    cost: CallCost = call_cost,
) -> None:
    check_outcome_views(client, events, windows, cost)
    check_tail_views(client, events, cost)
    check_costliest_tasks(client, events, cost)
    check_call_views(client, events)
    check_arm_views(client, events, windows, cost)
