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

    client = connect(settings.clickhouse, settings.stack, owner=True)
    if settings.sink.auto_migrate:
        migrate(client)
    sink = ClickHouseSink(client, settings.topics, settings.sink.task_cache_entries)
    dsn = settings.clickhouse.resolved_dsn(settings.stack)
    if dsn.startswith("chdb://"):
        from pathlib import Path

        from pipeline.clickhouse.read_server import ReadServer

        # This process owns the embedded engine: let the others read through it.
        sink.read_server = ReadServer(Path(dsn.removeprefix("chdb://"))).start()
    return sink


__all__ = ["ClickHouseSink", "open_sink"]
