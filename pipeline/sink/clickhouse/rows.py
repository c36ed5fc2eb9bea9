"""Kafka record values to ClickHouse rows, column by column.

Records carry Decimal as strings and times as epoch milliseconds; rows carry
``Decimal`` and UTC ``datetime``, which clickhouse-connect writes exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pipeline.join.state import DEFAULT_WINDOW
from pipeline.records import DeadLetterHeaders
from pipeline.sink.base import Record

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

CALL_COLUMNS = (
    "event_id", "task_id", "ts", "provider", "model", "scenario_id", "environment", "owner",
    "role", "status", "service_tier", "attempt", "retry_of", "fallback_from", "latency_ms",
    "max_output_tokens", "input_tokens", "cache_read_tokens", "cache_write_tokens",
    "cache_write_1h_tokens", "output_tokens", "reasoning_tokens", "input_audio_tokens",
    "cache_audio_read_tokens", "output_audio_tokens", "input_image_tokens",
    "output_image_tokens", "units", "cost_input", "cost_cache_read", "cost_cache_write",
    "cost_output", "cost_reasoning", "cost_audio", "cost_image", "cost_request", "cost_units",
    "cost_total", "cost_cache_read_uncached", "cost_cache_write_uncached", "cost_known",
    "cost_known_parts", "currency", "list_currency", "fx_rate", "price_book_version",
    "price_overlay", "pricing_error", "unpriced_dimensions", "attributes", "reprice_id",
)  # fmt: skip
# The columns a reprice replaces in a call row; the rest is what the gateway reported.
_PRICE_LABELS = (
    "currency", "list_currency", "fx_rate", "price_book_version", "price_overlay",
    "pricing_error", "unpriced_dimensions", "reprice_id",
)  # fmt: skip
PRICE_COLUMNS = tuple(c for c in CALL_COLUMNS if c.startswith("cost_") or c in _PRICE_LABELS)
# task_changes, in table order (changed_at is filled by ClickHouse).
CHANGE_COLUMNS = (
    "task_id", "version", "sign", "scenario_id", "environment", "owner", "first_event_at",
    "last_event_at", "started_at", "completed_at", "calls", "failed_calls", "retried_calls",
    "fallback_calls", "unpriced_calls", "total_cost", "input_tokens", "cache_read_tokens",
    "cache_write_tokens", "output_tokens", "reasoning_tokens", "outcome", "outcome_source",
    "outcome_at", "outcome_deadline", "reprice_cost_delta", "reprice_priced_calls", "models",
    "experiment",
)  # fmt: skip
# task_states: what the sink knows of each task's stage-1 state (see sink.lineage).
STATE_COLUMNS = ("task_id", "seq", "base", "current", "pending", "events", "evictions")
# call_cancellations: a stored call a reprice replaces, as the call aggregates saw it
# (every call column they sum or group by). Materialized views turn rows of calls into
# +1 and these into -1 rows of call_changes.
CALL_CANCEL_COLUMNS = tuple(
    c for c in CALL_COLUMNS if c not in (*_PRICE_LABELS, "units", "attributes", "cost_known_parts")
)
REPRICING_COLUMNS = (
    "reprice_id", "event_id", "task_id", "ts", "provider", "model", "old_price_book_version",
    "new_price_book_version", "old_cost_total", "old_cost_known", "new_cost_total", "currency",
)  # fmt: skip
DEAD_LETTER_COLUMNS = (
    "dlq_partition", "dlq_offset", "source_topic", "source_partition", "source_offset",
    "reason", "detail", "payload",
)  # fmt: skip
_TASK_ROW = tuple(c for c in CHANGE_COLUMNS if c != "sign")


_MEDIA_TOKENS = (
    "input_audio_tokens", "cache_audio_read_tokens", "output_audio_tokens",
    "input_image_tokens", "output_image_tokens",
)  # fmt: skip


def _ts(ms: int | None) -> datetime | None:
    return None if ms is None else _EPOCH + timedelta(milliseconds=ms)


def _money(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def call_row(data: dict[str, Any]) -> tuple[Any, ...]:
    values = {"owner": "", "units": {}, "list_currency": "", "price_overlay": "", **data}
    values["ts"] = _ts(data["ts_ms"])
    values["units"] = {unit: Decimal(q) for unit, q in values["units"].items()}
    values["fx_rate"] = _money(data.get("fx_rate"))
    values.setdefault("reprice_id", "")
    values.setdefault("max_output_tokens", None)
    for name in _MEDIA_TOKENS:  # records before version 3 have no audio or image classes
        values.setdefault(name, 0)
    priced_zero = None if data.get("cost_total") is None else "0"
    # Records before version 4 know a call's cost exactly when it is priced.
    defaults = {
        "cost_audio": priced_zero,
        "cost_image": priced_zero,
        "cost_known": data.get("cost_total"),
    }
    for name in CALL_COLUMNS:
        if name.startswith("cost_") and name != "cost_known_parts":
            values[name] = _money(data.get(name, defaults.get(name)))
    values["cost_known_parts"] = {
        part: Decimal(cost) for part, cost in data.get("cost_known_parts", {}).items()
    }
    values.setdefault("unpriced_dimensions", [])
    return tuple(values[name] for name in CALL_COLUMNS)


def cancelled_call_row(stored: dict[str, Any]) -> tuple[Any, ...]:
    """The call_cancellations row that takes a stored call out of the call aggregates."""
    return tuple(stored[name] for name in CALL_CANCEL_COLUMNS)


def task_row(snapshot: dict[str, Any]) -> tuple[Any, ...]:
    """A task snapshot as a tasks row (task_changes columns without sign)."""
    values = dict(snapshot)
    values["first_event_at"] = _ts(snapshot["first_event_ms"])
    values["last_event_at"] = _ts(snapshot["last_event_ms"])
    values["started_at"] = _ts(snapshot["started_ms"])
    values["completed_at"] = _ts(snapshot["completed_ms"])
    values["outcome_at"] = _ts(snapshot["outcome_ms"])
    deadline = snapshot.get("outcome_deadline_ms")
    if deadline is None:  # snapshots from workers older than the outcome window
        deadline = DEFAULT_WINDOW.deadline_ms(snapshot["scenario_id"], snapshot["last_event_ms"])
    values["outcome_deadline"] = _ts(deadline)
    values["total_cost"] = Decimal(snapshot["total_cost"])
    # Adjustments by reprices are carried by the sink, never by stage 1 (see restate).
    values["reprice_cost_delta"] = Decimal(snapshot.get("reprice_cost_delta", 0))
    values["reprice_priced_calls"] = snapshot.get("reprice_priced_calls", 0)
    # Snapshots from workers older than migration 0007 carry neither.
    values.setdefault("models", [])
    values.setdefault("experiment", "")
    return tuple(values[name] for name in _TASK_ROW)


def dead_letter_row(record: Record) -> tuple[Any, ...]:
    headers = DeadLetterHeaders.from_kafka(record.headers)
    return (
        record.partition,
        record.offset,
        headers.source_topic,
        headers.source_partition,
        headers.source_offset,
        headers.reason,
        headers.detail,
        record.value or b"",
    )
