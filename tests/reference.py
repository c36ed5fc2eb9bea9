"""A plain batch computation of what ClickHouse must hold, independent of the pipeline.

It imports nothing from ``pipeline``: rates are written out by hand from the
price book, and the rules are restated from the event contract:
- every distinct event_id counts once;
- a task's cost is the sum of all its calls (every attempt, failed ones too);
- scenario/owner/environment: the latest task event (by ts, event_id) that sets
  it, else the earliest call (by ts, event_id) that sets it;
- the outcome is the latest outcome event by (ts, event_id);
- a task's models are the distinct models of its calls; its experiment label is
  ``attributes.experiment`` (or a top-level ``experiment``, which the contract
  moves into attributes), picked like scenario/owner/environment;
- with none, the task waits until its deadline: the first whole hour after its
  last event plus its scenario's outcome window (24 h unless configured); it is
  ``pending`` before and ``unresolved`` from then on;
- a task's day is the UTC date of its first event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, Context, Decimal
from typing import Any

EXACT = Context(prec=60)
# USD per million tokens: input, cache_read, cache_write, output, reasoning.
RATES: dict[tuple[str, str], tuple[str, str, str, str, str]] = {
    ("openai", "gpt-4o-mini"): ("0.15", "0.075", "0.15", "0.60", "0.60"),
    ("openai", "gpt-4.1"): ("2.00", "0.50", "2.00", "8.00", "8.00"),
    ("openai", "gpt-4.1-mini"): ("0.40", "0.10", "0.40", "1.60", "1.60"),
    ("openai", "o4-mini"): ("1.10", "0.275", "1.10", "4.40", "4.40"),
    ("anthropic", "claude-haiku-4-5"): ("1.00", "0.10", "1.25", "5.00", "5.00"),
    ("anthropic", "claude-sonnet-4-5"): ("3.00", "0.30", "3.75", "15.00", "15.00"),
    # Gemini 2.5 Flash: cached input 90% off ($0.03), ai.google.dev/gemini-api/docs/pricing
    ("google", "gemini-2.5-flash"): ("0.30", "0.03", "0.30", "2.50", "2.50"),
}
# Above this many prompt tokens (input + cache read + cache write) the whole call is
# billed at the second set of rates (same class order). Anthropic's published price for
# Claude Sonnet 4.5 with the 1M-token context window (the default book's correction).
LONG_CONTEXT: dict[tuple[str, str], tuple[int, tuple[str, str, str, str, str]]] = {
    ("anthropic", "claude-sonnet-4-5"): (200_000, ("6.00", "0.60", "7.50", "22.50", "22.50")),
}
ALIASES = {
    ("anthropic", "claude-sonnet-4-5-20250929"): ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5-20251001"): ("anthropic", "claude-haiku-4-5"),
    ("openai", "gpt-4o-mini-2024-07-18"): ("openai", "gpt-4o-mini"),
}
_CLASSES = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
)


def parse_ts(value: Any) -> datetime:
    if isinstance(value, int):
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


Rates = dict[tuple[str, str], tuple[str, str, str, str, str]]
CallCost = Callable[[dict[str, Any]], "Decimal | None"]


def call_rates(call: dict[str, Any], rates: Rates = RATES) -> tuple[str, str, str, str, str] | None:
    """The rates (in _CLASSES order) that bill this call; None when unpriced."""
    key = (call["provider"], call["model"])
    key = ALIASES.get(key, key)
    if key not in rates:
        return None
    usage = call.get("usage", {})
    if key in LONG_CONTEXT:
        threshold, long_rates = LONG_CONTEXT[key]
        if sum(usage.get(c, 0) for c in _CLASSES[:3]) > threshold:
            return long_rates
    return rates[key]


def call_cost(call: dict[str, Any], rates: Rates = RATES) -> Decimal | None:
    chosen = call_rates(call, rates)
    if chosen is None:
        return None
    usage = call.get("usage", {})
    total = Decimal(0)
    for tokens_class, rate in zip(_CLASSES, chosen, strict=True):
        total = EXACT.add(total, EXACT.multiply(Decimal(usage.get(tokens_class, 0)), Decimal(rate)))
    return EXACT.divide(total, Decimal(1_000_000))


DAY = timedelta(days=1)


def deadline(last_event: datetime, window: timedelta) -> datetime:
    """First whole hour strictly after last_event + window."""
    end = last_event + window
    return end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


@dataclass
class ExpectedTask:
    task_id: str
    scenario_id: str
    environment: str
    owner: str
    day: date
    calls: int
    unpriced_calls: int
    total_cost: Decimal
    outcome: str
    outcome_deadline: datetime
    models: tuple[str, ...] = ()
    experiment: str = ""

    def status(self, as_of: datetime) -> str:
        if self.outcome:
            return self.outcome
        return "unresolved" if self.outcome_deadline <= as_of else "pending"


def expected_tasks(
    events: list[dict[str, Any]],
    windows: dict[str, timedelta] | None = None,
    cost: CallCost = call_cost,
) -> dict[str, ExpectedTask]:
    distinct: dict[str, dict[str, Any]] = {}
    for event in events:
        distinct.setdefault(event["event_id"], event)
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in distinct.values():
        by_task[event["task_id"]].append(event)
    out = {}
    for task_id, task_events in by_task.items():
        ordered = sorted(task_events, key=lambda e: (parse_ts(e["ts"]), e["event_id"]))
        calls = [e for e in ordered if e["type"] == "call"]
        tasks = [e for e in ordered if e["type"] == "task"]
        outcomes = [e for e in ordered if e["type"] == "outcome"]

        def field(
            name: str, calls: list[dict[str, Any]] = calls, tasks: list[dict[str, Any]] = tasks
        ) -> str:
            for task in reversed(tasks):
                if task.get(name):
                    return str(task[name])
            for call in calls:
                if call.get(name):
                    return str(call[name])
            return ""

        def experiment(event: dict[str, Any]) -> str:
            attributes = event.get("attributes") or {}
            value = (
                attributes["experiment"] if "experiment" in attributes else event.get("experiment")
            )
            return str(value) if value else ""

        labelled = [experiment(e) for e in reversed(tasks)] + [experiment(e) for e in calls]
        costs = [cost(c) for c in calls]
        scenario_id = field("scenario_id")
        last = max(parse_ts(e["ts"]) for e in ordered)
        out[task_id] = ExpectedTask(
            task_id=task_id,
            scenario_id=scenario_id,
            environment=field("environment"),
            owner=field("owner"),
            day=parse_ts(ordered[0]["ts"]).date(),
            calls=len(calls),
            unpriced_calls=sum(1 for c in costs if c is None),
            total_cost=sum((c for c in costs if c is not None), Decimal(0)),
            outcome=outcomes[-1]["outcome"] if outcomes else "",
            outcome_deadline=deadline(last, (windows or {}).get(scenario_id, DAY)),
            models=tuple(sorted({c["model"] for c in calls})),
            experiment=next((label for label in labelled if label), ""),
        )
    return out


def trunc18(value: Decimal) -> Decimal:
    """A Decimal(38, 18) result: truncated toward zero at 18 digits."""
    return value.quantize(Decimal("1e-18"), rounding=ROUND_DOWN)


def div18(numerator: Decimal, denominator: int) -> Decimal:
    """ClickHouse Decimal(38, 18) division by a count."""
    return trunc18(EXACT.divide(numerator, Decimal(denominator)))


def expected_cost_per_outcome(
    events: list[dict[str, Any]],
    as_of: datetime,
    windows: dict[str, timedelta] | None = None,
    cost: CallCost = call_cost,
) -> dict[tuple[date, str, str], dict[str, Any]]:
    rows: dict[tuple[date, str, str], dict[str, Any]] = {}
    for task in expected_tasks(events, windows, cost).values():
        key = (task.day, task.scenario_id, task.environment)
        row = rows.setdefault(
            key,
            {
                "tasks": 0,
                "accepted": 0,
                "rejected": 0,
                "failed": 0,
                "unresolved": 0,
                "pending": 0,
                "total_cost": Decimal(0),
                "accepted_cost": Decimal(0),
            },
        )
        row["tasks"] += 1
        row[task.status(as_of)] += 1
        row["total_cost"] += task.total_cost
        if task.outcome == "accepted":
            row["accepted_cost"] += task.total_cost
    for row in rows.values():
        row["cost_per_task"] = div18(row["total_cost"], row["tasks"])
        row["cost_per_accepted_outcome"] = (
            div18(row["total_cost"], row["accepted"]) if row["accepted"] else None
        )
        row["final"] = row["pending"] == 0
    return rows
