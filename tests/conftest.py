from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def chdb_client(tmp_path: Path) -> Any:
    """A chDB client on a fresh directory and database of its own."""
    from pipeline.clickhouse.client import connect
    from pipeline.config import ClickHouseSettings, StackSettings

    settings = ClickHouseSettings(
        dsn=f"chdb://{tmp_path / 'ch'}", database=f"t_{uuid.uuid4().hex[:10]}"
    )
    client = connect(settings, StackSettings(data_dir=tmp_path))
    yield client
    client.close()
