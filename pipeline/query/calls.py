"""Stored calls read back for pricing again: by ``costflow reprice`` and ``costflow whatif``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from typing import Any

from pipeline.clickhouse.lookups import id_chunks
from pipeline.events.models import CallEvent, ServiceTier, Usage

SCANNED = (
    "event_id", "task_id", "ts", "provider", "model", "owner", "environment", "service_tier",
    "input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
    "output_tokens", "reasoning_tokens", "input_audio_tokens", "cache_audio_read_tokens",
    "output_audio_tokens", "input_image_tokens", "output_image_tokens", "units",
    "price_book_version", "cost_input", "cost_cache_read", "cost_cache_write", "cost_output",
    "cost_reasoning", "cost_audio", "cost_image", "cost_request", "cost_units", "cost_total",
    "cost_cache_read_uncached", "cost_cache_write_uncached", "cost_known",
)  # fmt: skip


# What pricing reads to price a stored call again (see stored_call).
PRICING_INPUTS = SCANNED[: SCANNED.index("units") + 1]


def stored_call(row: dict[str, Any], **replace: Any) -> CallEvent:
    """The stored call as an event again: only what pricing reads (no validation cost).

    ``replace`` sets event fields instead of the stored ones (whatif: another model)."""
    ts = row["ts"] if row["ts"].tzinfo else row["ts"].replace(tzinfo=UTC)
    usage = Usage.model_construct(
        input_tokens=row["input_tokens"],
        cache_read_tokens=row["cache_read_tokens"],
        cache_write_tokens=row["cache_write_tokens"],
        cache_write_1h_tokens=row["cache_write_1h_tokens"],
        output_tokens=row["output_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
        input_audio_tokens=row["input_audio_tokens"],
        cache_audio_read_tokens=row["cache_audio_read_tokens"],
        output_audio_tokens=row["output_audio_tokens"],
        input_image_tokens=row["input_image_tokens"],
        output_image_tokens=row["output_image_tokens"],
    )
    fields: dict[str, Any] = {
        "event_id": row["event_id"],
        "task_id": row["task_id"],
        "ts": ts,
        "provider": row["provider"],
        "model": row["model"],
        "owner": row["owner"] or None,
        "environment": row["environment"] or None,
        "service_tier": ServiceTier(row["service_tier"] or "standard"),
        "usage": usage,
        "units": dict(row["units"]),
    }
    return CallEvent.model_construct(**{**fields, **replace})


def calls_of_tasks(
    client: Any, task_ids: list[str], columns: tuple[str, ...] = SCANNED
) -> Iterator[dict[str, Any]]:
    """The stored calls of these tasks, current version of each. A chunk of tasks per
    query (within max_query_size, see lookups): a streamed FINAL read with the tasks
    as a subquery arrived in blocks of a few dozen rows, several times slower here
    than whole results."""
    for chunk in id_chunks(task_ids):
        result = client.query(
            f"SELECT {', '.join(columns)} FROM calls FINAL WHERE task_id IN %(task_ids)s",
            parameters={"task_ids": list(chunk)},
        )
        for row in result.result_rows:
            yield dict(zip(columns, row, strict=True))


def scan(
    client: Any, condition: str, parameters: dict[str, Any], block_rows: int = 50_000
) -> Iterator[dict[str, Any]]:
    """Stored calls matching ``condition``, current version of each, in task order."""
    query = (
        f"SELECT {', '.join(SCANNED)} FROM calls FINAL WHERE {condition} ORDER BY task_id, event_id"
    )
    with client.query_row_block_stream(
        query, parameters=parameters, settings={"max_block_size": block_rows}
    ) as stream:
        for block in stream:
            for row in block:
                yield dict(zip(SCANNED, row, strict=True))
