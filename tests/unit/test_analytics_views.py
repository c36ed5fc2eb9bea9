"""The analytics views against the plain reference, on generated workloads in real chDB.

Events go through the real stage-1 agent code (decode, price, join state,
snapshots; Faust's transport replaced by recording topics) and the real sink
into chDB, in waves, so tasks are written and then restated by late calls,
late or changed outcomes and duplicates. The Kafka path is covered by
tests/integration/test_pipeline.py, which runs the same checks.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.agents.batch import apply_batch
from pipeline.demo.workload import generate
from pipeline.pricing.fixed_costs import FixedCosts
from pipeline.query import fixed_costs
from pipeline.query.analytics import Slice, costliest_tasks, tails
from pipeline.query.report import scenario_summary
from pipeline.sink.clickhouse import ClickHouseSink
from tests.analytics_checks import check_all_views, first_days
from tests.chdb import chdb_database
from tests.decision_checks import check_fixed_cost_views
from tests.reference import expected_tasks
from tests.reference_analytics import bin_quantile, bin_top_cost, cost_bin
from tests.unit.test_agents import context, record, stage1
from tests.unit.test_clickhouse_sink import TOPICS, batch_of


@pytest.fixture(scope="module")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("analytics-chdb")


@pytest.fixture
def client(chdb_dir: Path) -> Iterator[Any]:
    """A database of its own in the module's chDB (one chDB directory per process)."""
    with chdb_database(chdb_dir, "an") as db:
        yield db


def run_stage1_and_sink(client: Any, delivered: list[dict[str, Any]], waves: int) -> None:
    """Deliver events in waves; after each wave the sink writes what stage 1 emitted."""
    ctx = context({})
    sink = ClickHouseSink(client, TOPICS)
    size = max(1, -(-len(delivered) // waves))
    for start in range(0, len(delivered), size):
        records = stage1(ctx, delivered[start : start + size])
        if records:
            sink.write(batch_of(records))


def test_generated_workload_in_waves(client: Any) -> None:
    events = generate(400, seed=23, days=3)
    # Give a third of the calls an output cap, some of them hit.
    rng = random.Random(4)
    for event in events:
        if event["type"] == "call" and rng.random() < 0.33:
            produced = event["usage"].get("output_tokens", 0)
            event["max_output_tokens"] = max(1, produced + rng.choice([-5, 0, 200]))
    distinct = list({e["event_id"]: e for e in events}.values())
    delivered = list(events)
    rng.shuffle(delivered)  # late calls, outcomes before calls, duplicates spread out
    run_stage1_and_sink(client, delivered, waves=5)

    restated = client.query("SELECT count() FROM task_changes WHERE sign = -1").result_rows[0][0]
    assert restated > 0  # the waves forced restatements; the views below stayed exact
    check_all_views(client, distinct)

    # Full scenario cost: every rule over days with usage and beyond, one item running
    # into the future (days to come accrue nothing yet); then a new declaration
    # replaces it as a whole.
    ends = datetime.now(UTC).date() + timedelta(days=20)
    first = [
        {"item": "staging", "category": "staging", "period_start": date(2026, 11, 1),
         "period_end": date(2026, 12, 1), "amount": Decimal("1234.5")},
        {"item": "eval", "category": "gpu", "period_start": date(2026, 10, 31),
         "period_end": ends, "quantity": Decimal("7.5"), "quantity_unit": "gpu_hour",
         "price_per_unit": Decimal("2.45"), "rule": "weights",
         "weights": {"code-review": Decimal(3), "doc-extract": Decimal(1)}},
        {"item": "prompts", "category": "engineering", "period_start": date(2026, 11, 2),
         "period_end": date(2026, 11, 4), "amount": Decimal("95"),
         "scenarios": ["support-chat", "research-agent"]},
    ]  # fmt: skip
    plain = [
        {"item": "staging", "start": date(2026, 11, 1), "end": date(2026, 12, 1),
         "amount": Decimal("1234.5"), "rule": "usage_share", "scenarios": [], "weights": {}},
        {"item": "eval", "start": date(2026, 10, 31), "end": ends,
         "amount": Decimal("18.375"), "rule": "weights", "scenarios": [],
         "weights": {"code-review": Decimal(3), "doc-extract": Decimal(1)}},
        {"item": "prompts", "start": date(2026, 11, 2), "end": date(2026, 11, 4),
         "amount": Decimal(95), "rule": "usage_share",
         "scenarios": ["support-chat", "research-agent"], "weights": {}},
    ]  # fmt: skip
    fixed_costs.load(client, FixedCosts.model_validate({"items": first}), "first")
    check_fixed_cost_views(client, distinct, plain)
    fixed_costs.load(client, FixedCosts.model_validate({"items": first[2:]}), "second")
    check_fixed_cost_views(client, distinct, plain[2:])


def test_report_slices_equal_the_reference(client: Any) -> None:
    """costflow report's library: a period and an owner, tails over several days."""
    events = generate(300, seed=31, days=4)
    run_stage1_and_sink(client, events, waves=3)
    distinct = list({e["event_id"]: e for e in events}.values())
    tasks = expected_tasks(distinct)
    first_day = {t: d for t, d in first_days(distinct).items()}
    since, until = date(2026, 11, 2), date(2026, 11, 3)
    where = Slice(since=since, until=until, owner="support-platform")
    picked = [
        t for t in tasks.values()
        if since <= first_day[t.task_id] <= until and t.owner == "support-platform"
    ]  # fmt: skip
    assert picked

    lines = {line.scenario_id: line for line in scenario_summary(client, where)}
    assert set(lines) == {t.scenario_id for t in picked}
    for scenario, line in lines.items():
        mine = [t for t in picked if t.scenario_id == scenario]
        cost = sum((t.total_cost for t in mine), Decimal(0))
        waste = sum((t.total_cost for t in mine if t.outcome in ("rejected", "failed")), Decimal(0))
        waste += sum((t.total_cost for t in mine if not t.outcome), Decimal(0))  # all overdue
        assert (line.tasks, line.total_cost, line.waste_cost) == (len(mine), cost, waste)
        assert line.unpriced_calls == sum(t.unpriced_calls for t in mine)

    for tail in tails(client, where):
        bins: dict[int, list[Any]] = {}
        for t in picked:
            if t.scenario_id == tail.scenario_id:
                cell = bins.setdefault(cost_bin(t.total_cost), [0, Decimal(0)])
                cell[0] += 1
                cell[1] += t.total_cost
        ordered = sorted((b, n, c) for b, (n, c) in bins.items())
        assert (tail.p50, tail.p95, tail.p99, tail.top5pct_cost) == (
            bin_quantile(ordered, 50), bin_quantile(ordered, 95), bin_quantile(ordered, 99),
            bin_top_cost(ordered, 5),
        )  # fmt: skip

    top = costliest_tasks(client, where, limit=3)
    want = sorted(picked, key=lambda t: (-t.total_cost, t.task_id))[:3]
    assert [(t.task_id, t.total_cost) for t in top] == [(t.task_id, t.total_cost) for t in want]
    for task in top:  # the chain: every call of the task, in event-time order
        calls = sorted(
            (e for e in distinct if e["type"] == "call" and e["task_id"] == task.task_id),
            key=lambda e: (e["ts"], e["event_id"]),
        )
        assert [(m, r, s, a) for m, r, s, a, *_ in task.chain] == [
            (e["model"], e["role"], e.get("status", "ok"), e.get("attempt", 1)) for e in calls
        ]
        # Every call's known cost (its price, or the part that could be priced).
        assert sum(k for *_, k in task.chain if k is not None) == task.total_cost


MODELS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"), ("acme", "unknown")]


@st.composite
def workloads(draw: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for t in range(draw(st.integers(1, 12))):
        task_id = f"t{t}"
        scenario = draw(st.sampled_from(["s1", "s2", None]))
        for c in range(draw(st.integers(0, 6))):
            provider, model = draw(st.sampled_from(MODELS))
            event: dict[str, Any] = {
                "type": "call", "event_id": f"{task_id}-c{c}", "task_id": task_id,
                "ts": 1_793_577_600_000 + draw(st.integers(0, 3 * 86_400_000)),
                "provider": provider, "model": model,
                "usage": {"input_tokens": draw(st.integers(0, 200_000)),
                          "cache_read_tokens": draw(st.integers(0, 50_000)),
                          "output_tokens": draw(st.integers(0, 5_000))},
                "status": draw(st.sampled_from(["ok", "ok", "error", "invalid_output"])),
                "attempt": draw(st.integers(1, 3)),
                "role": draw(st.sampled_from(["generator", "judge"])),
                "latency_ms": draw(st.one_of(st.none(), st.integers(0, 60_000))),
                "max_output_tokens": draw(st.one_of(st.none(), st.integers(1, 6_000))),
            }  # fmt: skip
            if scenario:
                event["scenario_id"] = scenario
            label = draw(st.sampled_from([None, None, "a", "c"]))
            if label:
                event["experiment"] = label  # top level: the contract moves it into attributes
            events.append(event)
        if draw(st.booleans()):
            events.append({
                "type": "task", "event_id": f"{task_id}-t", "task_id": task_id,
                "ts": 1_793_577_600_000 + draw(st.integers(0, 3 * 86_400_000)),
                "phase": "started", "scenario_id": draw(st.sampled_from(["s1", "s3"])),
                "owner": draw(st.sampled_from(["team-a", "team-b"])),
                "attributes": {"experiment": draw(st.sampled_from(["", "a", "b"]))},
            })  # fmt: skip
        for o in range(draw(st.integers(0, 2))):
            events.append({
                "type": "outcome", "event_id": f"{task_id}-o{o}", "task_id": task_id,
                "ts": 1_793_577_600_000 + draw(st.integers(0, 4 * 86_400_000)),
                "outcome": draw(st.sampled_from(["accepted", "rejected", "failed"])),
                "source": "user",
            })  # fmt: skip
    return events or [{"type": "outcome", "event_id": "x-o", "task_id": "x", "source": "user",
                       "ts": 1_793_577_600_000, "outcome": "accepted"}]  # fmt: skip


@st.composite
def fixed_cost_declarations(draw: Any) -> tuple[FixedCosts, list[dict[str, Any]]]:
    """A declaration and the same items as plain values for the reference."""
    items, plain = [], []
    for n in range(draw(st.integers(1, 3))):
        start = date(2026, 11, 1) + timedelta(days=draw(st.integers(-2, 3)))
        end = start + timedelta(days=draw(st.integers(1, 6)))
        quantity = Decimal(draw(st.integers(1, 10**9))).scaleb(-6)
        price = Decimal(draw(st.integers(0, 10**12))).scaleb(-9)
        rule = draw(st.sampled_from(["usage_share", "weights"]))
        item: dict[str, Any] = {"item": f"i{n}", "category": "gpu", "rule": rule,
                                "period_start": start, "period_end": end}  # fmt: skip
        if draw(st.booleans()):
            item["amount"] = price
            amount = price
        else:
            item.update(quantity=quantity, quantity_unit="gpu_hour", price_per_unit=price)
            amount = quantity * price
        scenarios = draw(st.lists(st.sampled_from(["s1", "s2", "s3", ""]), max_size=2, unique=True))
        weights: dict[str, Decimal] = {}
        if rule == "weights":
            weights = {s or "s1": Decimal(draw(st.integers(1, 5000))).scaleb(-2)
                       for s in scenarios or ["s2"]}  # fmt: skip
            item["weights"] = weights
            scenarios = []
        else:
            item["scenarios"] = [s for s in scenarios if s]
            scenarios = item["scenarios"]
        items.append(item)
        plain.append({"item": f"i{n}", "start": start, "end": end, "amount": amount,
                      "rule": rule, "scenarios": scenarios, "weights": weights})  # fmt: skip
    return FixedCosts.model_validate({"items": items}), plain


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=workloads(), order=st.randoms(use_true_random=False), waves=st.integers(1, 4),
       duplicates=st.integers(0, 5), declared=fixed_cost_declarations())  # fmt: skip
def test_views_equal_the_reference_under_disorder(
    chdb_dir: Path,
    events: list[dict[str, Any]],
    order: random.Random,
    waves: int,
    duplicates: int,
    declared: tuple[FixedCosts, list[dict[str, Any]]],
) -> None:
    with chdb_database(chdb_dir, "prop") as db:
        delivered = events + [order.choice(events) for _ in range(duplicates)]
        order.shuffle(delivered)
        run_stage1_and_sink(db, delivered, waves)
        check_all_views(db, events)
        fixed_costs.load(db, declared[0], "generated")
        check_fixed_cost_views(db, events, declared[1])


def test_records_carry_what_the_views_need() -> None:
    """The priced-call record has the cap and the uncached baselines the views sum."""
    ctx = context({})
    call = {
        "type": "call", "event_id": "c", "task_id": "t", "ts": "2026-11-02T10:00:00Z",
        "provider": "openai", "model": "gpt-4o-mini", "max_output_tokens": 512,
        "usage": {"input_tokens": 1000, "cache_read_tokens": 4000, "cache_write_tokens": 0},
    }  # fmt: skip
    apply_batch(ctx, [record(call)])
    priced = json.loads(ctx.outputs.priced_calls.sent[0]["value"])
    assert priced["max_output_tokens"] == 512
    # gpt-4o-mini: input 0.15, cache read 0.075 per million tokens
    assert priced["cost_cache_read"] == "0.0003"
    assert priced["cost_cache_read_uncached"] == "0.0006"
