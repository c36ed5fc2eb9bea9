"""The ClickHouse store of stage 2: sign rows for restated tasks, idempotent batches
with write-ahead plans, reprices, and the lineage of each task's stage-1 state.

:func:`open_sink` is what ``pipeline.sink.stores`` selects for ``store = clickhouse``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.sink.clickhouse.writer import ClickHouseSink

if TYPE_CHECKING:
    from pipeline.config import Settings


def open_sink(settings: Settings) -> ClickHouseSink:
    """Connect, apply migrations when ``COSTFLOW_SINK_AUTO_MIGRATE`` (the default)."""
    from pipeline.clickhouse.client import connect
    from pipeline.clickhouse.migrate import migrate

    client = connect(settings.clickhouse, settings.stack)
    if settings.sink.auto_migrate:
        migrate(client)
    return ClickHouseSink(client, settings.topics, settings.sink.task_cache_entries)


__all__ = ["ClickHouseSink", "open_sink"]
