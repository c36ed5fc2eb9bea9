from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import (
    ClickHouseSettings,
    Settings,
    SinkSettings,
    StackSettings,
    TopicSettings,
    WorkerSettings,
)


@pytest.fixture
def isolated_settings(tmp_path: Path) -> Settings:
    """Own topics, consumer groups, database and data directory for one test."""
    uid = uuid.uuid4().hex[:8]
    return Settings(
        stack=StackSettings(data_dir=tmp_path / "data"),
        topics=TopicSettings.with_prefix(f"it-{uid}."),
        clickhouse=ClickHouseSettings(database=f"it_{uid}"),
        worker=WorkerSettings(app_id=f"it-stage1-{uid}", commit_interval_s=0.5),
        sink=SinkSettings(group_id=f"it-sink-{uid}", flush_interval_s=0.5),
    )


def write_events(path: Path, events: list[dict[str, Any]], extra: list[bytes] = ()) -> Path:  # type: ignore[assignment]
    with path.open("wb") as handle:
        for event in events:
            handle.write(json.dumps(event).encode() + b"\n")
        for line in extra:
            handle.write(line + b"\n")
    return path
