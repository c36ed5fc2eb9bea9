"""Records stage 1 writes for stage 2: priced calls and task snapshots (JSON)."""

from __future__ import annotations

import json
from typing import Any

from pipeline.events.models import CallEvent
from pipeline.join.state import OutcomeWindow, TaskState, epoch_ms
from pipeline.pricing.engine import CallCost

_COST_PARTS = (
    "input", "cache_read", "cache_write", "output", "reasoning", "request", "units", "total",
    "cache_read_uncached", "cache_write_uncached",
)  # fmt: skip


def priced_call_record(
    call: CallEvent, cost: CallCost | None, pricing_error: str | None, price_book_version: str
) -> dict[str, Any]:
    """One row of the call fact table. ``cost`` is None when the call could not be priced."""
    usage = call.usage
    record: dict[str, Any] = {
        "event_id": call.event_id,
        "task_id": call.task_id,
        "ts_ms": epoch_ms(call),
        "provider": call.provider,
        "model": call.model,
        "scenario_id": call.scenario_id or "",
        "environment": call.environment or "",
        "owner": call.owner or "",
        "role": call.role or "",
        "status": call.status.value,
        "service_tier": call.service_tier.value,
        "attempt": call.attempt,
        "retry_of": call.retry_of or "",
        "fallback_from": call.fallback_from or "",
        "latency_ms": call.latency_ms,
        "max_output_tokens": call.max_output_tokens,
        "input_tokens": usage.input_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cache_write_1h_tokens": usage.cache_write_1h_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "units": {unit: str(quantity) for unit, quantity in call.units.items()},
        "currency": cost.currency if cost else "",
        "list_currency": cost.list_currency if cost else "",
        "fx_rate": str(cost.fx_rate) if cost and cost.fx_rate is not None else None,
        "price_book_version": price_book_version,
        "price_overlay": cost.overlay if cost else "",
        "pricing_error": pricing_error or "",
        "attributes": call.attributes,
    }
    for part in _COST_PARTS:
        record[f"cost_{part}"] = str(getattr(cost, part)) if cost else None
    return record


def dumps(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()


def snapshot_record(state: TaskState, window: OutcomeWindow) -> bytes:
    """A task snapshot: the task row, and the state it comes from (``state``: the
    event ids and every field, with ``window_ms`` of its resolved scenario), so the
    sink can tell which events a row reflects and merge states exactly."""
    window_ms = state.window_ms(window)
    record = state.row(window_ms)
    record["state"] = {**state.to_json(), "window_ms": window_ms}
    return dumps(record)


def evicted_record(state: TaskState, window: OutcomeWindow) -> bytes:
    """The last state of a task leaving stage 1 (retention): ``kind: evicted``."""
    window_ms = state.window_ms(window)
    return dumps(
        {
            "kind": "evicted",
            "task_id": state.task_id,
            "version": state.version,
            "state": {**state.to_json(), "window_ms": window_ms},
        }
    )
