"""Demo-like data in real chDB for the HTML report's tests, without the streaming stack.

The demo's workload generator (with its doc-extract A/B experiment) goes through the
real stage-1 code and the real sink into a migrated chDB database, as the analytics
view tests do; two tasks are added so the page has something to flag: one with a call
the price book cannot price (a lower bound) and one that started an hour ago with no
outcome yet (provisional).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.demo.workload import generate
from tests.unit.test_analytics_views import run_stage1_and_sink

# Enough doc-extract tasks for both experiment arms to pass 30 accepted outcomes (a
# verdict rather than "too few"), small enough for stage 1 and the sink in seconds.
TASKS = 600
DAYS = 4
SEED = 18


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def flagged_tasks(now: datetime) -> list[dict[str, Any]]:
    """A support-chat task with one priced and one unpriced call, accepted; and a
    code-review task started an hour before ``now`` with no outcome (pending)."""
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    unpriced = [
        {"type": "task", "event_id": "flag-u-t1", "task_id": "flag-unpriced", "ts": _iso(start),
         "phase": "started", "scenario_id": "support-chat", "owner": "support-platform",
         "environment": "prod"},
        {"type": "call", "event_id": "flag-u-c1", "task_id": "flag-unpriced",
         "ts": _iso(start + timedelta(seconds=2)), "provider": "openai", "model": "gpt-4o-mini",
         "role": "generator", "scenario_id": "support-chat", "owner": "support-platform",
         "environment": "prod", "usage": {"input_tokens": 1200, "output_tokens": 300}},
        {"type": "call", "event_id": "flag-u-c2", "task_id": "flag-unpriced",
         "ts": _iso(start + timedelta(seconds=5)), "provider": "acme", "model": "acme-large-1",
         "role": "critic", "scenario_id": "support-chat", "owner": "support-platform",
         "environment": "prod", "usage": {"input_tokens": 900, "output_tokens": 100}},
        {"type": "outcome", "event_id": "flag-u-o1", "task_id": "flag-unpriced",
         "ts": _iso(start + timedelta(minutes=1)), "outcome": "accepted", "source": "user"},
    ]  # fmt: skip
    begun = now - timedelta(hours=1)
    pending = [
        {"type": "task", "event_id": "flag-p-t1", "task_id": "flag-pending", "ts": _iso(begun),
         "phase": "started", "scenario_id": "code-review", "owner": "devtools",
         "environment": "prod"},
        {"type": "call", "event_id": "flag-p-c1", "task_id": "flag-pending",
         "ts": _iso(begun + timedelta(seconds=3)), "provider": "anthropic",
         "model": "claude-sonnet-4-5", "role": "generator", "scenario_id": "code-review",
         "owner": "devtools", "environment": "prod",
         "usage": {"input_tokens": 5000, "cache_read_tokens": 20000, "output_tokens": 800}},
    ]  # fmt: skip
    return unpriced + pending


def load_report_data(client: Any, now: datetime | None = None) -> list[dict[str, Any]]:
    """Write the workload into ``client``'s migrated database; the distinct events."""
    events = generate(TASKS, seed=SEED, days=DAYS) + flagged_tasks(now or datetime.now(UTC))
    run_stage1_and_sink(client, events, waves=2)
    return list({e["event_id"]: e for e in events}.values())


# A new user's day one: a few tasks of one scenario on one UTC day, each with one call of
# one role and the same usage (so one cost bin, p50 = p95 = p99), all accepted.
ONE_DAY = datetime(2026, 12, 1, 9, tzinfo=UTC)


def one_day_events(tasks: int = 12) -> list[dict[str, Any]]:
    """``tasks`` identical accepted support-chat tasks started on :data:`ONE_DAY`."""
    labels = {"scenario_id": "support-chat", "owner": "support-platform", "environment": "prod"}
    events: list[dict[str, Any]] = []
    for n in range(tasks):
        start = ONE_DAY + timedelta(minutes=10 * n)
        task = f"day-one-{n}"
        events += [
            {"type": "task", "event_id": f"{task}-t", "task_id": task, "ts": _iso(start),
             "phase": "started", **labels},
            {"type": "call", "event_id": f"{task}-c", "task_id": task,
             "ts": _iso(start + timedelta(seconds=2)), "provider": "openai",
             "model": "gpt-4o-mini", "role": "generator", **labels,
             "usage": {"input_tokens": 1200, "output_tokens": 300}},
            {"type": "outcome", "event_id": f"{task}-o", "task_id": task,
             "ts": _iso(start + timedelta(minutes=1)), "outcome": "accepted", "source": "user"},
        ]  # fmt: skip
    return events


def load_one_day(client: Any) -> list[dict[str, Any]]:
    """Write :func:`one_day_events` into ``client``'s migrated database; the events."""
    events = one_day_events()
    run_stage1_and_sink(client, events, waves=1)
    return events
