"""The HTML report's figures against the plain reference, on demo-like data in real chDB.

The page is built from the query layer (pipeline.query.charts) over the demo workload
written through stage 1 and the sink; the numbers plotly is handed are read back out
of the page and compared with what tests/reference*.py computes from the same events,
without the pipeline. The page's own rendering in a browser is
tests/integration/test_html_report_browser.py.
"""

from __future__ import annotations

import itertools
import math
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipeline.query.analytics import Slice
from pipeline.query.charts import chart_data
from pipeline.render.html_figures import display_bins
from pipeline.render.html_report import CHART_IDS, render_html
from tests.chdb import chdb_database
from tests.html_report_data import ONE_DAY, load_one_day, load_report_data
from tests.page_figures import figures
from tests.reference import div18, expected_tasks
from tests.reference_analytics import bin_quantile, call_facts, cost_bin, first_event_ts


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's data directory: chDB opens one directory per process, so the CLI's
    test uses this one too (its chDB lives in ``clickhouse/`` under it)."""
    return tmp_path_factory.mktemp("html-report")


@pytest.fixture(scope="module")
def loaded(data_dir: Path) -> Iterator[tuple[Any, list[Any], datetime]]:
    """(client, distinct events, as-of time) for one database shared by the module."""
    with chdb_database(data_dir / "clickhouse", "hr") as client:
        events = load_report_data(client)
        yield client, events, datetime.now(UTC)


@pytest.fixture(scope="module")
def page(loaded: tuple[Any, list[Any], datetime]) -> str:
    client, _, _ = loaded
    return render_html(chart_data(client, Slice()))


def by_name(traces: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in traces}


def test_every_chart_is_on_the_page_once(page: str) -> None:
    charts = figures(page)
    assert set(charts) == {*CHART_IDS, "chart-ab-0"}
    # plotly.js is inlined once, and nothing is fetched from elsewhere.
    assert len(re.findall(r"\* plotly\.js v\d", page)) == 1
    assert 'src="http' not in page and "<link" not in page


def test_cost_per_accepted_outcome_by_day_equals_the_reference(
    page: str, loaded: tuple[Any, list[Any], datetime]
) -> None:
    _, events, as_of = loaded
    first = first_event_ts(events)
    days: dict[str, dict[Any, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for task in expected_tasks(events).values():
        days[task.scenario_id][first[task.task_id].date()].append(task)
    traces, layout = figures(page)["chart-cpao"]
    assert layout["yaxis"]["type"] == "log"
    assert "USD per accepted outcome" in layout["yaxis"]["title"]["text"]
    got = {t["name"].split(" (")[0]: t for t in traces}
    assert set(got) == set(days)
    for scenario, per_day in days.items():
        trace = got[scenario]
        assert trace["x"] == [d.isoformat() for d in sorted(per_day)]
        want = []
        for day in sorted(per_day):
            tasks = per_day[day]
            accepted = sum(t.outcome == "accepted" for t in tasks)
            cost = sum((t.total_cost for t in tasks), Decimal(0))
            want.append(float(div18(cost, accepted)) if accepted else None)
        assert trace["y"] == want, scenario
        pending = [any(t.status(as_of) == "pending" for t in per_day[d]) for d in sorted(per_day)]
        assert trace["marker"]["symbol"] == ["circle-open" if p else "circle" for p in pending]
    # The scenarios with unpriced calls say so in their legend entry.
    flagged = {t["name"] for t in traces if "≥" in t["name"]}
    assert flagged == {"research-agent (≥, unpriced calls)", "support-chat (≥, unpriced calls)"}


def test_the_tail_chart_marks_the_binned_quantiles_of_the_reference(
    page: str, loaded: tuple[Any, list[Any], datetime]
) -> None:
    _, events, _ = loaded
    costs: dict[str, list[Decimal]] = defaultdict(list)
    for task in expected_tasks(events).values():
        costs[task.scenario_id].append(task.total_cost)
    traces, layout = figures(page)["chart-tails"]
    assert layout["xaxis"]["type"] == "log"
    histograms = [t for t in traces if t.get("fill") == "tozeroy"]
    assert [h["name"] for h in histograms] == sorted(costs)
    for scenario, histogram in zip(sorted(costs), histograms, strict=True):
        bins: dict[int, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
        for c in costs[scenario]:
            bins[cost_bin(c)][0] += 1
            bins[cost_bin(c)][1] += c
        ordered = sorted((b, n, total) for b, (n, total) in bins.items())
        # Every task that cost something is in a display band, once.
        assert sum(histogram["y"][:-1]) == sum(1 for c in costs[scenario] if c > 0)
        # The quantile lines drawn on the scenario's own subplot.
        axis = histogram.get("xaxis", "x")
        marks = {
            t["name"]: t["x"]
            for t in traces
            if t["name"] in ("p50", "p95", "p99") and t.get("xaxis", "x") == axis
        }
        want = {f"p{p}": [float(bin_quantile(ordered, p))] * 2 for p in (50, 95, 99)}
        assert marks == want, scenario


def test_display_bands_keep_every_task_and_their_order() -> None:
    from pipeline.query.charts import CostBin

    bins = [
        CostBin("s", -32768, 0.0, 0.0, 4, Decimal(0)),  # free tasks: not on a log axis
        CostBin("s", -700, 1.01**-700, 1.01**-699, 3, Decimal("0.003")),
        CostBin("s", -463, 1.01**-463, 1.01**-462, 2, Decimal("0.02")),
    ]
    bands = display_bins(bins)
    assert sum(n for _, _, n in bands) == 5
    assert all(lo < hi for lo, hi, _ in bands)
    assert all(a[1] == pytest.approx(b[0]) for a, b in itertools.pairwise(bands))
    assert bands[0][2] == 3 and bands[-1][2] == 2 and bands[0][0] <= 1.01**-700 < bands[0][1]


def test_waste_shares_equal_the_reference(
    page: str, loaded: tuple[Any, list[Any], datetime]
) -> None:
    _, events, as_of = loaded
    costs: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for task in expected_tasks(events).values():
        costs[task.scenario_id][task.status(as_of)] += task.total_cost
    traces, layout = figures(page)["chart-waste"]
    outcome = by_name(traces)
    scenarios = outcome["accepted"]["y"]
    assert sorted(scenarios) == sorted(costs)
    for status in ("accepted", "pending", "rejected", "failed", "unresolved"):
        want = []
        for scenario in scenarios:
            total = sum(costs[scenario].values(), Decimal(0))
            want.append(float(costs[scenario][status] / total * 100))
        assert outcome[status]["x"] == want, status
    notes = {a["y"]: a["text"] for a in layout["annotations"]}
    for scenario in scenarios:
        total = sum(costs[scenario].values(), Decimal(0))
        waste = sum((costs[scenario][s] for s in ("rejected", "failed", "unresolved")), Decimal(0))
        assert notes[scenario].startswith(f" waste {waste / total:.1%} of ")


def test_cost_by_role_and_cache_savings_equal_the_reference(
    page: str, loaded: tuple[Any, list[Any], datetime]
) -> None:
    _, events, _ = loaded
    role_cost: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    saved: dict[str, Decimal] = defaultdict(Decimal)
    premium: dict[str, Decimal] = defaultdict(Decimal)
    for labels, m in call_facts(events):
        role_cost[(labels["scenario_id"], labels["role"])] += m["cost_total"]
        model = f"{labels['provider']}/{labels['model']}"
        saved[model] += m["cost_cache_read_uncached"] - m["cost_cache_read"]
        premium[model] += m["cost_cache_write"] - m["cost_cache_write_uncached"]
    traces, layout = figures(page)["chart-roles"]
    assert layout["xaxis"]["title"]["text"] == "call cost (USD)"
    got = {
        (scenario, trace["name"]): x
        for trace in traces
        for scenario, x in zip(trace["y"], trace["x"], strict=True)
        if x
    }
    assert got == {key: float(c) for key, c in role_cost.items() if c}

    traces, _ = figures(page)["chart-cache"]
    cache = by_name(traces)
    models = cache["net savings"]["x"]
    assert models == sorted(m for m in saved if saved[m] or premium[m])
    assert cache["saved by cache reads"]["y"] == [float(saved[m]) for m in models]
    assert cache["cache-write premium"]["y"] == [float(-premium[m]) for m in models]
    assert cache["net savings"]["y"] == [float(saved[m] - premium[m]) for m in models]


def test_the_ab_comparison_equals_the_reference_arms(
    page: str, loaded: tuple[Any, list[Any], datetime]
) -> None:
    _, events, as_of = loaded
    arms: dict[str, list[Any]] = defaultdict(list)
    for task in expected_tasks(events).values():
        decided = task.outcome or task.outcome_deadline <= as_of
        if task.scenario_id == "doc-extract" and task.experiment and decided:
            arms[task.experiment].append(task)

    def per_accepted(tasks: list[Any]) -> Decimal:
        cost = sum((t.total_cost for t in tasks), Decimal(0))
        return cost / sum(t.outcome == "accepted" for t in tasks)

    a, b = per_accepted(arms["baseline"]), per_accepted(arms["cheap-extractor"])
    traces, _ = figures(page)["chart-ab-0"]
    bars, difference = traces
    assert bars["x"] == ["A: baseline", "B: cheap-extractor"]
    assert bars["y"] == [float(a), float(b)]
    assert difference["y"] == [float(a - b)]
    low = difference["y"][0] - difference["error_y"]["arrayminus"][0]
    high = difference["y"][0] + difference["error_y"]["array"][0]
    assert low < float(a - b) < high
    assert f"interval [{low:+.4f}, {high:+.4f}]" in page
    assert "A/B: doc-extract, experiment baseline vs cheap-extractor" in page


def test_the_page_says_which_figures_are_not_exact_and_why(page: str) -> None:
    # The demo's unpriced research calls and the added task's unpriced critic call.
    assert "LOWER BOUND (≥): research-agent 3, support-chat 1 calls have no complete" in page
    assert "PROVISIONAL: code-review 1 tasks are still inside their outcome window" in page
    assert '<td class="provisional">provisional</td>' in page
    assert page.count('<td class="incomplete">incomplete</td>') == 2
    assert "≥ acme/acme-large-1" not in page  # no cache use: not charted, not flagged
    assert "All figures on this page are exact" not in page


def test_a_slice_with_exact_figures_says_so(loaded: tuple[Any, list[Any], datetime]) -> None:
    client, _, _ = loaded
    page = render_html(chart_data(client, Slice(scenario_id="doc-extract")))
    assert "All figures on this page are exact and final." in page
    assert "LOWER BOUND" not in page and "PROVISIONAL" not in page
    assert "costflow report: scenario doc-extract" in page


def test_one_day_one_cost_bin_one_role_reads_as_days_a_bar_and_a_named_role(
    data_dir: Path,
) -> None:
    """A new user's day one: the day axis is ticked in days, the single cost bin is a bar
    inside a wider axis with one quantile label, and the single role is named."""
    with chdb_database(data_dir / "clickhouse", "day1") as client:
        load_one_day(client)
        data = chart_data(client, Slice())
    assert len({b.cost_bin for b in data.bins}) == 1 and len(data.roles) == 1
    charts = figures(render_html(data))

    _, layout = charts["chart-cpao"]
    day = ONE_DAY.date().isoformat()
    axis = layout["xaxis"]
    assert axis["type"] == "date" and axis["tickformat"] == "%Y-%m-%d"
    assert axis["dtick"] == 86_400_000 and axis["tick0"] == day
    low, high = (datetime.fromisoformat(x) for x in axis["range"])
    assert low < datetime.fromisoformat(day) < high and (high - low).days >= 1

    traces, layout = charts["chart-tails"]
    (histogram,) = [t for t in traces if t.get("fill") == "tozeroy"]
    low_x, high_x = layout["xaxis"]["range"]  # log10 units
    bin_low, bin_high = min(histogram["x"]), max(histogram["x"])
    assert high_x - low_x >= 1
    assert low_x < math.log10(bin_low) and math.log10(bin_high) < high_x
    assert (math.log10(bin_high) - math.log10(bin_low)) / (high_x - low_x) < 0.1
    labels = [t["text"][1] for t in traces if t["name"] in ("p50", "p95", "p99") and t["text"][1]]
    assert labels == ["p50 = p95 = p99 $0.0004"]

    traces, layout = charts["chart-roles"]
    assert layout["showlegend"] is True
    assert [t["name"] for t in traces] == ["generator"]


def test_report_html_on_an_empty_database_writes_a_page_without_charts(
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pipeline.cli import main

    monkeypatch.setenv("COSTFLOW_DATA_DIR", str(data_dir))
    monkeypatch.setenv("COSTFLOW_CLICKHOUSE_DATABASE", f"cli_{uuid.uuid4().hex[:8]}")
    assert main(["migrate"]) == 0
    target = tmp_path / "out" / "report.html"
    assert main(["report", "--html", str(target)]) == 0
    err = capsys.readouterr().err
    assert f"HTML report: {target}" in err
    page = target.read_text(encoding="utf-8")
    assert "No tasks in this slice." in page and figures(page) == {}
