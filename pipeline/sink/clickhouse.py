"""ClickHouse writer: priced calls, task snapshots and dead letters to their tables."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pipeline.config import TopicSettings
from pipeline.errors import ClickHouseError
from pipeline.sink.base import Batch, Record, Sink

log = logging.getLogger("costflow.sink")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

CALL_COLUMNS = (
    "event_id", "task_id", "ts", "provider", "model", "scenario_id", "environment", "role",
    "status", "service_tier", "attempt", "retry_of", "fallback_from", "latency_ms",
    "input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
    "output_tokens", "reasoning_tokens", "cost_input", "cost_cache_read", "cost_cache_write",
    "cost_output",
    "cost_reasoning", "cost_request", "cost_total", "currency", "price_book_version",
    "pricing_error", "attributes",
)  # fmt: skip
TASK_COLUMNS = (
    "task_id", "version", "scenario_id", "environment", "owner", "first_event_at",
    "last_event_at", "started_at", "completed_at", "calls", "failed_calls", "retried_calls",
    "fallback_calls", "unpriced_calls", "total_cost", "input_tokens", "cache_read_tokens",
    "cache_write_tokens", "output_tokens", "reasoning_tokens", "outcome", "outcome_source",
    "outcome_at",
)  # fmt: skip
DEAD_LETTER_COLUMNS = (
    "dlq_partition", "dlq_offset", "source_topic", "source_partition", "source_offset",
    "reason", "detail", "payload",
)  # fmt: skip


def _ts(ms: int | None) -> datetime | None:
    return None if ms is None else _EPOCH + timedelta(milliseconds=ms)


def _money(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def call_row(data: dict[str, Any]) -> tuple[Any, ...]:
    values = dict(data)
    values["ts"] = _ts(data["ts_ms"])
    for name in CALL_COLUMNS:
        if name.startswith("cost_"):
            values[name] = _money(data[name])
    return tuple(values[name] for name in CALL_COLUMNS)


def task_row(data: dict[str, Any]) -> tuple[Any, ...]:
    values = dict(data)
    values["first_event_at"] = _ts(data["first_event_ms"])
    values["last_event_at"] = _ts(data["last_event_ms"])
    values["started_at"] = _ts(data["started_ms"])
    values["completed_at"] = _ts(data["completed_ms"])
    values["outcome_at"] = _ts(data["outcome_ms"])
    values["total_cost"] = Decimal(data["total_cost"])
    return tuple(values[name] for name in TASK_COLUMNS)


def dead_letter_row(record: Record) -> tuple[Any, ...]:
    headers = dict(record.headers)

    def header(name: str, default: str = "") -> str:
        raw = headers.get(f"costflow.{name}")
        return raw.decode("utf-8", "replace") if raw is not None else default

    return (
        record.partition,
        record.offset,
        header("source_topic"),
        int(header("source_partition", "-1")),
        int(header("source_offset", "-1")),
        header("reason", "unknown"),
        header("detail"),
        record.value or b"",
    )


class ClickHouseSink(Sink):
    def __init__(self, client: Any, topics: TopicSettings) -> None:
        self.client = client
        self.topics = topics

    def _rows(self, batch: Batch) -> dict[str, tuple[str, list[tuple[Any, ...]]]]:
        calls: list[tuple[Any, ...]] = []
        # Several snapshots of one task in a batch: only the highest version matters.
        latest: dict[str, dict[str, Any]] = {}
        dead: list[tuple[Any, ...]] = []
        for record in batch.records:
            if record.topic == self.topics.dead_letter:
                dead.append(dead_letter_row(record))
            elif record.topic == self.topics.priced_calls:
                calls.append(call_row(json.loads(record.value or b"{}")))
            elif record.topic == self.topics.task_snapshots:
                snap = json.loads(record.value or b"{}")
                current = latest.get(snap["task_id"])
                if current is None or snap["version"] > current["version"]:
                    latest[snap["task_id"]] = snap
        return {
            "calls": (self.topics.priced_calls, calls),
            "tasks": (self.topics.task_snapshots, [task_row(s) for s in latest.values()]),
            "dead_letters": (self.topics.dead_letter, dead),
        }

    def write(self, batch: Batch) -> dict[str, int]:
        written: dict[str, int] = {}
        for table, (topic, rows) in self._rows(batch).items():
            if not rows:
                continue
            columns = {
                "calls": CALL_COLUMNS,
                "tasks": TASK_COLUMNS,
                "dead_letters": DEAD_LETTER_COLUMNS,
            }[table]
            try:
                self.client.insert(
                    table,
                    rows,
                    column_names=list(columns),
                    settings={"insert_deduplication_token": batch.token(table, topic)},
                )
            except Exception as exc:
                raise ClickHouseError(f"insert into {table} failed: {exc}") from exc
            written[table] = len(rows)
        return written

    def close(self) -> None:
        self.client.close()
