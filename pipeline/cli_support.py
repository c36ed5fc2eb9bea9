"""What every costflow command needs: settings, a ClickHouse client, times, the book."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import CostflowError

if TYPE_CHECKING:
    from pipeline.config import Settings


def settings_from(args: Any) -> Settings:
    """The settings of this run, built once: ``COSTFLOW_*`` variables, and the global
    flags over them (as init values, which pydantic-settings ranks above the
    environment; nothing is written back into ``os.environ``)."""
    from pipeline.config import (
        ClickHouseSettings,
        KafkaSettings,
        Settings,
        StackSettings,
        WorkerSettings,
    )

    def given(**values: Any) -> dict[str, Any]:
        return {name: value for name, value in values.items() if value}

    return Settings(
        stack=StackSettings(**given(data_dir=getattr(args, "data_dir", None))),
        kafka=KafkaSettings(**given(bootstrap=getattr(args, "kafka_bootstrap", None))),
        clickhouse=ClickHouseSettings(
            **given(
                dsn=getattr(args, "clickhouse_dsn", None), database=getattr(args, "database", None)
            )
        ),
        worker=WorkerSettings(**given(price_book_dir=getattr(args, "price_book", None))),
    )


def clickhouse_client(settings: Settings) -> Any:
    from pipeline.clickhouse.client import connect

    return connect(settings.clickhouse, settings.stack)


def reading_client(settings: Settings) -> Any:
    """A client for the reading commands, refused (with what to do) when the
    database lacks migrations their queries need."""
    from pipeline.clickhouse.migrate import require_current

    client = clickhouse_client(settings)
    require_current(client)
    return client


def utc_time(text: str, flag: str) -> Any:
    from datetime import UTC, datetime

    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CostflowError(f"{flag} {text!r} is not a date or RFC 3339 time") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def compiled_book(path: str | None, settings: Settings) -> Any:
    from pipeline.pricing.book import load_price_book
    from pipeline.pricing.engine import CompiledBook

    return CompiledBook(load_price_book(Path(path) if path else settings.worker.price_book_dir))
