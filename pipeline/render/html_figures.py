"""The charts of the HTML report: one plotly figure per question, from
:class:`pipeline.query.charts.ChartData` (pure: no I/O, no SQL).

Money stays ``Decimal`` until :func:`coordinate` turns it into a chart coordinate
(``float``, in the calls' billing currency); hover texts carry the Decimal rounded for
reading. Figures whose numbers are lower bounds say so in their legends (``≥``).
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pipeline.query.analytics import Tails
from pipeline.query.charts import CacheLine, ChartData, CostBin
from pipeline.query.compare import Comparison
from pipeline.render.money import usd

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

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}

LEGEND_ON_TOP = {"orientation": "h", "x": 0, "y": 1.02, "xanchor": "left", "yanchor": "bottom"}

TEMPLATE = "plotly_white"

DAY_MS = 86_400_000

# At most this many day ticks on the daily chart: with more days the ticks step by
# whole days (2, 3, ...) rather than crowd, and never fall between days.
MAX_DAY_TICKS = 12


class PageMoney:
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


def coordinate(value: Decimal | None) -> float | None:
    """The chart boundary: Decimal money becomes a float coordinate here only."""
    return None if value is None else float(value)


def named(scenario: str) -> str:
    """A scenario as the page shows it: calls without one are "(none)"."""
    return scenario or "(none)"


def cpao_figure(data: ChartData, money: PageMoney) -> go.Figure:
    fig = go.Figure()
    by_scenario: dict[str, list[Any]] = defaultdict(list)
    for d in data.daily:
        by_scenario[d.scenario_id].append(d)
    for scenario, days in sorted(by_scenario.items()):
        unpriced = sum(d.unpriced_calls for d in days)
        fig.add_trace(
            go.Scatter(
                name=named(scenario) + (f" ({AT_LEAST}, unpriced calls)" if unpriced else ""),
                x=[d.day.isoformat() for d in days],
                y=[coordinate(d.cost_per_accepted_outcome) for d in days],
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
                + html.escape(named(scenario))
                + "</extra>",
            )
        )
    fig.update_layout(
        height=420,
        # Scenarios differ by orders of magnitude (cents against tenths of a cent): on a
        # linear axis the cheap ones lie flat on zero.
        yaxis={"title": f"{money.code} per accepted outcome (log scale)", "type": "log"},
        xaxis=day_axis([d.day for d in data.daily]),
        legend_title_text="scenario",
    )
    return fig


def day_axis(days: list[date]) -> dict[str, Any]:
    """A date x axis ticked in whole UTC days, however few: left to plotly, one day's
    single point gets a millisecond-wide range ticked in fractions of a second around
    midnight, and a few days get ticks every 12 hours."""
    first, last = min(days), max(days)
    step = max(1, math.ceil(((last - first).days + 1) / MAX_DAY_TICKS))
    # Half a day either side keeps the first and last points off the plot's edges.
    low = datetime.combine(first, time()) - timedelta(hours=12)
    high = datetime.combine(last, time()) + timedelta(hours=12)
    return {
        "title": {"text": "UTC day of the task's first event"},
        "type": "date",
        "tickformat": "%Y-%m-%d",
        "hoverformat": "%Y-%m-%d",
        "tick0": first.isoformat(),
        "dtick": step * DAY_MS,
        "range": [low.isoformat(), high.isoformat()],
    }


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


def quantile_marks(
    tail: Tails, money: PageMoney, mark: str
) -> list[tuple[str, Decimal, int, str | None]]:
    """``(quantile, value, level, label)`` for p50, p95 and p99. Quantiles that read the
    same (one cost bin, or a narrow distribution) share one label, "p50 = p95 = p99
    $0.0004", on the first of them (None on the others): three labels saying the same
    at one x read as a stacking glitch. ``level`` counts the distinct labels, so the
    next label sits one step lower."""
    marks: list[tuple[str, Decimal, int, str | None]] = []
    groups: list[tuple[list[str], str]] = []
    for name, value in (("p50", tail.p50), ("p95", tail.p95), ("p99", tail.p99)):
        shown = f"{mark}{money(value)}"
        if not groups or groups[-1][1] != shown:
            groups.append(([], shown))
        groups[-1][0].append(name)
        marks.append((name, value, len(groups) - 1, None))
    labels = {names[0]: f"{' = '.join(names)} {shown}" for names, shown in groups}
    return [(name, value, level, labels.get(name)) for name, value, level, _ in marks]


def narrow_cost_axis(data: ChartData) -> dict[str, Any]:
    """The tail chart's x axis when the costs span less than a decade: a decade around
    them (log10 units), ticked at 1, 2 and 5 of each power of ten with the value
    written out; empty (plotly's own) otherwise. Autoranged, one 1% bin fills the
    whole axis and reads as costs spread evenly from edge to edge; and plotly's ticks
    on a one-decade log axis are bare digits ("2 3 4") that name no amount."""
    costs = [x for b in data.bins for x in (b.lower, b.upper) if x > 0]
    costs += [float(v) for t in data.tails for v in (t.p50, t.p95, t.p99) if v > 0]
    if not costs:
        return {}
    low, high = math.log10(min(costs)), math.log10(max(costs))
    if high - low >= 1:
        return {}
    middle = (low + high) / 2
    low, high = middle - 0.5, middle + 0.5
    ticks = [
        m * 10.0**k
        for k in range(math.floor(low), math.ceil(high) + 1)
        for m in (1, 2, 5)
        if low <= math.log10(m) + k <= high
    ]
    return {
        "range": [low, high],
        "tickmode": "array",
        "tickvals": ticks,
        "ticktext": [f"{t:g}" for t in ticks],
    }


def tails_figure(data: ChartData, money: PageMoney, incomplete: dict[str, int]) -> go.Figure:
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
            f"{named(s)}: {sum(b.tasks for b in by_scenario[s]):,} tasks" for s in scenarios
        ],
    )
    for row, scenario in enumerate(scenarios, start=1):
        bands = display_bins(by_scenario[scenario])
        if bands:
            xs = [lo for lo, _, _ in bands] + [bands[-1][1]]
            ys = [n for _, _, n in bands] + [bands[-1][2]]
            fig.add_trace(
                go.Scatter(
                    name=named(scenario),
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
        for name, value, level, label in quantile_marks(tail, money, mark):
            height = top * (1.15 - 0.18 * level)
            fig.add_trace(
                go.Scatter(
                    name=name,
                    legendgroup=name,
                    showlegend=row == 1,
                    x=[coordinate(value), coordinate(value)],
                    y=[0, height],
                    mode="lines+text",
                    # Only the first quantile of a group that reads the same carries
                    # the label; the group's lines coincide.
                    text=["", label or ""],
                    textposition="middle right",
                    cliponaxis=False,
                    line={"color": QUANTILE_COLOURS[name], "dash": "dash", "width": 2},
                    hovertemplate=f"{html.escape(f'{name} {mark}{money(value)}')}"
                    f"<extra>{html.escape(named(scenario))}</extra>",
                ),
                row=row,
                col=1,
            )
        fig.update_yaxes(title_text="tasks", rangemode="tozero", row=row, col=1)
    fig.update_xaxes(type="log", **narrow_cost_axis(data))
    fig.update_xaxes(
        title_text=f"cost per task ({money.code}, log scale)", row=len(scenarios), col=1
    )
    fig.update_layout(
        height=140 + 220 * len(scenarios),
        legend={"title_text": "quantile", **LEGEND_ON_TOP},
        margin={"t": 80},
    )
    return fig


def waste_figure(data: ChartData, money: PageMoney) -> go.Figure:
    fig = go.Figure()
    lines = sorted(data.outcomes, key=lambda line: line.scenario_id, reverse=True)
    names = [named(line.scenario_id) for line in lines]
    for outcome in ("accepted", "pending", "rejected", "failed", "unresolved"):
        costs = [getattr(line, f"{outcome}_cost") for line in lines]
        fig.add_trace(
            go.Bar(
                name=outcome,
                orientation="h",
                y=names,
                x=[
                    coordinate(cost / line.total_cost * 100) if line.total_cost else 0.0
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
        legend={"title_text": "outcome", "traceorder": "normal", **LEGEND_ON_TOP},
    )
    return fig


def roles_figure(data: ChartData, money: PageMoney) -> go.Figure:
    fig = go.Figure()
    scenarios = sorted({r.scenario_id for r in data.roles}, reverse=True)
    cost = {(r.scenario_id, r.role): r for r in data.roles}
    for role in sorted({r.role for r in data.roles}):
        found = [cost.get((s, role)) for s in scenarios]
        fig.add_trace(
            go.Bar(
                name=role or "(no role)",
                orientation="h",
                y=[named(s) for s in scenarios],
                x=[coordinate(r.total_cost) if r else 0.0 for r in found],
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
        # plotly hides the legend of a single trace, and then nothing names the role.
        showlegend=True,
    )
    return fig


def cache_figure(data: ChartData, money: PageMoney) -> go.Figure:
    fig = go.Figure()
    cached = cached_lines(data)
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
                y=[coordinate(v) for v in values],
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
            y=[coordinate(line.net_savings) for line in cached],
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
        legend={"title_text": "cache", **LEGEND_ON_TOP},
    )
    return fig


def cached_lines(data: ChartData) -> list[CacheLine]:
    """The models that read or wrote the prompt cache (the others have nothing to show)."""
    return [line for line in data.cache if line.cache_read_tokens or line.cache_write_tokens]


def ab_figure(
    scenario: str, result: Comparison, money: PageMoney
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
            y=[coordinate(v) for v in values],
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
