"""A migrated ClickHouse database of a test's own, in an embedded chDB directory."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import clickhouse_connect

from pipeline.clickhouse.migrate import migrate


@contextmanager
def chdb_database(path: Path, prefix: str = "t") -> Iterator[Any]:
    """A client on a new database named ``<prefix>_<random>`` in the chDB directory
    ``path``, with every migration applied. On exit the database is dropped and both
    clients are closed: chDB opens one directory per process, and closing releases it
    for the next test module's directory."""
    database = f"{prefix}_{uuid.uuid4().hex[:8]}"
    boot = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    boot.command(f"CREATE DATABASE {database}")
    client = clickhouse_connect.get_client(dsn=f"chdb://{path}", database=database)
    try:
        migrate(client)
        yield client
    finally:
        boot.command(f"DROP DATABASE IF EXISTS {database}")
        client.close()
        boot.close()
