"""Dead letters are countable per reason and can be re-submitted after a fix."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from pipeline.clickhouse.client import connect
from pipeline.config import Settings
from pipeline.kafka.produce import make_producer
from pipeline.runtime.dead_letter import DEAD_LETTER_STATS, replay_dead_letters
from tests.integration.conftest import live_stack

pytestmark = pytest.mark.integration


def test_replay_repairs_routing_and_keys_and_re_dead_letters_the_rest(
    isolated_settings: Settings,
) -> None:
    task = {
        "type": "task",
        "event_id": "t1",
        "task_id": "task-9",
        "ts": "2026-11-02T10:00:00Z",
        "phase": "started",
        "scenario_id": "replayed",
        "environment": "prod",
    }
    call = {
        "type": "call",
        "event_id": "c1",
        "task_id": "task-9",
        "ts": "2026-11-02T10:00:01Z",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "usage": {"input_tokens": 1_000_000},
    }
    with live_stack(isolated_settings) as live:
        topics = live.settings.topics
        producer = make_producer(live.kafka)
        # A task event on the calls topic, a call keyed by something else, and garbage.
        producer.produce(topics.calls, key=b"task-9", value=json.dumps(task).encode())
        producer.produce(topics.calls, key=b"oops", value=json.dumps(call).encode())
        producer.produce(topics.calls, key=None, value=b"\x00garbage")
        assert producer.flush(30) == 0
        del producer  # before the broker stops
        live.drain(live.stack.check_alive)
        replayed = replay_dead_letters(live.kafka, topics)
        live.drain(live.stack.check_alive)
        again = replay_dead_letters(live.kafka, topics, reason="not_json")
        live.drain(live.stack.check_alive)
    settings = live.settings

    assert replayed == {"wrong_topic": 1, "key_mismatch": 1, "not_json": 1}
    assert again == {"not_json": 2}  # the garbage, twice dead-lettered by now
    client = connect(settings.clickhouse, settings.stack, create=False)
    # Repaired by the replay: the task exists with its scenario and the call's cost
    # (1,000,000 x 0.15 / 1e6 = 0.15).
    assert client.query(
        "SELECT scenario_id, calls, total_cost FROM tasks FINAL WHERE task_id = 'task-9'"
    ).result_rows == [("replayed", 1, Decimal("0.15"))]
    stats = client.query(DEAD_LETTER_STATS).result_rows
    assert {(r[0], r[1], r[2]) for r in stats} == {
        ("wrong_topic", topics.calls, 1),
        ("key_mismatch", topics.calls, 1),
        # original 1, +1 from the first replay, +2 from replaying both copies
        ("not_json", topics.calls, 4),
    }
