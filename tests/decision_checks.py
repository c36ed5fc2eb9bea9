"""The decision-template and full-cost views read from ClickHouse against the reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.clickhouse_rows import read_rows
from tests.reference import CallCost, call_cost
from tests.reference_decisions import (
    daily_usage,
    expected_allocation,
    expected_arms,
    expected_full_cost,
)

ARM_COLUMNS = ("tasks", "accepted", "rejected", "failed", "unresolved", "pending", "calls",
               "total_cost", "accepted_cost", "waste_cost", "cost_per_task",
               "cost_per_accepted_outcome", "acceptance_rate", "final")  # fmt: skip
_ARM_KEY = ("day", "scenario_id", "environment", "owner", "dimension", "arm")


def check_arm_views(
    client: Any,
    events: list[dict[str, Any]],
    windows: dict[str, timedelta] | None = None,
    cost: CallCost = call_cost,
) -> None:
    rows = read_rows(client, "SELECT *, now64(3) AS as_of FROM v_arm_outcomes_daily")
    # The view's own clock decides pending vs unresolved; with no rows any instant will do.
    as_of = rows[0]["as_of"] if rows else datetime.now(UTC)
    got = {tuple(r[k] for k in _ARM_KEY): {c: r[c] for c in ARM_COLUMNS} for r in rows}
    want = expected_arms(events, as_of, windows, cost)
    assert set(got) == set(want)
    for key, row in want.items():
        assert got[key] == {c: row[c] for c in ARM_COLUMNS}, key

    # The decision template: v_model_calls_daily (checked against the reference by
    # check_call_views) beside the model arm of the same day and labels, or NULLs.
    calls = {
        tuple(r[k] for k in _MODEL_KEY): r
        for r in read_rows(client, "SELECT * FROM v_model_calls_daily")
    }
    decision = read_rows(client, "SELECT * FROM v_model_decision_daily")
    assert len(decision) == len(calls)
    for r in decision:
        key = tuple(r[k] for k in _MODEL_KEY)
        assert {c: r[c] for c in _CALL_SIDE} == {c: calls[key][c] for c in _CALL_SIDE}, key
        arm = want.get((*key[:4], "model", key[5]))
        assert {c: r[c] for c in _TASK_SIDE} == (
            {
                "tasks": arm["tasks"],
                "accepted": arm["accepted"],
                "acceptance_rate": arm["acceptance_rate"],
                "task_cost": arm["total_cost"],
                "cost_per_accepted_outcome": arm["cost_per_accepted_outcome"],
                "final": arm["final"],
            }
            if arm
            else dict.fromkeys(_TASK_SIDE)
        ), key


_MODEL_KEY = ("day", "scenario_id", "environment", "owner", "provider", "model")
_CALL_SIDE = ("calls", "raw_token_cost", "cache_adjusted_cost", "retry_rate",
              "quality_pass_rate", "latency_p50_ms", "latency_p95_ms")  # fmt: skip
_TASK_SIDE = ("tasks", "accepted", "acceptance_rate", "task_cost", "cost_per_accepted_outcome",
              "final")  # fmt: skip

FULL_COST_COLUMNS = ("tasks", "accepted", "variable_cost", "fixed_cost", "full_cost",
                     "cost_per_accepted_outcome", "full_cost_per_accepted_outcome",
                     "final")  # fmt: skip


def check_fixed_cost_views(
    client: Any,
    events: list[dict[str, Any]],
    items: list[dict[str, Any]],
    windows: dict[str, timedelta] | None = None,
    cost: CallCost = call_cost,
) -> None:
    """``items``: the current declaration as plain values (see expected_allocation)."""
    today = read_rows(client, "SELECT toDate(now(), 'UTC') AS today")[0]["today"]
    allocation = expected_allocation(items, daily_usage(events, cost), today)
    got_allocation = {
        (r["day"], r["scenario_id"], r["item"]): r["allocated_cost"]
        for r in read_rows(client, "SELECT * FROM v_fixed_cost_allocation_daily")
    }
    assert got_allocation == allocation

    declared = {i["item"]: i["amount"] for i in items}
    for r in read_rows(client, "SELECT * FROM v_fixed_cost_items"):
        allocated = sum(
            (v for (_, _, item), v in allocation.items() if item == r["item"]), Decimal(0)
        )
        assert (r["amount"], r["allocated_cost"], r["unallocated_cost"]) == (
            declared.pop(r["item"]),
            allocated,
            r["amount"] - allocated,
        ), r["item"]
    assert declared == {}, "declared items missing from v_fixed_cost_items"

    rows = read_rows(client, "SELECT *, now64(3) AS as_of FROM v_scenario_full_cost_daily")
    as_of = rows[0]["as_of"] if rows else datetime.now(UTC)
    got = {(r["day"], r["scenario_id"]): {c: r[c] for c in FULL_COST_COLUMNS} for r in rows}
    want = expected_full_cost(events, as_of, allocation, windows, cost)
    assert set(got) == set(want)
    for key, row in want.items():
        assert got[key] == {c: row[c] for c in FULL_COST_COLUMNS}, key
