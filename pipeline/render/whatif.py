"""The what-if estimate, as text."""

from __future__ import annotations

from decimal import Decimal

from pipeline.query.whatif import WhatIf
from pipeline.render.money import usd


def render_what_if(w: WhatIf) -> str:
    """The estimate as text; the growth-only projection when no target model was given."""
    if not w.model:
        return render_growth(w)
    moved = f"calls of {w.replace}" if w.replace else "every call"
    period = f"{w.first_day}..{w.last_day}" if w.days else "no tasks"
    out = [
        f"ESTIMATE: {w.scenario_id}, {period}: {moved} priced as {w.provider}/{w.model} "
        f"(prices in force {w.priced_at:%Y-%m-%d %H:%M} UTC), same tokens, retries and outcomes",
        f"{w.tasks:,} tasks, {w.accepted:,} accepted, {w.calls:,} calls "
        f"({w.moved_calls:,} repriced)",
    ]
    # Calls left out of both sides leave both totals short: lower bounds, and the
    # difference is that of the calls compared only.
    bound = ">=" if w.left_out else ""
    if w.left_out:
        out.append(
            "LOWER BOUND (>=): left out of both sides: "
            + ", ".join(f"{n:,} {reason}" for reason, n in sorted(w.left_out.items()))
            + "; the difference is that of the calls compared"
        )
    header = f"{'':<28} {'recorded':>14} {'estimate':>14} {'difference':>14}"

    def line(label: str, recorded: Decimal | None, estimate: Decimal | None, places: int) -> str:
        diff = estimate - recorded if recorded is not None and estimate is not None else None
        rec, est = usd(recorded, places), usd(estimate, places)
        if bound and diff is not None:
            rec, est = bound + rec, bound + est
        return f"{label:<28} {rec:>14} {est:>14} {usd(diff, places):>14}"

    out += [header, "-" * len(header)]
    out.append(line("cost of the period", w.recorded_cost, w.estimated_cost, 2))
    out.append(
        line(
            "cost per accepted outcome",
            w.per_accepted(w.recorded_cost),
            w.per_accepted(w.estimated_cost),
            4,
        )
    )
    growth = f" at {w.growth:g}x volume" if w.growth != 1 else ""
    out.append(
        line(
            "per 30 days" + growth,
            w.per_30_days(w.recorded_cost),
            w.per_30_days(w.estimated_cost),
            2,
        )
    )
    return "\n".join(out)


def render_growth(w: WhatIf) -> str:
    """The observed period now and at ``growth`` x the volume: variable cost scaled,
    fixed costs as allocated to the same days (not scaled, not extrapolated)."""
    period = f"{w.first_day}..{w.last_day}" if w.days else "no tasks"
    at = f"{w.growth:g}x"
    bound = ">=" if w.unpriced else ""
    out = [
        f"ESTIMATE: {w.scenario_id}, {period}, at {at} the volume: variable cost scales, "
        "fixed costs stay as allocated, same tokens, retries and outcomes per task",
        f"{w.tasks:,} tasks, {w.accepted:,} accepted, {w.calls:,} calls",
    ]
    if w.unpriced:
        in_part = (
            f" ({w.partly_priced:,} of them counted at the part that could be priced)"
            if w.partly_priced
            else ""
        )
        out.append(
            f"LOWER BOUND (>=): {w.unpriced:,} of {w.calls:,} calls "
            f"({100 * w.unpriced / w.calls:.1f}%) have no complete price in the book"
            f"{in_part}; what is missing is unknown, not $0. Add the prices, then "
            "`costflow reprice`."
        )
    header = f"{f'over the {w.days} days':<32} {'now':>14} {'at ' + at:>14}"
    out += [header, "-" * len(header)]

    def money(value: Decimal | None, places: int, known: bool) -> str:
        text = usd(value, places)
        return f"{bound}{text}" if bound and not known and value is not None else text

    variable = w.recorded_cost
    fixed = w.fixed_cost
    grown = variable * w.growth
    per_accepted = w.per_accepted(variable)  # unchanged: same calls per task
    # (label, now, at the growth, decimals, known exactly even with unpriced calls)
    rows: list[tuple[str, Decimal | None, Decimal | None, int, bool]] = [
        ("variable cost (calls)", variable, grown, 2, False),
        ("fixed cost (as allocated)", fixed, fixed, 2, True),
        (
            "full cost",
            variable + fixed if fixed is not None else variable,
            grown + fixed if fixed is not None else grown,
            2,
            False,
        ),
        ("cost per accepted outcome", per_accepted, per_accepted, 4, False),
        (
            "full cost per accepted outcome",
            w.full_per_accepted(variable, Decimal(1)),
            w.full_per_accepted(variable, w.growth),
            4,
            False,
        ),
    ]
    for label, now, then, places, known in rows:
        out.append(f"{label:<32} {money(now, places, known):>14} {money(then, places, known):>14}")
    if w.fixed_cost is None:
        out.append("No fixed costs declared: full cost is variable cost only.")
    return "\n".join(out)
