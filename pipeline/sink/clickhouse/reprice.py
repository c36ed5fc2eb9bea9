"""Applying reprice records: new prices for stored calls, and what that changes in tasks.

``costflow reprice`` prices stored calls again with a corrected book and sends,
per task, the calls whose price changed (see :mod:`pipeline.runtime.reprice`).
The records go to the task-snapshot topic, keyed by task_id, so the sink that
owns the task applies them in order with the task's snapshots, as its only writer.

For each call the difference is taken against the call as stored *now*, not
against what the reprice command saw: applying the same reprice twice, or two
reprices racing, still leaves every call at its newest price and every task
total equal to the sum of its calls' current prices.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pipeline.clickhouse.lookups import ID_BYTES_PER_QUERY, id_chunks
from pipeline.pricing.engine import MONEY
from pipeline.sink.clickhouse.restate import Adjustment
from pipeline.sink.clickhouse.rows import CALL_COLUMNS, PRICE_COLUMNS, cancelled_call_row

_EVENT_ID = CALL_COLUMNS.index("event_id")
_TASK_ID = CALL_COLUMNS.index("task_id")
# What a reprice may change; a call already at its new price is left alone.
_COMPARED = (*(c for c in PRICE_COLUMNS if c.startswith("cost_")), "currency")
_NOT_MONEY = ("cost_known_parts",)


@dataclass
class Repriced:
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    # call_changes rows cancelling the replaced prices in the call aggregates
    cancelled: list[tuple[Any, ...]] = field(default_factory=list)
    history: list[tuple[Any, ...]] = field(default_factory=list)
    adjustments: dict[str, Adjustment] = field(default_factory=dict)


class Repricer:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.counts: Counter[str] = Counter()

    def _stored_calls(
        self, reprices: list[dict[str, Any]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        by_task: dict[str, set[str]] = {}
        for reprice in reprices:
            by_task.setdefault(reprice["task_id"], set()).update(
                c["event_id"] for c in reprice["calls"]
            )
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for tasks in id_chunks(sorted(by_task), ID_BYTES_PER_QUERY // 4):
            events = sorted(e for task in tasks for e in by_task[task])
            for event_chunk in id_chunks(events):
                # FINAL: a call repriced before has two rows; the last inserted is current.
                result = self.client.query(
                    f"SELECT {', '.join(CALL_COLUMNS)} FROM calls FINAL "
                    "WHERE task_id IN %(tasks)s AND event_id IN %(events)s",
                    parameters={"tasks": list(tasks), "events": list(event_chunk)},
                )
                for row in result.result_rows:
                    found[(row[_TASK_ID], row[_EVENT_ID])] = dict(
                        zip(CALL_COLUMNS, row, strict=True)
                    )
        return found

    def apply(self, reprices: list[dict[str, Any]], tasks: set[str]) -> Repriced:
        """Rows for a batch's reprice records, in offset order; ``tasks``: the tasks
        that have a row (stored, or written by this batch)."""
        out = Repriced()
        if not reprices:
            return out
        stored = self._stored_calls(reprices)
        for reprice in reprices:
            task_id = reprice["task_id"]
            if task_id not in tasks:
                self.counts["task_not_stored"] += len(reprice["calls"])
                continue
            adjustment = Adjustment()
            for priced in reprice["calls"]:
                current = stored.get((task_id, priced["event_id"]))
                if current is None:
                    self.counts["call_not_stored"] += 1
                    continue
                new = _repriced_row(current, priced, reprice)
                if all(new[c] == current[c] for c in _COMPARED):
                    # Already at this price (a replay), or priced the same by both
                    # versions: the row keeps the version that priced it.
                    self.counts["unchanged"] += 1
                    continue
                old_total: Decimal | None = current["cost_total"]
                # The task holds the known part of a call priced in part (a lower
                # bound); completing the call adds only what was missing.
                old_known: Decimal | None = current.get("cost_known", old_total)
                delta = MONEY.subtract(new["cost_total"], old_known or Decimal(0))
                adjustment = adjustment + Adjustment(delta, 1 if old_total is None else 0)
                out.calls.append(tuple(new[c] for c in CALL_COLUMNS))
                out.cancelled.append(cancelled_call_row(current))
                out.history.append(
                    (
                        reprice["reprice_id"],
                        current["event_id"],
                        task_id,
                        current["ts"],
                        current["provider"],
                        current["model"],
                        current["price_book_version"],
                        new["price_book_version"],
                        old_total,
                        old_known,
                        new["cost_total"],
                        new["currency"],
                    )
                )
                stored[(task_id, current["event_id"])] = new  # later records see it
                self.counts["repriced"] += 1
            if adjustment != Adjustment():
                previous = out.adjustments.get(task_id, Adjustment())
                out.adjustments[task_id] = previous + adjustment
        return out


def _repriced_row(
    current: dict[str, Any], priced: dict[str, Any], reprice: dict[str, Any]
) -> dict[str, Any]:
    new = dict(current)
    for column in PRICE_COLUMNS:
        if column.startswith("cost_") and column not in _NOT_MONEY:
            # Records from before the uncached baselines: None; from before the audio
            # and image classes (record version 3): none of those, so 0.
            value = priced.get(column, "0" if column in ("cost_audio", "cost_image") else None)
            new[column] = None if value is None else Decimal(value)
    new["currency"] = priced["currency"]
    new["list_currency"] = priced.get("list_currency", "")
    fx = priced.get("fx_rate")
    new["fx_rate"] = None if fx is None else Decimal(fx)
    new["price_book_version"] = reprice["price_book_version"]
    new["price_overlay"] = priced.get("price_overlay", "")
    # Records before version 4 carry no cost_known: a repriced call is complete.
    if priced.get("cost_known") is None:
        new["cost_known"] = new["cost_total"]
    new["cost_known_parts"] = {}
    new["unpriced_dimensions"] = []
    new["pricing_error"] = ""
    new["reprice_id"] = reprice["reprice_id"]
    return new
