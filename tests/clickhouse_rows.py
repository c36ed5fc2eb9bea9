"""Rows read from ClickHouse as the checks compare them: dicts, UTC-aware times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def utc(value: Any) -> Any:
    """clickhouse-connect returns naive datetimes for DateTime64(3, 'UTC') columns."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def read_rows(client: Any, query: str) -> list[dict[str, Any]]:
    result = client.query(query)
    return [
        {name: utc(v) for name, v in zip(result.column_names, row, strict=True)}
        for row in result.result_rows
    ]
