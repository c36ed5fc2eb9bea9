"""The report as one self-contained HTML page of plotly charts (``costflow report --html``).

Input is :class:`pipeline.query.charts.ChartData`; output is a ``str`` holding the whole
page, plotly.js inlined once (about 5 MB), so it opens offline and from a mail
attachment. Money stays ``Decimal`` until it becomes a chart coordinate (``float``,
in the calls' billing currency); hover texts carry the Decimal rounded for reading.
A figure that is not exact says so beside its chart, with its reason, as the terminal
report does: ``>=`` lower bounds for calls without a complete price, *provisional* for
tasks still inside their outcome window.

Each chart is plotly's ``<div class="plotly-graph-div" id="chart-...">``, which
plotly.js fills with its ``svg.main-svg``; the ids are stable, so tests can read a
chart's data back from the page (:data:`CHART_IDS`, plus ``chart-ab-<n>`` per A/B
comparison).
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pipeline.query.analytics import Slice
from pipeline.query.charts import CacheLine, ChartData, CostBin
from pipeline.query.compare import Comparison
from pipeline.render.money import usd

CHART_IDS = ("chart-cpao", "chart-tails", "chart-waste", "chart-roles", "chart-cache")
# The costflow report's marks: a lower bound, and the outcome categories' colours.
AT_LEAST = "≥"
OUTCOME_COLOURS = {
    "accepted": "#2ca02c",
    "pending": "#9edae5",
    "rejected": "#ff7f0e",
    "failed": "#d62728",
    "unresolved": "#8c564b",
}
QUANTILE_COLOURS = {"p50": "#2ca02c", "p95": "#ff7f0e", "p99": "#d62728"}
# The histogram shows 20 bins per decade (~12% wide): the stored 1% bins are too fine
# to read as bars; the quantile lines keep their 1% precision.
DISPLAY_BINS_PER_DECADE = 20
_CONFIG = {"displaylogo": False, "responsive": True}
_LEGEND_ON_TOP = {"orientation": "h", "x": 0, "y": 1.02, "xanchor": "left", "yanchor": "bottom"}
_TEMPLATE = "plotly_white"


class _Money:
    """Reads an amount in the report's currency: ``$1,234.5678`` for USD, else
    ``1,234.5678 EUR``; ``n/a`` for None."""

    def __init__(self, currencies: list[str]) -> None:
        self.code = currencies[0] if len(currencies) == 1 else "USD"
        # Several currencies cannot happen with one book; if it did, the sums would mix
        # them, so the page says so rather than label them as one.
        self.mixed = len(currencies) > 1

    def __call__(self, value: Decimal | None, places: int = 4) -> str:
        if self.code == "USD" or value is None:
            return usd(value, places)
        return f"{value.quantize(Decimal(1).scaleb(-places)):,} {self.code}"


def _f(value: Decimal | None) -> float | None:
    """The chart boundary: Decimal money becomes a float coordinate here only."""
    return None if value is None else float(value)


def _name(scenario: str) -> str:
    return scenario or "(none)"


def render_html(
    data: ChartData, notes: list[str] | None = None, generated_at: datetime | None = None
) -> str:
    """The page for ``data``; ``notes`` are shown at the top (e.g. the pipeline has not
    finished). Pure: no I/O."""
    money = _Money(data.currencies)
    sections: list[str] = []
    first = True

    def chart(fig: go.Figure, div_id: str) -> str:
        nonlocal first
        margin = {"l": 70, "r": 30, "t": 50, "b": 50}
        # A figure's own margin (room for its annotations) wins over the default.
        fig.update_layout(
            template=_TEMPLATE,
            margin={k: v for k, v in margin.items() if fig.layout.margin[k] is None},
        )
        out = fig.to_html(full_html=False, include_plotlyjs=first, div_id=div_id, config=_CONFIG)
        first = False
        return f'<div class="chart-box" data-chart="{div_id}">{out}</div>'

    incomplete = {
        line.scenario_id: line.unpriced_calls for line in data.summary if line.unpriced_calls
    }
    sections.append(_headline(data, money, incomplete, notes or []))

    # 1. Cost per accepted outcome, daily.
    if data.daily:
        sections.append(
            _section(
                "Cost per accepted outcome, by scenario and day",
                "Total cost of the tasks that started that UTC day (failed and retried calls "
                "included) divided by how many of them were accepted. Hollow markers: "
                "provisional days (tasks still inside their outcome window).",
                _cpao_notes(data, money),
                chart(_cpao_figure(data, money), "chart-cpao"),
            )
        )
    # 2. Tails.
    if data.bins:
        sections.append(
            _section(
                "Cost per task: distribution and tail",
                f"Tasks per cost band (log scale, {DISPLAY_BINS_PER_DECADE} bands per decade); "
                "p50/p95/p99 are the mean cost of the 1% bin holding the nearest-rank task "
                "(within 1% of exact).",
                _tail_notes(data, incomplete),
                chart(_tails_figure(data, money, incomplete), "chart-tails"),
            )
        )
    # 3. Waste.
    if data.outcomes:
        sections.append(
            _section(
                "Where the money went: cost by outcome (waste share)",
                "Share of each scenario's task cost by the task's outcome. Waste = rejected + "
                "failed + unresolved; pending tasks are not waste yet.",
                _waste_notes(data),
                chart(_waste_figure(data, money), "chart-waste"),
            )
        )
    # 4. Roles.
    if data.roles:
        sections.append(
            _section(
                "Cost by role of the call inside its task",
                "Call cost per scenario (as each call reported it) and role: the hidden chains.",
                _call_notes(data.call_unpriced, "role"),
                chart(_roles_figure(data, money), "chart-roles"),
            )
        )
    # 5. Cache.
    if data.cache:
        uncached = [f"{x.provider}/{x.model}" for x in data.cache if x not in _cached(data)]
        sections.append(
            _section(
                "Prompt cache savings, by model",
                "Saved: cache-read tokens at the input rate minus what they cost. Premium: what "
                "cache writes cost above the input rate. Net = saved - premium."
                + (f" Without cache use: {', '.join(uncached)}." if uncached else ""),
                [
                    f"{AT_LEAST} {line.provider}/{line.model}: {line.unpriced_calls:,} calls "
                    "have no complete price, so its savings are of the priced calls only"
                    for line in _cached(data)
                    if line.unpriced_calls
                ],
                chart(_cache_figure(data, money), "chart-cache") if _cached(data) else "",
            )
        )
    # 6. A/B.
    if data.comparisons:
        for n, (scenario, result) in enumerate(data.comparisons):
            figure, ab_notes = _ab_figure(scenario, result, money)
            sections.append(
                _section(
                    f"A/B: {scenario}, experiment {result.a or '?'} vs {result.b or '?'}",
                    "Decided tasks only (outcome known or window closed). The difference in cost "
                    "per accepted outcome comes with its 95% interval (delta method); it is "
                    "outside the noise when the interval excludes zero and each arm has at "
                    "least 30 accepted outcomes.",
                    ab_notes,
                    chart(figure, f"chart-ab-{n}") if figure is not None else "",
                )
            )
    else:
        sections.append(
            _section(
                "A/B comparison",
                "No scenario in this slice has two experiment labels (attributes.experiment).",
                [],
                "",
            )
        )
    at = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    body = "\n".join(sections)
    return _PAGE.format(
        title=html.escape(f"costflow report: {_describe(data.where)}"),
        generated=html.escape(at),
        currency=html.escape(money.code),
        body=body,
    )


def _describe(where: Slice) -> str:
    parts = [
        f"{name} {value}"
        for name, value in (
            ("scenario", where.scenario_id),
            ("owner", where.owner),
            ("environment", where.environment),
            ("since", where.since),
            ("until", where.until),
        )
        if value is not None
    ]
    return ", ".join(parts) or "all data"


def _section(title: str, caption: str, notes: list[str], chart_html: str) -> str:
    note_html = "".join(f'<p class="incomplete">{html.escape(n)}</p>' for n in notes)
    return (
        f'<section><h2>{html.escape(title)}</h2><p class="caption">{html.escape(caption)}</p>'
        f"{note_html}{chart_html}</section>"
    )


def _headline(data: ChartData, money: _Money, incomplete: dict[str, int], notes: list[str]) -> str:
    stats = data.health
    warnings = list(notes)
    if money.mixed:
        warnings.append(
            f"MIXED CURRENCIES: priced calls are in {', '.join(data.currencies)}; the sums "
            "below add them as one."
        )
    if incomplete:
        part = stats.get("partly_priced_calls")
        warnings.append(
            f"LOWER BOUND ({AT_LEAST}): "
            + ", ".join(f"{_name(s)} {n:,}" for s, n in sorted(incomplete.items()))
            + " calls have no complete price in the book (what is missing is unknown, not 0"
            + (f"; {part:,} of them count the part that could be priced" if part else "")
            + "). Add the prices to the book, then `costflow reprice`."
        )
    pending = {line.scenario_id: line.pending for line in data.summary if line.pending}
    if pending:
        warnings.append(
            "PROVISIONAL: "
            + ", ".join(f"{_name(s)} {n:,}" for s, n in sorted(pending.items()))
            + " tasks are still inside their outcome window; their outcome, and so cost per "
            "accepted outcome and waste, can still change."
        )
    if stats.get("diverged_tasks"):
        warnings.append(
            f"INCOMPLETE: {stats['diverged_tasks']:,} tasks lack {stats['pending_events']:,} "
            "events that stage 1 applied (state diverged from the stored rows); see "
            "`costflow state restore` (docs/design.md, Recovery)."
        )
    rows = []
    for line in data.summary:
        mark = AT_LEAST if line.unpriced_calls else ""
        state = "incomplete" if line.unpriced_calls else "final" if line.final else "provisional"
        rows.append(
            "<tr>"
            f"<td>{html.escape(_name(line.scenario_id))}</td><td>{line.tasks:,}</td>"
            f"<td>{line.accepted:,}</td><td>{line.acceptance_rate:.1%}</td>"
            f"<td>{mark}{html.escape(money(line.total_cost, 2))}</td>"
            f"<td>{mark}{html.escape(money(line.cost_per_task))}</td>"
            f"<td>{mark}{html.escape(money(line.cost_per_accepted_outcome))}</td>"
            f'<td class="{state}">{state}</td></tr>'
        )
    table = (
        "<table><thead><tr><th>scenario</th><th>tasks</th><th>accepted</th><th>accept %</th>"
        f"<th>total cost ({html.escape(money.code)})</th><th>cost/task</th>"
        "<th>cost/accepted outcome</th><th>figures</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
    if not data.summary:
        table = "<p>No tasks in this slice.</p>"
    status = (
        f"calls: {stats['calls']:,} · unpriced: {stats['unpriced_calls']:,} · "
        f"dead-lettered: {stats['dead_letters']:,} · priced with: "
        f"{', '.join(stats['price_books']) or '-'}"
    )
    verdict = (
        '<p class="exact">All figures on this page are exact and final.</p>'
        if not warnings
        else "".join(f'<p class="incomplete">{html.escape(w)}</p>' for w in warnings)
    )
    return (
        "<section><h2>Cost per accepted outcome, by scenario</h2>"
        f'{verdict}{table}<p class="caption">{html.escape(status)}</p></section>'
    )


def _cpao_notes(data: ChartData, money: _Money) -> list[str]:
    notes = []
    for scenario in sorted({d.scenario_id for d in data.daily}):
        days = [d for d in data.daily if d.scenario_id == scenario]
        unpriced = sum(d.unpriced_calls for d in days)
        provisional = [d for d in days if d.pending]
        if unpriced:
            notes.append(
                f"{AT_LEAST} {_name(scenario)}: {unpriced:,} calls without a complete price; "
                "its points are lower bounds."
            )
        if provisional:
            notes.append(
                f"Provisional: {_name(scenario)} has {sum(d.pending for d in provisional):,} "
                f"tasks still inside their outcome window on {len(provisional)} days."
            )
        none = [d.day.isoformat() for d in days if d.cost_per_accepted_outcome is None]
        if none:
            notes.append(
                f"{_name(scenario)}: no accepted outcome on {', '.join(none)} (no point; the "
                "cost is in the other charts)."
            )
    return notes


def _cpao_figure(data: ChartData, money: _Money) -> go.Figure:
    fig = go.Figure()
    by_scenario: dict[str, list[Any]] = defaultdict(list)
    for d in data.daily:
        by_scenario[d.scenario_id].append(d)
    for scenario, days in sorted(by_scenario.items()):
        unpriced = sum(d.unpriced_calls for d in days)
        fig.add_trace(
            go.Scatter(
                name=_name(scenario) + (f" ({AT_LEAST}, unpriced calls)" if unpriced else ""),
                x=[d.day.isoformat() for d in days],
                y=[_f(d.cost_per_accepted_outcome) for d in days],
                mode="lines+markers",
                marker={
                    "size": 8,
                    "symbol": ["circle-open" if d.pending else "circle" for d in days],
                },
                customdata=[
                    [
                        (AT_LEAST if d.unpriced_calls else "") + money(d.cost_per_accepted_outcome),
                        f"{d.accepted:,} of {d.tasks:,}",
                        "provisional" if d.pending else "final",
                    ]
                    for d in days
                ],
                hovertemplate="%{x}: %{customdata[0]} per accepted outcome<br>"
                "accepted %{customdata[1]} tasks, %{customdata[2]}<extra>"
                + html.escape(_name(scenario))
                + "</extra>",
            )
        )
    fig.update_layout(
        height=420,
        # Scenarios differ by orders of magnitude (cents against tenths of a cent): on a
        # linear axis the cheap ones lie flat on zero.
        yaxis={"title": f"{money.code} per accepted outcome (log scale)", "type": "log"},
        xaxis_title="UTC day of the task's first event",
        legend_title_text="scenario",
    )
    return fig


def _tail_notes(data: ChartData, incomplete: dict[str, int]) -> list[str]:
    notes = [
        f"{AT_LEAST} {_name(s)}: tasks with unpriced calls count at their priced part, so its "
        "quantiles are lower bounds."
        for s in sorted(incomplete)
    ]
    zero: dict[str, int] = defaultdict(int)
    for b in data.bins:
        if b.upper == 0:
            zero[b.scenario_id] += b.tasks
    notes += [
        f"{_name(s)}: {n:,} tasks cost nothing and cannot sit on a log axis (not drawn)."
        for s, n in sorted(zero.items())
    ]
    return notes


def display_bins(bins: list[CostBin]) -> list[tuple[float, float, int]]:
    """A scenario's 1% bins regrouped into display bands: ``(lower, upper, tasks)`` in
    currency units, contiguous from the cheapest band to the costliest (empty bands
    included, so the step line drops to zero); zero-cost tasks left out."""
    counts: dict[int, int] = defaultdict(int)
    for b in bins:
        if b.upper > 0:
            # The band of the bin's lower bound; a 1% bin straddling a band edge counts
            # in the lower band (within 1%).
            counts[math.floor(math.log10(b.lower) * DISPLAY_BINS_PER_DECADE + 1e-9)] += b.tasks
    if not counts:
        return []
    step = 1 / DISPLAY_BINS_PER_DECADE
    return [
        (10 ** (k * step), 10 ** ((k + 1) * step), counts.get(k, 0))
        for k in range(min(counts), max(counts) + 1)
    ]


def _tails_figure(data: ChartData, money: _Money, incomplete: dict[str, int]) -> go.Figure:
    by_scenario: dict[str, list[CostBin]] = defaultdict(list)
    for b in data.bins:
        by_scenario[b.scenario_id].append(b)
    tails = {t.scenario_id: t for t in data.tails}
    scenarios = sorted(by_scenario)
    fig = make_subplots(
        rows=len(scenarios),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.25 / max(len(scenarios), 1),
        subplot_titles=[
            f"{_name(s)}: {sum(b.tasks for b in by_scenario[s]):,} tasks" for s in scenarios
        ],
    )
    for row, scenario in enumerate(scenarios, start=1):
        bands = display_bins(by_scenario[scenario])
        if bands:
            xs = [lo for lo, _, _ in bands] + [bands[-1][1]]
            ys = [n for _, _, n in bands] + [bands[-1][2]]
            fig.add_trace(
                go.Scatter(
                    name=_name(scenario),
                    x=xs,
                    y=ys,
                    mode="lines",
                    line={"shape": "hv", "color": "#1f77b4"},
                    fill="tozeroy",
                    showlegend=False,
                    hovertemplate=f"from %{{x:.4g}} {money.code}: %{{y}} tasks<extra></extra>",
                ),
                row=row,
                col=1,
            )
        tail = tails.get(scenario)
        if tail is None:
            continue
        top = max((n for _, _, n in bands), default=1)
        mark = AT_LEAST if scenario in incomplete else ""
        for level, (name, value) in enumerate(
            (("p50", tail.p50), ("p95", tail.p95), ("p99", tail.p99))
        ):
            label = f"{name} {mark}{money(value)}"
            height = top * (1.15 - 0.18 * level)
            fig.add_trace(
                go.Scatter(
                    name=name,
                    legendgroup=name,
                    showlegend=row == 1,
                    x=[_f(value), _f(value)],
                    y=[0, height],
                    mode="lines+text",
                    text=["", label],
                    textposition="middle right",
                    cliponaxis=False,
                    line={"color": QUANTILE_COLOURS[name], "dash": "dash", "width": 2},
                    hovertemplate=f"{html.escape(label)}<extra>{html.escape(_name(scenario))}</extra>",
                ),
                row=row,
                col=1,
            )
        fig.update_yaxes(title_text="tasks", rangemode="tozero", row=row, col=1)
    fig.update_xaxes(type="log")
    fig.update_xaxes(
        title_text=f"cost per task ({money.code}, log scale)", row=len(scenarios), col=1
    )
    fig.update_layout(
        height=140 + 220 * len(scenarios),
        legend={"title_text": "quantile", **_LEGEND_ON_TOP},
        margin={"t": 80},
    )
    return fig


def _waste_notes(data: ChartData) -> list[str]:
    notes = []
    for line in data.outcomes:
        if line.unpriced_calls:
            notes.append(
                f"{AT_LEAST} {_name(line.scenario_id)}: {line.unpriced_calls:,} calls without a "
                "complete price; its shares are of the recorded cost and not exact."
            )
        if line.pending:
            notes.append(
                f"Provisional: {_name(line.scenario_id)} has {line.pending:,} pending tasks "
                "whose cost may yet become waste or accepted."
            )
    return notes


def _waste_figure(data: ChartData, money: _Money) -> go.Figure:
    fig = go.Figure()
    lines = sorted(data.outcomes, key=lambda line: line.scenario_id, reverse=True)
    names = [_name(line.scenario_id) for line in lines]
    for outcome in ("accepted", "pending", "rejected", "failed", "unresolved"):
        costs = [getattr(line, f"{outcome}_cost") for line in lines]
        fig.add_trace(
            go.Bar(
                name=outcome,
                orientation="h",
                y=names,
                x=[
                    _f(cost / line.total_cost * 100) if line.total_cost else 0.0
                    for cost, line in zip(costs, lines, strict=True)
                ],
                marker_color=OUTCOME_COLOURS[outcome],
                customdata=[money(cost, 2) for cost in costs],
                hovertemplate=f"{outcome}: %{{x:.1f}}% (%{{customdata}})<extra>%{{y}}</extra>",
            )
        )
    for line, name in zip(lines, names, strict=True):
        share = line.waste_share
        mark = AT_LEAST if line.unpriced_calls else ""
        fig.add_annotation(
            x=100,
            y=name,
            xanchor="left",
            showarrow=False,
            text=(f" waste {share:.1%}" if share is not None else " no cost")
            + f" of {mark}{money(line.total_cost, 2)}",
        )
    fig.update_layout(
        barmode="stack",
        height=140 + 60 * len(lines),
        xaxis={"title": "share of the scenario's task cost (%)", "range": [0, 100]},
        margin={"r": 190, "t": 60},
        legend={"title_text": "outcome", "traceorder": "normal", **_LEGEND_ON_TOP},
    )
    return fig


def _call_notes(unpriced: dict[str, int], what: str) -> list[str]:
    return [
        f"{AT_LEAST} {_name(s)}: {n:,} of its calls have no complete price; its cost by {what} "
        "counts only what could be priced."
        for s, n in sorted(unpriced.items())
    ]


def _roles_figure(data: ChartData, money: _Money) -> go.Figure:
    fig = go.Figure()
    scenarios = sorted({r.scenario_id for r in data.roles}, reverse=True)
    cost = {(r.scenario_id, r.role): r for r in data.roles}
    for role in sorted({r.role for r in data.roles}):
        found = [cost.get((s, role)) for s in scenarios]
        fig.add_trace(
            go.Bar(
                name=role or "(no role)",
                orientation="h",
                y=[_name(s) for s in scenarios],
                x=[_f(r.total_cost) if r else 0.0 for r in found],
                customdata=[
                    [money(r.total_cost, 2), f"{r.calls:,}"] if r else [money(Decimal(0), 2), "0"]
                    for r in found
                ],
                hovertemplate=(
                    f"{html.escape(role or '(no role)')}: %{{customdata[0]}} in "
                    "%{customdata[1]} calls<extra>%{y}</extra>"
                ),
            )
        )
    fig.update_layout(
        barmode="stack",
        height=140 + 60 * len(scenarios),
        xaxis_title=f"call cost ({money.code})",
        legend_title_text="role",
    )
    return fig


def _cache_figure(data: ChartData, money: _Money) -> go.Figure:
    fig = go.Figure()
    cached = _cached(data)
    models = [f"{line.provider}/{line.model}" for line in cached]
    hit = ["n/a" if line.hit_rate is None else f"{line.hit_rate:.1%}" for line in cached]
    for name, values, colour in (
        ("saved by cache reads", [line.read_savings for line in cached], "#2ca02c"),
        ("cache-write premium", [-line.write_premium for line in cached], "#d62728"),
    ):
        fig.add_trace(
            go.Bar(
                name=name,
                x=models,
                y=[_f(v) for v in values],
                marker_color=colour,
                customdata=[[money(v, 2), h] for v, h in zip(values, hit, strict=True)],
                hovertemplate=f"{name}: %{{customdata[0]}} (cache hit rate %{{customdata[1]}})"
                "<extra>%{x}</extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            name="net savings",
            x=models,
            y=[_f(line.net_savings) for line in cached],
            mode="markers+text",
            marker={"symbol": "diamond", "size": 12, "color": "#000000"},
            text=[
                (AT_LEAST if line.unpriced_calls else "") + money(line.net_savings, 2)
                for line in cached
            ],
            textposition="top center",
            hovertemplate="net: %{text}<extra>%{x}</extra>",
        )
    )
    fig.update_layout(
        barmode="relative",
        height=440,
        yaxis_title=f"{money.code} (against the input rate)",
        legend={"title_text": "cache", **_LEGEND_ON_TOP},
    )
    return fig


def _cached(data: ChartData) -> list[CacheLine]:
    """The models that read or wrote the prompt cache (the others have nothing to show)."""
    return [line for line in data.cache if line.cache_read_tokens or line.cache_write_tokens]


def _ab_figure(
    scenario: str, result: Comparison, money: _Money
) -> tuple[go.Figure | None, list[str]]:
    """The two arms' cost per accepted outcome and A - B with its 95% interval; notes say
    why a part is missing or not exact."""
    notes = [
        f"{AT_LEAST} arm {arm.arm}: {arm.unpriced_calls:,} calls without a complete price; its "
        "cost per accepted outcome is a lower bound and the difference may move."
        for arm in result.arms
        if arm.arm in (result.a, result.b) and arm.unpriced_calls
    ]
    if result.sums is None or result.difference is None:
        return None, [*notes, f"{scenario}: no two arms to compare."]
    (sa, sb), d = result.sums, result.difference
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=[
            "cost per accepted outcome (decided tasks)",
            "A - B per accepted outcome, 95% interval",
        ],
    )
    arms = [f"A: {result.a}", f"B: {result.b}"]
    values = [sa.cost_per_accepted_outcome, sb.cost_per_accepted_outcome]
    fig.add_trace(
        go.Bar(
            name="cost per accepted outcome",
            x=arms,
            y=[_f(v) for v in values],
            text=[money(v) for v in values],
            textposition="outside",
            marker_color=["#1f77b4", "#9467bd"],
            customdata=[f"{s.accepted:,} accepted of {s.tasks:,} decided tasks" for s in (sa, sb)],
            hovertemplate="%{x}: %{text}<br>%{customdata}<extra></extra>",
            showlegend=False,
        ),
        row=1,
        col=1,
    )
    fig.update_yaxes(title_text=f"{money.code} per accepted outcome", row=1, col=1)
    if d.difference is None or d.low is None or d.high is None:
        notes.append(f"A - B: {d.verdict}.")
    else:
        fig.add_trace(
            go.Scatter(
                name="A - B",
                x=["A - B"],
                y=[d.difference],
                mode="markers",
                marker={"size": 14, "color": "#000000"},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [d.high - d.difference],
                    "arrayminus": [d.difference - d.low],
                    "thickness": 2,
                    "width": 12,
                },
                customdata=[[f"{d.low:+.4f}", f"{d.high:+.4f}"]],
                hovertemplate=f"A - B = %{{y:+.4f}} {money.code}<br>"
                "95% interval [%{customdata[0]}, %{customdata[1]}]<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=2,
        )
        fig.add_hline(y=0, line_dash="dot", line_color="#7f7f7f", row=1, col=2)
        fig.update_yaxes(title_text=f"{money.code} per accepted outcome", row=1, col=2)
        notes.append(
            f"Verdict: {d.verdict}. A - B = {d.difference:+.4f} {money.code} per accepted "
            f"outcome, 95% interval [{d.low:+.4f}, {d.high:+.4f}]."
        )
    fig.update_layout(height=420)
    return fig, notes


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 16px 24px; color: #222; }}
h1 {{ font-size: 1.5em; margin-bottom: 0; }}
h2 {{ font-size: 1.15em; margin: 28px 0 4px; border-bottom: 1px solid #ddd; }}
.caption {{ color: #555; font-size: 0.9em; margin: 4px 0; }}
.incomplete {{ background: #fff4e0; border-left: 4px solid #ff9800; padding: 4px 8px;
              margin: 4px 0; font-size: 0.9em; }}
.exact {{ background: #e8f5e9; border-left: 4px solid #2ca02c; padding: 4px 8px; }}
table {{ border-collapse: collapse; margin: 8px 0; font-size: 0.92em; }}
th, td {{ padding: 4px 10px; text-align: right; border-bottom: 1px solid #eee; }}
th:first-child, td:first-child {{ text-align: left; }}
td.provisional, td.incomplete {{ color: #b26a00; font-weight: 600; }}
.chart-box {{ margin: 8px 0 16px; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="caption">Generated {generated} by costflow from the ClickHouse views; money in
{currency}. Hover a chart for exact figures.</p>
{body}
</body>
</html>
"""
