"""Property: for any set of events, delivered in any order, duplicated, with late and
changing outcomes, unknown models and malformed records, the real pipeline (Tansu,
Faust, sink, chDB) stores exactly what the plain batch reference computes."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.clickhouse.client import connect
from pipeline.config import (
    ClickHouseSettings,
    Settings,
    SinkSettings,
    StackSettings,
    TopicSettings,
    WorkerSettings,
)
from pipeline.runtime.replay import replay
from tests.integration.conftest import assert_matches_reference

pytestmark = pytest.mark.integration

BASE = datetime(2026, 11, 1, 23, 0, tzinfo=UTC)  # near midnight: tasks straddle two days
MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "o4-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5-20251001"),
    ("acme", "unpriced-model"),
]
MALFORMED = [
    b"{",
    b'{"type":"call","event_id":"x"}',
    b"[1,2,3]",
    b'{"type":"outcome","event_id":"o","task_id":"t","ts":"2026-11-01T00:00:00Z",'
    b'"outcome":"maybe","source":"user"}',
]


@st.composite
def workloads(draw: st.DrawFn) -> dict[str, Any]:
    events: list[dict[str, Any]] = []
    for t in range(draw(st.integers(1, 8))):
        task_id = f"task-{t}"

        def ts() -> str:
            minutes = draw(st.integers(0, 180))  # up to 3 h: crosses midnight
            return (BASE + timedelta(minutes=minutes)).isoformat()

        for c in range(draw(st.integers(0, 5))):
            provider, model = draw(st.sampled_from(MODELS))
            events.append(
                {
                    "type": "call",
                    "event_id": f"{task_id}-c{c}",
                    "task_id": task_id,
                    "ts": ts(),
                    "provider": provider,
                    "model": model,
                    "scenario_id": draw(st.sampled_from([None, "s1", "s2"])),
                    "environment": draw(st.sampled_from([None, "prod", "staging"])),
                    "owner": draw(st.sampled_from([None, "team-call"])),
                    "status": draw(st.sampled_from(["ok", "ok", "error", "timeout"])),
                    "usage": {
                        "input_tokens": draw(st.integers(0, 300_000)),
                        "cache_read_tokens": draw(st.integers(0, 50_000)),
                        "cache_write_tokens": draw(st.integers(0, 5_000)),
                        "output_tokens": draw(st.integers(0, 20_000)),
                        "reasoning_tokens": draw(st.integers(0, 5_000)),
                    },
                }
            )
        for k in range(draw(st.integers(0, 2))):
            events.append(
                {
                    "type": "task",
                    "event_id": f"{task_id}-t{k}",
                    "task_id": task_id,
                    "ts": ts(),
                    "phase": draw(st.sampled_from(["started", "completed"])),
                    "scenario_id": draw(st.sampled_from([None, "s1", "s3"])),
                    "owner": draw(st.sampled_from([None, "team-a"])),
                    "environment": draw(st.sampled_from([None, "prod"])),
                }
            )
        for o in range(draw(st.integers(0, 3))):  # changing outcomes: the latest wins
            events.append(
                {
                    "type": "outcome",
                    "event_id": f"{task_id}-o{o}",
                    "task_id": task_id,
                    "ts": ts(),
                    "outcome": draw(st.sampled_from(["accepted", "rejected", "failed"])),
                    "source": "user",
                }
            )
    if not events:
        events.append(
            {
                "type": "outcome",
                "event_id": "task-0-o",
                "task_id": "task-0",
                "ts": BASE.isoformat(),
                "outcome": "accepted",
                "source": "user",
            }
        )
    return {
        "events": events,
        "duplicates": draw(st.lists(st.integers(0, len(events) - 1), max_size=len(events))),
        "malformed": draw(st.lists(st.sampled_from(MALFORMED), max_size=3)),
        "order_seed": draw(st.integers(0, 2**32 - 1)),
    }


@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(workloads())
def test_pipeline_equals_the_batch_reference(tmp_path: Path, workload: dict[str, Any]) -> None:
    events = workload["events"]
    delivered = events + [events[i] for i in workload["duplicates"]]
    random.Random(workload["order_seed"]).shuffle(delivered)
    lines = [json.dumps(e).encode() for e in delivered] + workload["malformed"]
    uid = uuid.uuid4().hex[:8]
    path = tmp_path / f"events-{uid}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    settings_ = Settings(
        stack=StackSettings(data_dir=tmp_path / "data"),
        topics=TopicSettings.with_prefix(f"prop-{uid}."),
        clickhouse=ClickHouseSettings(database=f"prop_{uid}"),
        worker=WorkerSettings(app_id=f"prop-{uid}", commit_interval_s=0.3),
        sink=SinkSettings(group_id=f"prop-sink-{uid}", flush_interval_s=0.3),
    )

    replay(settings_, path, timeout_s=240)

    client = connect(settings_.clickhouse, settings_.stack, create=False)
    assert_matches_reference(client, events)
    dead = client.query("SELECT count() FROM dead_letters").result_rows[0][0]
    assert dead == len(workload["malformed"])
    client.close()
