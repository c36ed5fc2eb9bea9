"""The task state is a function of the set of events, whatever order and duplication.

Property-based: random event sets, delivered in random order with random
duplicates, must give the snapshot the reference model computes.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.events.decode import decode_event
from pipeline.events.models import CallEvent, OutcomeEvent, TaskEvent
from pipeline.join.state import OutcomeWindow, TaskState
from tests.reference import call_cost, expected_tasks, parse_ts

BASE = datetime(2026, 11, 1, tzinfo=UTC)
MODELS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"), ("acme", "unknown")]


@st.composite
def task_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    task_id = "task-1"
    events: list[dict[str, Any]] = []
    n = 0

    def ts() -> str:
        # Few distinct instants, so equal timestamps (tie-breaks) are common.
        return (BASE + timedelta(seconds=draw(st.integers(0, 5)))).isoformat()

    for _ in range(draw(st.integers(0, 6))):
        n += 1
        provider, model = draw(st.sampled_from(MODELS))
        events.append(
            {
                "type": "call",
                "event_id": f"c{n}",
                "task_id": task_id,
                "ts": ts(),
                "provider": provider,
                "model": model,
                "scenario_id": draw(st.sampled_from([None, "s-call-a", "s-call-b"])),
                "owner": draw(st.sampled_from([None, "team-call"])),
                "experiment": draw(st.sampled_from([None, "", "arm-call"])),
                "usage": {
                    "input_tokens": draw(st.integers(0, 10**6)),
                    "cache_read_tokens": draw(st.integers(0, 10**5)),
                    "output_tokens": draw(st.integers(0, 10**5)),
                },
            }
        )
    for _ in range(draw(st.integers(0, 3))):
        n += 1
        events.append(
            {
                "type": "task",
                "event_id": f"t{n}",
                "task_id": task_id,
                "ts": ts(),
                "phase": draw(st.sampled_from(["started", "completed"])),
                "scenario_id": draw(st.sampled_from([None, "s-task-a", "s-task-b"])),
                "owner": draw(st.sampled_from([None, "team-a", "team-b"])),
                "attributes": {"experiment": draw(st.sampled_from(["", "arm-a", "arm-b"]))},
            }
        )
    for _ in range(draw(st.integers(0, 3))):
        n += 1
        events.append(
            {
                "type": "outcome",
                "event_id": f"o{n}",
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
                "event_id": "o0",
                "task_id": task_id,
                "ts": ts(),
                "outcome": "accepted",
                "source": "user",
            }
        )
    return events


def run(events: list[dict[str, Any]]) -> TaskState:
    import json

    state = TaskState(task_id="task-1")
    for data in events:
        event = decode_event(json.dumps(data).encode())
        if isinstance(event, CallEvent):
            state.apply_call(event, call_cost(data))
        elif isinstance(event, TaskEvent):
            state.apply_task(event)
        elif isinstance(event, OutcomeEvent):
            state.apply_outcome(event)
        # Round-trip through the table's persistence format at every step.
        state = TaskState.from_stored(state.to_stored())
    return state


@settings(max_examples=300, deadline=None)
@given(task_events(), st.randoms(use_true_random=False), st.integers(0, 5))
def test_any_order_and_duplication_gives_the_reference(
    events: list[dict[str, Any]], rnd: random.Random, duplicates: int
) -> None:
    delivered = events + [rnd.choice(events) for _ in range(duplicates)]
    rnd.shuffle(delivered)
    snapshot = run(delivered).snapshot()
    expected = expected_tasks(events)["task-1"]
    assert snapshot["version"] == len(events)
    assert Decimal(snapshot["total_cost"]) == expected.total_cost
    assert snapshot["calls"] == expected.calls
    assert snapshot["unpriced_calls"] == expected.unpriced_calls
    assert snapshot["scenario_id"] == expected.scenario_id
    assert snapshot["owner"] == expected.owner
    assert snapshot["outcome"] == expected.outcome
    assert snapshot["models"] == list(expected.models)
    assert snapshot["experiment"] == expected.experiment
    times_ms = [int(parse_ts(e["ts"]).timestamp() * 1000) for e in events]
    assert (snapshot["first_event_ms"], snapshot["last_event_ms"]) == (min(times_ms), max(times_ms))
    # Same set, other order: the very same snapshot.
    rnd.shuffle(delivered)
    assert run(delivered).snapshot() == snapshot


def test_a_later_outcome_replaces_an_earlier_one_whatever_the_arrival_order() -> None:
    rejected = {
        "type": "outcome",
        "event_id": "o1",
        "task_id": "task-1",
        "outcome": "rejected",
        "source": "user",
        "ts": "2026-11-01T10:00:00Z",
    }
    accepted = dict(rejected, event_id="o2", outcome="accepted", ts="2026-11-01T12:00:00Z")
    assert run([accepted, rejected]).snapshot()["outcome"] == "accepted"
    assert run([rejected, accepted]).snapshot()["outcome"] == "accepted"


def test_the_task_events_scenario_wins_over_the_calls() -> None:
    call = {
        "type": "call",
        "event_id": "c1",
        "task_id": "task-1",
        "ts": "2026-11-01T10:00:00Z",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "scenario_id": "from-call",
        "usage": {"input_tokens": 1},
    }
    task = {
        "type": "task",
        "event_id": "t1",
        "task_id": "task-1",
        "ts": "2026-11-01T11:00:00Z",
        "phase": "started",
        "scenario_id": "from-task",
    }
    assert run([call]).snapshot()["scenario_id"] == "from-call"
    assert run([call, task]).snapshot()["scenario_id"] == "from-task"
    assert run([task, call]).snapshot()["scenario_id"] == "from-task"


def test_states_stored_before_models_were_tracked_still_load() -> None:
    call = {
        "type": "call", "event_id": "c1", "task_id": "task-1", "ts": "2026-11-01T10:00:00Z",
        "provider": "openai", "model": "gpt-4o-mini", "usage": {"input_tokens": 1},
    }  # fmt: skip
    stored = run([call]).to_json()
    assert stored.pop("models") == ["gpt-4o-mini"]
    old = TaskState.from_json(stored)
    assert old.snapshot()["models"] == [] and old.snapshot()["experiment"] == ""
    assert old.version == 1


WINDOWS = OutcomeWindow(
    default_ms=24 * 3_600_000,
    by_scenario_ms={"s-call-a": 2 * 3_600_000, "s-task-a": 30 * 3_600_000, "s-task-b": 1},
)


@settings(max_examples=300, deadline=None)
@given(task_events(), st.randoms(use_true_random=False))
def test_merging_states_of_disjoint_event_sets_is_the_state_of_their_union(
    events: list[dict[str, Any]], rnd: random.Random
) -> None:
    """What the sink relies on when a task's state left the worker and started again."""
    rnd.shuffle(events)
    cut = rnd.randint(0, len(events))
    first, second = run(events[:cut]), run(events[cut:])
    merged = first.merge(second)
    whole = run(events)
    # The merged task's outcome window comes from the part that resolves its scenario.
    window_ms = first.scenario_source(second).window_ms(WINDOWS)
    assert merged.row(window_ms) == whole.snapshot(WINDOWS)
    assert merged.seen == whole.seen and merged.version == len(events)
    assert second.merge(first).row(window_ms) == whole.snapshot(WINDOWS)


def test_states_that_share_an_event_refuse_to_merge() -> None:
    call = {
        "type": "call", "event_id": "c1", "task_id": "task-1", "ts": "2026-11-01T10:00:00Z",
        "provider": "openai", "model": "gpt-4o-mini", "usage": {"input_tokens": 1},
    }  # fmt: skip
    with pytest.raises(ValueError, match="share 1 events"):
        run([call]).merge(run([call]))
