"""costflow compare and whatif against the reference, in chDB through the real stage 1 and sink."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipeline.demo.workload import generate
from pipeline.pricing.book import load_price_book
from pipeline.pricing.engine import CompiledBook
from pipeline.query.analytics import Slice
from pipeline.query.compare import compare
from pipeline.query.whatif import what_if
from pipeline.render.compare import render_comparison
from pipeline.render.money import usd
from pipeline.render.whatif import render_what_if
from tests.chdb import chdb_database
from tests.reference import call_cost, expected_tasks
from tests.reference_analytics import call_facts, group_calls, latency_quantile, total
from tests.unit.test_analytics_views import run_stage1_and_sink

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """The demo workload (its doc-extract A/B test included) in a database of its own."""
    with chdb_database(tmp_path_factory.mktemp("decisions-chdb"), "dec") as client:
        events = generate(900, seed=41, days=3)
        run_stage1_and_sink(client, events, waves=3)
        yield client, list({e["event_id"]: e for e in events}.values())


def _decided(task: Any, now: datetime) -> bool:
    return bool(task.outcome) or task.outcome_deadline <= now


def test_experiment_arms_and_their_difference(loaded: tuple[Any, list[dict[str, Any]]]) -> None:
    client, events = loaded
    now = datetime.now(UTC)
    tasks = [t for t in expected_tasks(events).values() if t.scenario_id == "doc-extract"]
    result = compare(client, "experiment", Slice(scenario_id="doc-extract"))

    table = {a.arm: (a.tasks, a.accepted, a.pending, a.task_cost) for a in result.arms}
    want = {}
    for label in ("baseline", "cheap-extractor"):
        arm = [t for t in tasks if t.experiment == label]
        want[label] = (
            len(arm),
            sum(t.outcome == "accepted" for t in arm),
            sum(t.status(now) == "pending" for t in arm),
            sum((t.total_cost for t in arm), Decimal(0)),
        )
    assert table == want
    # The two largest arms, compared on decided tasks only.
    assert {result.a, result.b} == {"baseline", "cheap-extractor"}
    assert result.sums is not None and result.difference is not None
    for label, sums in zip((result.a, result.b), result.sums, strict=True):
        arm = [t for t in tasks if t.experiment == label and _decided(t, now)]
        costs = [t.total_cost for t in arm]
        assert sums.tasks == len(arm)
        assert sums.accepted == sum(t.outcome == "accepted" for t in arm)
        assert sums.cost == sum(costs, Decimal(0))
        assert sums.accepted_cost == sum(
            (t.total_cost for t in arm if t.outcome == "accepted"), Decimal(0)
        )
        assert sums.cost_squared == pytest.approx(sum(float(c) ** 2 for c in costs), rel=1e-12)
    # The cheaper extractor costs less per accepted outcome even with its retries.
    cheap_first = result.a == "cheap-extractor"
    assert result.difference.verdict == ("A costs more" if not cheap_first else "B costs more")
    text = render_comparison("doc-extract", result)
    assert "outside the noise: baseline costs more" in text


def test_model_template_equals_the_reference(loaded: tuple[Any, list[dict[str, Any]]]) -> None:
    client, events = loaded
    result = compare(client, "model", Slice(scenario_id="doc-extract"))
    tasks = [t for t in expected_tasks(events).values() if t.scenario_id == "doc-extract"]
    calls = group_calls(
        [f for f in call_facts(events) if f[0]["scenario_id"] == "doc-extract"], ("model",)
    )
    assert {a.arm for a in result.arms} == {model for (model,) in calls}
    for arm in result.arms:
        used = [t for t in tasks if arm.arm in t.models]
        rows = calls[(arm.arm,)]
        assert (arm.tasks, arm.accepted, arm.task_cost) == (
            len(used),
            sum(t.outcome == "accepted" for t in used),
            sum((t.total_cost for t in used), Decimal(0)),
        )
        assert arm.calls == len(rows)
        assert arm.cache_adjusted_cost == total(rows, "cost_total")
        assert arm.retry_rate == sum(r["is_retry"] for r in rows) / len(rows)
        judged = [r for r in rows if r["status"] in ("ok", "invalid_output")]
        assert arm.quality_pass_rate == sum(r["status"] == "ok" for r in judged) / len(judged)
        latencies = [r["latency_ms"] for r in rows if r["latency_ms"] is not None]
        assert arm.latency_p50_ms == latency_quantile(latencies, 50)
        assert arm.latency_p95_ms == latency_quantile(latencies, 95)
        assert arm.owners == ("data-eng",)
    # Each doc-extract task used one of the two extractors: the default pair is disjoint.
    assert {result.a, result.b} == {"gpt-4.1-mini", "gpt-4o-mini"}


def test_compare_without_two_arms_says_so(loaded: tuple[Any, list[dict[str, Any]]]) -> None:
    client, _ = loaded
    # Every support-chat task uses gpt-4o-mini: no model arm excludes it.
    result = compare(client, "model", Slice(scenario_id="support-chat"))
    assert result.a is None and result.difference is None
    assert "No two arms to compare." in render_comparison("support-chat", result)


def test_whatif_reprices_the_scenario_at_the_target(
    loaded: tuple[Any, list[dict[str, Any]]],
) -> None:
    client, events = loaded
    book = CompiledBook(load_price_book(ROOT / "pricing" / "default"))
    at = datetime(2026, 11, 20, tzinfo=UTC)
    doc_tasks = {
        t.task_id for t in expected_tasks(events).values() if t.scenario_id == "doc-extract"
    }
    calls = [e for e in events if e["type"] == "call" and e["task_id"] in doc_tasks]
    result = what_if(
        client, book, Slice(scenario_id="doc-extract"), "openai/gpt-4o-mini", at,
        replace="gpt-4.1-mini", growth=Decimal(10),
    )  # fmt: skip

    recorded = [call_cost(c) for c in calls]
    estimated = [
        call_cost({**c, "model": "gpt-4o-mini"}) if c["model"] == "gpt-4.1-mini" else cost
        for c, cost in zip(calls, recorded, strict=True)
    ]
    assert result.provider == "openai" and result.calls == len(calls)
    assert result.moved_calls == sum(c["model"] == "gpt-4.1-mini" for c in calls)
    assert result.recorded_cost == sum((c for c in recorded if c is not None), Decimal(0))
    assert result.estimated_cost == sum((c for c in estimated if c is not None), Decimal(0))
    assert result.estimated_cost < result.recorded_cost
    assert result.days == 3 and result.accepted == sum(
        t.outcome == "accepted" for t in expected_tasks(events).values() if t.task_id in doc_tasks
    )
    assert result.per_30_days(result.estimated_cost) == result.estimated_cost * 10 * 30 / 3
    text = render_what_if(result)
    assert text.startswith("ESTIMATE: doc-extract") and "at 10x volume" in text


def test_whatif_refuses_a_model_the_book_does_not_price(
    loaded: tuple[Any, list[dict[str, Any]]],
) -> None:
    from pipeline.errors import PriceNotFound

    client, _ = loaded
    book = CompiledBook(load_price_book(ROOT / "pricing" / "default"))
    with pytest.raises(PriceNotFound, match="no-such-model"):
        what_if(client, book, Slice(scenario_id="doc-extract"), "no-such-model",
                datetime.now(UTC))  # fmt: skip


def test_whatif_growth_alone_scales_variable_cost_and_keeps_fixed_costs(
    loaded: tuple[Any, list[dict[str, Any]]],
) -> None:
    """The 10x question: no model change, variable cost x10, fixed costs as declared,
    unpriced calls counted and the figures marked as lower bounds."""
    client, events = loaded
    book = CompiledBook(load_price_book(ROOT / "pricing" / "default"))
    tasks = {t.task_id: t for t in expected_tasks(events).values()
             if t.scenario_id == "research-agent"}  # fmt: skip
    calls = [e for e in events if e["type"] == "call" and e["task_id"] in tasks]
    costs = [call_cost(c) for c in calls]
    result = what_if(client, book, Slice(scenario_id="research-agent"), None,
                     datetime.now(UTC), growth=Decimal(10))  # fmt: skip
    variable = sum((c for c in costs if c is not None), Decimal(0))
    assert result.recorded_cost == result.estimated_cost == variable
    assert result.unpriced == sum(c is None for c in costs) > 0  # the demo's acme calls
    accepted = sum(t.outcome == "accepted" for t in tasks.values())
    assert result.accepted == accepted and result.days == 3
    # $30 of fixed costs allocated to the same 3 days: $30 at any volume.
    result.fixed_cost = Decimal(30)
    assert result.full_per_accepted(variable, Decimal(10)) == (
        (variable * 10 + 30) / (accepted * 10))  # fmt: skip
    text = render_what_if(result)
    assert "at 10x the volume" in text and "LOWER BOUND (>=)" in text
    grown = next(line for line in text.splitlines() if line.startswith("variable cost"))
    assert grown.split()[-2:] == [">=" + usd(variable, 2), ">=" + usd(variable * 10, 2)]
    fixed = next(line for line in text.splitlines() if line.startswith("fixed cost"))
    assert fixed.split()[-2:] == ["$30.00", "$30.00"]  # known: no lower-bound mark
    full = next(line for line in text.splitlines() if line.startswith("full cost per"))
    assert full.split()[-1] == ">=" + usd((variable * 10 + 30) / (accepted * 10), 4)
