"""Events through the real embedded broker, Faust worker, sink and chDB."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import yaml

from pipeline.clickhouse.client import connect
from pipeline.config import Settings
from pipeline.demo.workload import bad_records, generate, write_jsonl
from pipeline.kafka.backlog import read_backlog
from pipeline.kafka.produce import produce_lines
from pipeline.pricing.fixed_costs import FixedCosts
from pipeline.query import fixed_costs
from pipeline.resources import default_price_book
from pipeline.runtime.data_time import pipeline_stages
from tests.analytics_checks import check_all_views
from tests.decision_checks import check_fixed_cost_views
from tests.integration.conftest import assert_matches_reference, live_stack
from tests.reference import expected_tasks

# The shipped book's label, read from its header (pricing update changes the version).
DEFAULT_LABEL = "default@{version}".format(
    **yaml.safe_load((default_price_book() / "book.yaml").read_text())
)

pytestmark = pytest.mark.integration


def hand_built() -> list[dict[str, Any]]:
    """Small cases with known shapes: late task event, changing outcome, unknown model."""

    def call(event_id: str, task: str, ts: str, model: str, **usage: int) -> dict[str, Any]:
        provider = "acme" if model == "mystery" else "openai"
        return {
            "type": "call",
            "event_id": event_id,
            "task_id": task,
            "ts": ts,
            "provider": provider,
            "model": model,
            "usage": usage,
            "scenario_id": "from-call",
            "environment": "prod",
        }

    return [
        # Calls arrive before the task event that names the scenario.
        call(
            "h1", "hand-1", "2026-11-03T09:00:00Z", "gpt-4.1", input_tokens=1000, output_tokens=100
        ),
        call(
            "h2", "hand-1", "2026-11-03T09:00:01Z", "gpt-4.1", input_tokens=1000, output_tokens=100
        ),
        {
            "type": "task",
            "event_id": "h3",
            "task_id": "hand-1",
            "ts": "2026-11-03T08:59:59Z",
            "phase": "started",
            "scenario_id": "hand",
            "owner": "team-x",
            "environment": "prod",
        },
        # Rejected first, accepted later: the later outcome wins.
        {
            "type": "outcome",
            "event_id": "h4",
            "task_id": "hand-1",
            "ts": "2026-11-03T10:00:00Z",
            "outcome": "rejected",
            "source": "user",
        },
        {
            "type": "outcome",
            "event_id": "h5",
            "task_id": "hand-1",
            "ts": "2026-11-03T11:00:00Z",
            "outcome": "accepted",
            "source": "user",
        },
        # A model nobody prices: counted, cost NULL, task cost unaffected.
        call("h6", "hand-2", "2026-11-03T09:00:00Z", "mystery", input_tokens=5000),
        call(
            "h7",
            "hand-2",
            "2026-11-03T09:00:02Z",
            "gpt-4o-mini",
            input_tokens=2000,
            cache_read_tokens=1000,
            output_tokens=10,
        ),
        {
            "type": "task",
            "event_id": "h8",
            "task_id": "hand-2",
            "ts": "2026-11-03T09:00:00Z",
            "phase": "started",
            "scenario_id": "hand",
            "environment": "prod",
        },
    ]


def around_now() -> list[dict[str, Any]]:
    """Tasks whose outcome windows are still open or just closed, relative to the clock."""
    now = datetime.now(UTC)

    def at(hours: float) -> str:
        return (now - timedelta(hours=hours)).isoformat()

    def call(event_id: str, task: str, hours_ago: float, scenario: str) -> dict[str, Any]:
        return {
            "type": "call", "event_id": event_id, "task_id": task, "ts": at(hours_ago),
            "provider": "openai", "model": "gpt-4.1-mini", "scenario_id": scenario,
            "environment": "prod", "usage": {"input_tokens": 100, "output_tokens": 10},
        }  # fmt: skip

    return [
        call("w1", "window-open", 2, "hand"),  # default 24 h window: pending
        call("w2", "window-closed", 3, "short"),  # 1 h window: unresolved
        call("w3", "window-late", 5, "short"),  # closed, then an outcome arrives anyway
        {
            "type": "outcome",
            "event_id": "w4",
            "task_id": "window-late",
            "ts": at(0.01),
            "outcome": "accepted",
            "source": "user",
        },
    ]


def test_cost_per_outcome_equals_the_batch_reference(isolated_settings: Settings) -> None:
    events = hand_built() + around_now() + generate(150, seed=11)
    delivered = list(events)
    rng = random.Random(5)
    rng.shuffle(delivered)  # out of order across and within tasks
    delivered += rng.sample(events, 40)  # producer retries: duplicates
    # Two waves, the second after the first is in ClickHouse: its late calls and
    # outcomes restate stored tasks (within one sink batch they would collapse).
    first, late = delivered[: len(delivered) // 2], delivered[len(delivered) // 2 :]

    windows = {"short": timedelta(hours=1)}
    with live_stack(isolated_settings, outcome_window_s_by_scenario={"short": 3600}) as live:
        sent = produce_lines(live.kafka, live.settings.topics, write_jsonl(first))
        live.drain(live.stack.check_alive)
        sent += produce_lines(live.kafka, live.settings.topics, write_jsonl(late, bad_records()))
        live.drain(live.stack.check_alive)
        # Both stages finished every partition: the alert evaluator's bound on the
        # data's time (read from the real worker's and sink's groups) holds nothing back.
        assert read_backlog(live.kafka, pipeline_stages(live.settings)).behind == {}
    settings = live.settings
    assert sum(sent.values()) == len(delivered) + len(bad_records())

    client = connect(settings.clickhouse, settings.stack, create=False)
    assert_matches_reference(client, events, windows)
    check_all_views(client, events, windows)
    # Full scenario cost over what the real pipeline stored, both rules.
    declared = {"items": [
        {"item": "staging", "category": "staging", "month": "2026-11", "amount": "300"},
        {"item": "gpus", "category": "gpu", "month": "2026-11", "amount": "90",
         "rule": "weights", "weights": {"support-chat": 2, "code-review": 1}},
    ]}  # fmt: skip
    fixed_costs.load(client, FixedCosts.model_validate(declared), "integration")
    month = (date(2026, 11, 1), date(2026, 12, 1))
    check_fixed_cost_views(client, events, [
        {"item": "staging", "start": month[0], "end": month[1], "amount": Decimal(300),
         "rule": "usage_share", "scenarios": [], "weights": {}},
        {"item": "gpus", "start": month[0], "end": month[1], "amount": Decimal(90),
         "rule": "weights", "scenarios": [],
         "weights": {"support-chat": Decimal(2), "code-review": Decimal(1)}},
    ], windows)  # fmt: skip
    statuses = {
        task.task_id: task.status(datetime.now(UTC))
        for task in expected_tasks(events, windows).values()
        if task.task_id.startswith("window-")
    }
    assert statuses == {
        "window-open": "pending", "window-closed": "unresolved", "window-late": "accepted"
    }  # fmt: skip
    # Restatements happened (tasks were written, then rewritten by later events) and
    # the aggregates above stayed exact through them.
    cancelled = client.query("SELECT count() FROM task_changes WHERE sign = -1").result_rows
    assert cancelled[0][0] > 0

    # The hand-built tasks, spelled out.
    tasks = {
        r[0]: r[1:]
        for r in client.query(
            "SELECT task_id, scenario_id, owner, calls, unpriced_calls, total_cost, outcome, "
            "bitShiftRight(version, 20) FROM tasks FINAL WHERE task_id LIKE 'hand-%'"
        ).result_rows
    }
    # hand-1: 2 x (1000 x 2.00 + 100 x 8.00) / 1e6 = 2 x 0.0028
    assert tasks["hand-1"] == ("hand", "team-x", 2, 0, Decimal("0.0056"), "accepted", 5)
    # hand-2: (2000 x 0.15 + 1000 x 0.075 + 10 x 0.60) / 1e6 = 0.000381
    assert tasks["hand-2"] == ("hand", "", 2, 1, Decimal("0.000381"), "", 3)

    # Calls: one row per distinct call; priced rows name their book, unpriced say why.
    distinct_calls = {e["event_id"] for e in events if e["type"] == "call"}
    calls = client.query(
        "SELECT count(), countIf(cost_total IS NULL), "
        f"countIf(cost_total IS NOT NULL AND price_book_version = '{DEFAULT_LABEL}'), "
        "countIf(cost_total IS NULL AND pricing_error LIKE 'price_not_found:%') FROM calls"
    ).result_rows[0]
    unpriced = sum(t.unpriced_calls for t in expected_tasks(events).values())
    assert calls == (len(distinct_calls), unpriced, len(distinct_calls) - unpriced, unpriced)

    # Bad input: dead-lettered with its reason and original bytes, nothing silent.
    dead = client.query(
        "SELECT reason, payload FROM dead_letters ORDER BY source_topic, source_offset"
    ).result_rows
    assert sorted(reason for reason, _ in dead) == [
        "not_json",
        "schema_violation",
        "schema_violation",
    ]
    assert sorted(
        payload.encode() if isinstance(payload, str) else payload for _, payload in dead
    ) == sorted(bad_records())
