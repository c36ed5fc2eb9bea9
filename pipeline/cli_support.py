"""What every costflow command needs: settings, a ClickHouse client, times, the book."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import CostflowError

if TYPE_CHECKING:
    from pipeline.config import Settings


def load_settings() -> Settings:
    from pipeline.config import Settings

    return Settings()


def clickhouse_client() -> Any:
    from pipeline.clickhouse.client import connect

    settings = load_settings()
    return connect(settings.clickhouse, settings.stack)


def utc_time(text: str, flag: str) -> Any:
    from datetime import UTC, datetime

    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CostflowError(f"{flag} {text!r} is not a date or RFC 3339 time") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def compiled_book(path: str | None) -> Any:
    from pipeline.pricing.book import load_price_book
    from pipeline.pricing.engine import CompiledBook

    return CompiledBook(
        load_price_book(Path(path) if path else load_settings().worker.price_book_dir)
    )
