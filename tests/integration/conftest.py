from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import (
    ClickHouseSettings,
    KafkaSettings,
    Settings,
    SinkSettings,
    StackSettings,
    TopicSettings,
    WorkerSettings,
)
from pipeline.embedded.broker import EmbeddedBroker
from pipeline.runtime.offsets import LagProbe
from pipeline.runtime.replay import wait_for_group
from pipeline.runtime.supervisor import Stack


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


@dataclass
class LiveStack:
    """A running pipeline on a private broker: worker and sink as child processes."""

    kafka: KafkaSettings
    settings: Settings
    stack: Stack
    worker_probe: LagProbe
    sink_probe: LagProbe

    @property
    def logs(self) -> Path:
        return self.settings.stack.data_dir / "logs"

    def drain(self, check: Callable[[], None] | None = None) -> None:
        """Wait until stage 1 committed every input, then stage 2 every output."""
        check = check or (lambda: None)
        inputs = self.worker_probe.end_offsets(self.settings.topics.inputs())
        wait_for_group(self.worker_probe, inputs, "stage 1", 300, check)
        outputs = self.sink_probe.end_offsets(self.settings.topics.sink_inputs())
        wait_for_group(self.sink_probe, outputs, "stage 2", 300, check)


@contextmanager
def live_stack(isolated: Settings, **worker_overrides: Any) -> Iterator[LiveStack]:
    with EmbeddedBroker() as broker:
        kafka = KafkaSettings(bootstrap=broker.bootstrap)
        worker = isolated.worker.model_copy(update=worker_overrides)
        settings = Settings(
            isolated.stack, kafka, isolated.topics, isolated.clickhouse, worker, isolated.sink
        )
        worker_probe = LagProbe(kafka, settings.worker.app_id)
        sink_probe = LagProbe(kafka, settings.sink.group_id)
        try:
            with Stack(settings, log_dir=settings.stack.data_dir / "logs") as stack:
                yield LiveStack(kafka, settings, stack, worker_probe, sink_probe)
        finally:
            worker_probe.close()
            sink_probe.close()
