"""What the analytics views must say, computed in plain Python from the events.

Like :mod:`tests.reference` it imports nothing from ``pipeline``. The rules are
restated from docs/analytics.md:
- task views group tasks by the UTC hour (or day) of their first event and the
  task's resolved labels; waste is the cost of rejected, failed and unresolved tasks;
- call views group distinct calls by the UTC hour (or day) of the call and the
  labels the call itself reported;
- a histogram bin of x > 0 is floor(ln(x) / ln(1.01)); a quantile is the mean of the
  bin that holds the task of nearest rank ceil(pct% of n); the cost of the costliest
  pct% is whole bins from the top plus the needed share of the next, at its mean.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.reference import (
    EXACT,
    RATES,
    CallCost,
    Rates,
    call_cost,
    call_rates,
    div18,
    expected_tasks,
    parse_ts,
)

_PARTS = ("input", "cache_read", "cache_write", "output", "reasoning")
ZERO_BIN = -32768


def cost_bin(value: Decimal | int) -> int:
    return ZERO_BIN if value <= 0 else math.floor(math.log(float(value)) / math.log(1.01))


def hour_of(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def call_parts(call: dict[str, Any], rates: Rates = RATES) -> dict[str, Decimal] | None:
    """Cost per dimension, and cache tokens at the input rate; None when unpriced."""
    chosen = call_rates(call, rates)
    if chosen is None:
        return None
    usage = call.get("usage", {})
    mtok = Decimal(1_000_000)

    def at(tokens: int, rate: str) -> Decimal:
        return EXACT.divide(EXACT.multiply(Decimal(tokens), Decimal(rate)), mtok)

    table = dict(zip(_PARTS, chosen, strict=True))
    parts = {p: at(usage.get(f"{p}_tokens", 0), table[p]) for p in _PARTS}
    parts["total"] = sum(parts.values(), Decimal(0))
    parts["cache_read_uncached"] = at(usage.get("cache_read_tokens", 0), table["input"])
    parts["cache_write_uncached"] = at(usage.get("cache_write_tokens", 0), table["input"])
    return parts


def distinct_calls(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["type"] == "call":
            seen.setdefault(event["event_id"], event)
    return list(seen.values())


# --- task views -----------------------------------------------------------

OUTCOME_SUMS = ("tasks", "accepted", "rejected", "failed", "unresolved", "pending", "calls",
                "unpriced_calls")  # fmt: skip
OUTCOME_COSTS = ("total_cost", "accepted_cost", "rejected_cost", "failed_cost",
                 "unresolved_cost", "pending_cost")  # fmt: skip


def expected_outcomes(
    events: list[dict[str, Any]],
    as_of: datetime,
    daily: bool,
    windows: dict[str, timedelta] | None = None,
    cost: CallCost = call_cost,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    first_ts = first_event_ts(events)
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for task in expected_tasks(events, windows, cost).values():
        first = first_ts[task.task_id]
        period: date | datetime = first.date() if daily else hour_of(first)
        row = rows.setdefault(
            (period, task.scenario_id, task.environment, task.owner),
            {**dict.fromkeys(OUTCOME_SUMS, 0), **dict.fromkeys(OUTCOME_COSTS, Decimal(0))},
        )
        status = task.status(as_of)
        row["tasks"] += 1
        row[status] += 1
        row["calls"] += task.calls
        row["unpriced_calls"] += task.unpriced_calls
        row["total_cost"] += task.total_cost
        row[f"{status}_cost"] += task.total_cost
    for row in rows.values():
        row["waste_cost"] = row["rejected_cost"] + row["failed_cost"] + row["unresolved_cost"]
        row["cost_per_task"] = div18(row["total_cost"], row["tasks"])
        row["cost_per_accepted_outcome"] = (
            div18(row["total_cost"], row["accepted"]) if row["accepted"] else None
        )
        row["acceptance_rate"] = row["accepted"] / row["tasks"]
        row["final"] = row["pending"] == 0
    return rows


def first_event_ts(events: list[dict[str, Any]]) -> dict[str, datetime]:
    first: dict[str, datetime] = {}
    for event in events:
        ts = parse_ts(event["ts"])
        if event["task_id"] not in first or ts < first[event["task_id"]]:
            first[event["task_id"]] = ts
    return first


def expected_histogram(
    events: list[dict[str, Any]], cost: CallCost = call_cost
) -> dict[tuple[Any, ...], tuple[int, Decimal]]:
    """(day, scenario, environment, owner, bin) -> (tasks, cost)."""
    first_ts = first_event_ts(events)
    bins: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for task in expected_tasks(events, None, cost).values():
        key = (first_ts[task.task_id].date(), task.scenario_id, task.environment, task.owner,
               cost_bin(task.total_cost))  # fmt: skip
        bins[key][0] += 1
        bins[key][1] += task.total_cost
    return {k: (v[0], v[1]) for k, v in bins.items()}


def bin_quantile(bins: list[tuple[int, int, Decimal]], pct: int) -> Decimal:
    """Mean of the bin holding the nearest-rank task; ``bins`` sorted by bin."""
    n = sum(b[1] for b in bins)
    rank = -(-n * pct // 100)
    seen = 0
    for _, count, total in bins:
        seen += count
        if seen >= rank:
            return div18(total, count)
    raise AssertionError("rank beyond the histogram")


def bin_top_cost(bins: list[tuple[int, int, Decimal]], pct: int) -> Decimal:
    n = sum(b[1] for b in bins)
    wanted = -(-n * pct // 100)
    out, before = Decimal(0), 0
    for _, count, total in reversed(bins):
        if before >= wanted:
            break
        if before + count <= wanted:
            out += total
        else:
            out += div18(EXACT.multiply(total, Decimal(wanted - before)), count)
        before += count
    return out


def expected_tails_daily(
    events: list[dict[str, Any]], cost: CallCost = call_cost
) -> dict[tuple[Any, ...], dict[str, Any]]:
    per_day: dict[tuple[Any, ...], dict[int, list[Any]]] = defaultdict(
        lambda: defaultdict(lambda: [0, Decimal(0)])
    )
    for (day, scenario, environment, owner, b), (n, c) in expected_histogram(events, cost).items():
        cell = per_day[(day, scenario, environment, owner)][b]
        cell[0] += n
        cell[1] += c
    rows = {}
    for key, cells in per_day.items():
        bins = sorted((b, n, c) for b, (n, c) in cells.items())
        total = sum((c for _, _, c in bins), Decimal(0))
        rows[key] = {
            "tasks": sum(n for _, n, _ in bins),
            "total_cost": total,
            **{f"p{p}": bin_quantile(bins, p) for p in (50, 90, 95, 99)},
            "max_bin_mean": div18(bins[-1][2], bins[-1][1]),
            "top5pct_cost": bin_top_cost(bins, 5),
            "top1pct_cost": bin_top_cost(bins, 1),
        }
    return rows


def exact_tails(costs: list[Decimal]) -> dict[str, Decimal]:
    """The exact values the binned ones approximate: nearest-rank quantiles, top shares."""
    ordered = sorted(costs)
    n = len(ordered)
    out = {f"p{p}": ordered[-(-n * p // 100) - 1] for p in (50, 90, 95, 99)}
    for p in (5, 1):
        out[f"top{p}pct_cost"] = sum(ordered[n - (-(-n * p // 100)) :], Decimal(0))
    out["max"] = ordered[-1]
    return out


# --- call views -------------------------------------------------------------

CALL_SUMS = ("calls", "unpriced_calls", "input_tokens", "cache_read_tokens", "cache_write_tokens",
             "output_tokens", "reasoning_tokens", "calls_with_cap", "capped_calls")  # fmt: skip
CALL_COSTS = ("cost_input", "cost_cache_read", "cost_cache_write", "cost_output",
              "cost_reasoning", "cost_total", "cost_cache_read_uncached",
              "cost_cache_write_uncached")  # fmt: skip


def call_facts(
    events: list[dict[str, Any]], rates: Rates = RATES
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Per distinct call: its labels and its measures."""
    out = []
    for call in distinct_calls(events):
        usage = call.get("usage", {})
        ts = parse_ts(call["ts"])
        labels = {
            "hour": hour_of(ts),
            "day": ts.date(),
            "scenario_id": call.get("scenario_id") or "",
            "environment": call.get("environment") or "",
            "owner": call.get("owner") or "",
            "provider": call["provider"],
            "model": call["model"],
            "role": call.get("role") or "",
            "status": call.get("status", "ok"),
            "is_retry": int(call.get("attempt", 1) > 1 or bool(call.get("retry_of"))),
            "is_fallback": int(bool(call.get("fallback_from"))),
        }
        parts = call_parts(call, rates)
        cap = call.get("max_output_tokens")
        completion = usage.get("output_tokens", 0) + usage.get("reasoning_tokens", 0)
        measures: dict[str, Any] = {
            "calls": 1,
            "unpriced_calls": int(parts is None),
            **{f"{c}_tokens": usage.get(f"{c}_tokens", 0) for c in _PARTS},
            "calls_with_cap": int(cap is not None),
            "capped_calls": int(cap is not None and completion >= cap),
            "cap_tokens": cap or 0,
            "capped_output_tokens": completion if cap is not None else 0,
            "latency_ms": call.get("latency_ms"),
        }
        for name in CALL_COSTS:
            measures[name] = parts[name.removeprefix("cost_")] if parts else Decimal(0)
        out.append((labels, measures))
    return out


def group_calls(
    facts: list[tuple[dict[str, Any], dict[str, Any]]], keys: tuple[str, ...]
) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    grouped: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for labels, measures in facts:
        grouped[tuple(labels[k] for k in keys)].append({**labels, **measures})
    return grouped


def total(rows: list[dict[str, Any]], name: str, where: Any = None) -> Any:
    picked = [r[name] for r in rows if where is None or where(r)]
    return sum(picked, Decimal(0) if name.startswith("cost_") else 0)


def latency_quantile(latencies: list[int], pct: int) -> float | None:
    """Mean latency of the 1% bin that holds the nearest-rank call."""
    if not latencies:
        return None
    cells: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for ms in latencies:
        cell = cells[cost_bin(ms)]
        cell[0] += 1
        cell[1] += ms
    rank = -(-len(latencies) * pct // 100)
    seen = 0
    for b in sorted(cells):
        seen += cells[b][0]
        if seen >= rank:
            return cells[b][1] / cells[b][0]
    raise AssertionError("rank beyond the histogram")
