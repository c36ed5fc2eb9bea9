"""The what-if estimate, as text."""

from __future__ import annotations

from pipeline.query.whatif import WhatIf
from pipeline.render.money import usd


def render_what_if(w: WhatIf) -> str:
    moved = f"calls of {w.replace}" if w.replace else "every call"
    period = f"{w.first_day}..{w.last_day}" if w.days else "no tasks"
    out = [
        f"ESTIMATE: {w.scenario_id}, {period}: {moved} priced as {w.provider}/{w.model} "
        f"(prices in force {w.priced_at:%Y-%m-%d %H:%M} UTC), same tokens, retries and outcomes",
        f"{w.tasks:,} tasks, {w.accepted:,} accepted, {w.calls:,} calls "
        f"({w.moved_calls:,} repriced)",
    ]
    if w.left_out:
        out.append(
            "left out of both sides: "
            + ", ".join(f"{n:,} {reason}" for reason, n in sorted(w.left_out.items()))
        )
    header = f"{'':<28} {'recorded':>14} {'estimate':>14} {'difference':>14}"
    diff = w.estimated_cost - w.recorded_cost
    rec_pa, est_pa = w.per_accepted(w.recorded_cost), w.per_accepted(w.estimated_cost)
    out += [header, "-" * len(header)]
    out.append(
        f"{'cost of the period':<28} {usd(w.recorded_cost, 2):>14} "
        f"{usd(w.estimated_cost, 2):>14} {usd(diff, 2):>14}"
    )
    out.append(
        f"{'cost per accepted outcome':<28} {usd(rec_pa, 4):>14} {usd(est_pa, 4):>14} "
        f"{usd(est_pa - rec_pa if rec_pa is not None and est_pa is not None else None, 4):>14}"
    )
    growth = f" at {w.growth:g}x volume" if w.growth != 1 else ""
    rec_30, est_30 = w.per_30_days(w.recorded_cost), w.per_30_days(w.estimated_cost)
    out.append(
        f"{'per 30 days' + growth:<28} {usd(rec_30, 2):>14} {usd(est_30, 2):>14} "
        f"{usd(est_30 - rec_30 if rec_30 is not None and est_30 is not None else None, 2):>14}"
    )
    return "\n".join(out)
