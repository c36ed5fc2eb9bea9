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
from collections import defaultdict
from datetime import UTC, datetime

import plotly.graph_objects as go

from pipeline.query.analytics import Slice
from pipeline.query.charts import ChartData
from pipeline.render.html_figures import (
    AT_LEAST,
    DISPLAY_BINS_PER_DECADE,
    PLOTLY_CONFIG,
    TEMPLATE,
    PageMoney,
    ab_figure,
    cache_figure,
    cached_lines,
    cpao_figure,
    named,
    roles_figure,
    tails_figure,
    waste_figure,
)

CHART_IDS = ("chart-cpao", "chart-tails", "chart-waste", "chart-roles", "chart-cache")


def render_html(
    data: ChartData, notes: list[str] | None = None, generated_at: datetime | None = None
) -> str:
    """The page for ``data``; ``notes`` are shown at the top (e.g. the pipeline has not
    finished). Pure: no I/O."""
    money = PageMoney(data.currencies)
    sections: list[str] = []
    first = True

    def chart(fig: go.Figure, div_id: str) -> str:
        nonlocal first
        margin = {"l": 70, "r": 30, "t": 50, "b": 50}
        # A figure's own margin (room for its annotations) wins over the default.
        fig.update_layout(
            template=TEMPLATE,
            margin={k: v for k, v in margin.items() if fig.layout.margin[k] is None},
        )
        out = fig.to_html(
            full_html=False, include_plotlyjs=first, div_id=div_id, config=PLOTLY_CONFIG
        )
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
                chart(cpao_figure(data, money), "chart-cpao"),
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
                chart(tails_figure(data, money, incomplete), "chart-tails"),
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
                chart(waste_figure(data, money), "chart-waste"),
            )
        )
    # 4. Roles.
    if data.roles:
        sections.append(
            _section(
                "Cost by role of the call inside its task",
                "Call cost per scenario (as each call reported it) and role: the hidden chains.",
                _call_notes(data.call_unpriced, "role"),
                chart(roles_figure(data, money), "chart-roles"),
            )
        )
    # 5. Cache.
    if data.cache:
        uncached = [f"{x.provider}/{x.model}" for x in data.cache if x not in cached_lines(data)]
        sections.append(
            _section(
                "Prompt cache savings, by model",
                "Saved: cache-read tokens at the input rate minus what they cost. Premium: what "
                "cache writes cost above the input rate. Net = saved - premium."
                + (f" Without cache use: {', '.join(uncached)}." if uncached else ""),
                [
                    f"{AT_LEAST} {line.provider}/{line.model}: {line.unpriced_calls:,} calls "
                    "have no complete price, so its savings are of the priced calls only"
                    for line in cached_lines(data)
                    if line.unpriced_calls
                ],
                chart(cache_figure(data, money), "chart-cache") if cached_lines(data) else "",
            )
        )
    # 6. A/B.
    if data.comparisons:
        for n, (scenario, result) in enumerate(data.comparisons):
            figure, ab_notes = ab_figure(scenario, result, money)
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


def _headline(
    data: ChartData, money: PageMoney, incomplete: dict[str, int], notes: list[str]
) -> str:
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
            + ", ".join(f"{named(s)} {n:,}" for s, n in sorted(incomplete.items()))
            + " calls have no complete price in the book (what is missing is unknown, not 0"
            + (f"; {part:,} of them count the part that could be priced" if part else "")
            + "). Add the prices to the book, then `costflow reprice`."
        )
    pending = {line.scenario_id: line.pending for line in data.summary if line.pending}
    if pending:
        warnings.append(
            "PROVISIONAL: "
            + ", ".join(f"{named(s)} {n:,}" for s, n in sorted(pending.items()))
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
            f"<td>{html.escape(named(line.scenario_id))}</td><td>{line.tasks:,}</td>"
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
    status = (  # counted over the whole store, whatever the slice: say so
        f"Whole store: calls: {stats['calls']:,} · unpriced: {stats['unpriced_calls']:,} · "
        f"dead-lettered: {stats['dead_letters']:,} · priced with: "
        f"{', '.join(stats['price_books']) or '-'}"
    )
    verdict = (
        ""  # nothing in the slice: nothing to call exact
        if not data.summary and not warnings
        else '<p class="exact">All figures on this page are exact and final.</p>'
        if not warnings
        else "".join(f'<p class="incomplete">{html.escape(w)}</p>' for w in warnings)
    )
    return (
        "<section><h2>Cost per accepted outcome, by scenario</h2>"
        f'{verdict}{table}<p class="caption">{html.escape(status)}</p></section>'
    )


def _cpao_notes(data: ChartData, money: PageMoney) -> list[str]:
    notes = []
    for scenario in sorted({d.scenario_id for d in data.daily}):
        days = [d for d in data.daily if d.scenario_id == scenario]
        unpriced = sum(d.unpriced_calls for d in days)
        provisional = [d for d in days if d.pending]
        if unpriced:
            notes.append(
                f"{AT_LEAST} {named(scenario)}: {unpriced:,} calls without a complete price; "
                "its points are lower bounds."
            )
        if provisional:
            notes.append(
                f"Provisional: {named(scenario)} has {sum(d.pending for d in provisional):,} "
                f"tasks still inside their outcome window on {len(provisional)} days."
            )
        none = [d.day.isoformat() for d in days if d.cost_per_accepted_outcome is None]
        if none:
            notes.append(
                f"{named(scenario)}: no accepted outcome on {', '.join(none)} (no point; the "
                "cost is in the other charts)."
            )
    return notes


def _tail_notes(data: ChartData, incomplete: dict[str, int]) -> list[str]:
    notes = [
        f"{AT_LEAST} {named(s)}: tasks with unpriced calls count at their priced part, so its "
        "quantiles are lower bounds."
        for s in sorted(incomplete)
    ]
    zero: dict[str, int] = defaultdict(int)
    for b in data.bins:
        if b.upper == 0:
            zero[b.scenario_id] += b.tasks
    notes += [
        f"{named(s)}: {n:,} tasks cost nothing and cannot sit on a log axis (not drawn)."
        for s, n in sorted(zero.items())
    ]
    return notes


def _waste_notes(data: ChartData) -> list[str]:
    notes = []
    for line in data.outcomes:
        if line.unpriced_calls:
            notes.append(
                f"{AT_LEAST} {named(line.scenario_id)}: {line.unpriced_calls:,} calls without a "
                "complete price; its shares are of the recorded cost and not exact."
            )
        if line.pending:
            notes.append(
                f"Provisional: {named(line.scenario_id)} has {line.pending:,} pending tasks "
                "whose cost may yet become waste or accepted."
            )
    return notes


def _call_notes(unpriced: dict[str, int], what: str) -> list[str]:
    return [
        f"{AT_LEAST} {named(s)}: {n:,} of its calls have no complete price; its cost by {what} "
        "counts only what could be priced."
        for s, n in sorted(unpriced.items())
    ]


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
