"""The decision template and the A/B comparison, as text."""

from __future__ import annotations

from pipeline.query.compare import Comparison
from pipeline.query.noise import A_MORE
from pipeline.render.money import usd as _money


def _signed(value: float) -> str:
    return f"{'-' if value < 0 else '+'}${abs(value):,.4f}"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _bound(mark: str, text: str) -> str:
    return mark + text if mark and text != "n/a" else text


def render_comparison(scenario: str, result: Comparison) -> str:
    what = "model (tasks that used it)" if result.dimension == "model" else "experiment label"
    out = [f"Decision template: {scenario}, by {what}"]
    header = (
        f"{'arm':<28} {'tasks':>7} {'accepted':>9} {'accept %':>9} {'cost/accepted':>14}"
        + (
            f" {'calls':>7} {'raw token':>11} {'cache-adj.':>11} {'retry':>6} {'quality':>8}"
            f" {'p50 ms':>7} {'p95 ms':>7}"
            if result.dimension == "model"
            else f" {'task cost':>11} {'pending':>8}"
        )
        + "  owner"
    )
    out += [header, "-" * len(header)]
    for arm in result.arms:
        tasks_bound = ">=" if arm.unpriced_calls else ""
        calls_bound = ">=" if arm.unpriced_model_calls else ""
        line = (
            f"{arm.arm:<28} {arm.tasks:>7,} {arm.accepted:>9,} {_rate(arm.acceptance_rate):>9} "
            f"{_bound(tasks_bound, _money(arm.cost_per_accepted_outcome)):>14}"
        )
        if result.dimension == "model":
            line += (
                f" {arm.calls or 0:>7,} {_bound(calls_bound, _money(arm.raw_token_cost, 2)):>11} "
                f"{_bound(calls_bound, _money(arm.cache_adjusted_cost, 2)):>11} "
                f"{_rate(arm.retry_rate):>6} "
                f"{_rate(arm.quality_pass_rate):>8} {_ms(arm.latency_p50_ms):>7} "
                f"{_ms(arm.latency_p95_ms):>7}"
            )
        else:
            line += f" {_bound(tasks_bound, _money(arm.task_cost, 2)):>11} {arm.pending:>8,}"
        out.append(f"{line}  {', '.join(arm.owners) or '-'}")
    if any(arm.unpriced_calls or arm.unpriced_model_calls for arm in result.arms):
        out.append(
            ">=: the arm has calls without a complete price; its costs are lower bounds "
            "(add the prices, then `costflow reprice`)"
        )
    if result.sums is None or result.difference is None:
        out += ["", "No two arms to compare."]
        return "\n".join(out)
    sa, sb = result.sums
    d = result.difference
    disjoint = " and not the other" if result.dimension == "model" else ""
    out += [
        "",
        f"A = {result.a}, B = {result.b}: decided tasks (outcome known or window closed) "
        f"in each arm{disjoint}",
        f"  A: {sa.tasks:,} tasks, {sa.accepted:,} accepted, "
        f"{_money(sa.cost_per_accepted_outcome)} per accepted outcome",
        f"  B: {sb.tasks:,} tasks, {sb.accepted:,} accepted, "
        f"{_money(sb.cost_per_accepted_outcome)} per accepted outcome",
    ]
    incomplete = [
        arm.arm for arm in result.arms if arm.arm in (result.a, result.b) and arm.unpriced_calls
    ]
    if incomplete:
        out.append(
            f"  LOWER BOUND: {', '.join(incomplete)} has calls without a complete price; "
            "its cost per accepted outcome is a lower bound, so the difference below may "
            "move once they are priced"
        )
    if d.difference is not None and d.low is not None and d.high is not None:
        verdict = d.verdict
        if d.outside_noise:
            verdict = (
                f"outside the noise: {result.a if d.verdict == A_MORE else result.b} costs more"
            )
        out.append(
            f"  A - B = {_signed(d.difference)} per accepted outcome, "
            f"95% interval [{_signed(d.low)}, {_signed(d.high)}]: {verdict}"
        )
    else:
        out.append(f"  {d.verdict}")
    return "\n".join(out)
