"""Stage-1 state lost or gone, through the real stack on one data directory.

- A task silent for longer than its outcome window plus the state retention,
  that then gets an event stamped with a recent time: exact (merged by the sink).
- The stage-1 changelog topic deleted between runs (what a lost or recreated
  changelog in production looks like): the report says the result is incomplete,
  ``costflow state restore`` repairs it, and the result equals the reference.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from pipeline.clickhouse.client import connect
from pipeline.config import Settings
from pipeline.embedded.broker import EmbeddedBroker
from pipeline.query.report import health
from pipeline.runtime.state_restore import restore_embedded
from tests.integration.conftest import assert_matches_reference
from tests.integration.test_restarts import run_wave
from tests.waves import events_of, waves

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def _call(event_id: str, task_id: str, at: datetime) -> dict[str, Any]:
    return {"type": "call", "event_id": event_id, "task_id": task_id, "ts": at.isoformat(),
            "provider": "openai", "model": "gpt-4o-mini", "scenario_id": "s",
            "usage": {"input_tokens": 2000, "output_tokens": 300}}  # fmt: skip


def _lines(events: list[dict[str, Any]]) -> list[bytes]:
    import json

    return [json.dumps(e).encode() for e in events]


def _read(settings: Settings) -> tuple[Any, dict[str, Any]]:
    client = connect(settings.clickhouse, settings.stack, create=False)
    return client, health(client)


def test_a_task_back_after_its_retention_is_merged_exactly(isolated_settings: Settings) -> None:
    settings = isolated_settings.replace(
        worker=isolated_settings.worker.model_copy(
            update={"outcome_window_s": 3600, "state_retention_s": 3600}
        )
    )
    early = [_call("a-1", "a", START), {"type": "outcome", "event_id": "a-2", "task_id": "a",
             "ts": (START + timedelta(minutes=5)).isoformat(), "outcome": "rejected",
             "source": "user"}]  # fmt: skip
    # 60 other tasks over four days, in time order: every partition's watermark passes
    # a's expiry (deadline 10:00, expiry 11:00 on Nov 2) long before a comes back.
    others = [_call(f"o-{n}", f"other-{n}", START + timedelta(hours=2 * n)) for n in range(60)]
    back_at = START + timedelta(hours=121)
    back = [_call("a-3", "a", back_at), {"type": "outcome", "event_id": "a-4", "task_id": "a",
            "ts": (back_at + timedelta(minutes=1)).isoformat(), "outcome": "accepted",
            "source": "user"}]  # fmt: skip
    run_wave(settings, _lines(early + others), "graceful")
    run_wave(settings, _lines(back), "graceful")
    run_wave(settings, [], "graceful")
    client, report = _read(settings)
    try:
        assert report["restarted_tasks"] >= 1 and report["diverged_tasks"] == 0
        assert_matches_reference(client, early + others + back, {"s": timedelta(hours=1)})
        row = client.query("SELECT calls, outcome FROM tasks FINAL WHERE task_id = 'a'")
        assert row.result_rows == [(2, "accepted")]
    finally:
        client.close()


def test_a_lost_changelog_is_reported_then_restored_exactly(isolated_settings: Settings) -> None:
    all_lines = waves(150, seed=11, count=2)
    run_wave(isolated_settings, all_lines[0], "graceful")
    # The changelog topic disappears (deleted, or a cluster rebuilt without it).
    with EmbeddedBroker(storage_dir=isolated_settings.stack.data_dir / "broker") as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        name = f"{isolated_settings.worker.app_id}-task_state-changelog"
        for future in admin.delete_topics([name]).values():
            future.result()
    # Late events for tasks stage 1 no longer knows: it starts them from nothing.
    run_wave(isolated_settings, all_lines[1], "graceful")
    client, report = _read(isolated_settings)
    client.close()
    assert report["diverged_tasks"] > 0 and report["pending_events"] > 0  # visible

    restored = restore_embedded(isolated_settings)
    assert restored.states > 0
    assert restored.resubmitted == restored.pending == report["pending_events"]
    assert restored.missing == []
    run_wave(isolated_settings, [], "graceful")
    client, report = _read(isolated_settings)
    try:
        assert report["diverged_tasks"] == 0
        assert_matches_reference(client, events_of(all_lines))
    finally:
        client.close()
