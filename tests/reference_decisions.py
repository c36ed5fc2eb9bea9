"""Decision template and full scenario cost, computed in plain Python from the events.

Imports nothing from ``pipeline``. Rules restated from docs/analytics.md:
- model arms: every task counts once under each model its calls used, with its
  whole cost; experiment arms: tasks by their experiment label (none: no arm);
- a fixed cost item accrues evenly over the days of its period, up to today (UTC);
  each day's part
  goes to scenarios by the rule: usage_share in proportion to that day's
  variable cost of each eligible scenario (tasks by the day of their first
  event; scenarios with a positive cost that day), weights in proportion to the
  weights; each allocated amount is truncated to 18 decimal places.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.reference import EXACT, CallCost, call_cost, div18, expected_tasks, trunc18
from tests.reference_analytics import first_event_ts

ARM_SUMS = ("tasks", "accepted", "rejected", "failed", "unresolved", "pending", "calls")


def expected_arms(
    events: list[dict[str, Any]],
    as_of: datetime,
    windows: dict[str, timedelta] | None = None,
    cost: CallCost = call_cost,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """(day, scenario, environment, owner, dimension, arm) -> v_arm_outcomes_daily row."""
    first_ts = first_event_ts(events)
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for task in expected_tasks(events, windows, cost).values():
        arms = [("model", m) for m in task.models]
        if task.experiment:
            arms.append(("experiment", task.experiment))
        status = task.status(as_of)
        for dimension, arm in arms:
            key = (first_ts[task.task_id].date(), task.scenario_id, task.environment, task.owner,
                   dimension, arm)  # fmt: skip
            row = rows.setdefault(
                key,
                {
                    **dict.fromkeys(ARM_SUMS, 0),
                    "total_cost": Decimal(0),
                    "accepted_cost": Decimal(0),
                    "waste_cost": Decimal(0),
                },
            )
            row["tasks"] += 1
            row[status] += 1
            row["calls"] += task.calls
            row["total_cost"] += task.total_cost
            if status == "accepted":
                row["accepted_cost"] += task.total_cost
            elif status != "pending":
                row["waste_cost"] += task.total_cost
    for row in rows.values():
        row["cost_per_task"] = div18(row["total_cost"], row["tasks"])
        row["cost_per_accepted_outcome"] = (
            div18(row["total_cost"], row["accepted"]) if row["accepted"] else None
        )
        row["acceptance_rate"] = row["accepted"] / row["tasks"]
        row["final"] = row["pending"] == 0
    return rows


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days)]


def daily_usage(
    events: list[dict[str, Any]], cost: CallCost = call_cost
) -> dict[tuple[date, str], Decimal]:
    """(day, scenario) -> variable cost of the tasks that started that day."""
    first_ts = first_event_ts(events)
    usage: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    for task in expected_tasks(events, None, cost).values():
        usage[(first_ts[task.task_id].date(), task.scenario_id)] += task.total_cost
    return dict(usage)


def expected_allocation(
    items: list[dict[str, Any]], usage: dict[tuple[date, str], Decimal], today: date
) -> dict[tuple[date, str, str], Decimal]:
    """(day, scenario, item) -> allocated cost. Items: item, start, end, amount, rule,
    scenarios, weights (plain values, as declared). Days after today accrue nothing yet."""
    out: dict[tuple[date, str, str], Decimal] = {}
    for item in items:
        days = _days(item["start"], item["end"])
        for day in (d for d in days if d <= today):
            if item["rule"] == "weights":
                shares = dict(item["weights"])
            else:
                shares = {
                    scenario: cost
                    for (d, scenario), cost in usage.items()
                    if d == day
                    and cost > 0
                    and (not item["scenarios"] or scenario in item["scenarios"])
                }
            whole = sum(shares.values(), Decimal(0))
            for scenario, share in shares.items():
                part = EXACT.divide(
                    EXACT.multiply(item["amount"], share), EXACT.multiply(whole, Decimal(len(days)))
                )
                out[(day, scenario, item["item"])] = trunc18(part)
    return out


def expected_full_cost(
    events: list[dict[str, Any]],
    as_of: datetime,
    allocation: dict[tuple[date, str, str], Decimal],
    windows: dict[str, timedelta] | None = None,
    cost: CallCost = call_cost,
) -> dict[tuple[date, str], dict[str, Any]]:
    """(day, scenario) -> v_scenario_full_cost_daily row."""
    first_ts = first_event_ts(events)
    rows: dict[tuple[date, str], dict[str, Any]] = {}

    def row(key: tuple[date, str]) -> dict[str, Any]:
        return rows.setdefault(
            key,
            {
                "tasks": 0,
                "accepted": 0,
                "pending": 0,
                "variable_cost": Decimal(0),
                "fixed_cost": Decimal(0),
            },
        )

    for task in expected_tasks(events, windows, cost).values():
        r = row((first_ts[task.task_id].date(), task.scenario_id))
        status = task.status(as_of)
        r["tasks"] += 1
        r["accepted"] += status == "accepted"
        r["pending"] += status == "pending"
        r["variable_cost"] += task.total_cost
    for (day, scenario, _item), amount in allocation.items():
        row((day, scenario))["fixed_cost"] += amount
    for r in rows.values():
        r["full_cost"] = r["variable_cost"] + r["fixed_cost"]
        accepted = r["accepted"]
        r["cost_per_accepted_outcome"] = div18(r["variable_cost"], accepted) if accepted else None
        r["full_cost_per_accepted_outcome"] = div18(r["full_cost"], accepted) if accepted else None
        r["final"] = r.pop("pending") == 0
    return rows
