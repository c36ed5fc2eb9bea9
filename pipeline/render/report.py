"""The headline report, reprices, analytics and full cost, as text."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pipeline.query.analytics import CostlyTask, Slice, Tails, costliest_tasks, tails
from pipeline.query.fixed_costs import FixedCostItemLine, FullCostLine, full_cost, items
from pipeline.query.report import ScenarioLine, health, scenario_summary
from pipeline.render.money import usd as _usd


def render(lines: list[ScenarioLine], stats: dict[str, Any]) -> str:
    header = (
        f"{'scenario':<18} {'tasks':>7} {'accepted':>9} {'accept %':>9} {'total cost':>13} "
        f"{'cost/task':>11} {'cost/accepted outcome':>22}"
    )
    out = ["Cost per accepted outcome, by scenario", header, "-" * len(header)]
    if not lines:  # empty tables read as zeros; a typo'd slice must not
        out.append(
            "No tasks in this slice (check --scenario, --owner, --environment and the period; "
            '`costflow sql "SELECT DISTINCT scenario_id FROM tasks"` lists the scenarios).'
        )
    for line in lines:
        at_least = ">=" if line.unpriced_calls else ""
        out.append(
            f"{line.scenario_id or '(none)':<18} {line.tasks:>7,} {line.accepted:>9,} "
            f"{line.acceptance_rate * 100:>8.1f}% {at_least + _usd(line.total_cost, 2):>13} "
            f"{at_least + _usd(line.cost_per_task):>11} "
            f"{at_least + _usd(line.cost_per_accepted_outcome):>22}"
        )
    total_tasks = sum(line.tasks for line in lines)
    total_accepted = sum(line.accepted for line in lines)
    total_cost = sum((line.total_cost for line in lines), Decimal(0))
    unpriced = [line for line in lines if line.unpriced_calls]
    if total_tasks:
        out.append("-" * len(header))
        cpao = total_cost / total_accepted if total_accepted else None
        at_least = ">=" if unpriced else ""
        out.append(
            f"{'all':<18} {total_tasks:>7,} {total_accepted:>9,} "
            f"{Decimal(total_accepted) / total_tasks * 100:>8.1f}% "
            f"{at_least + _usd(total_cost, 2):>13} {at_least + _usd(total_cost / total_tasks):>11} "
            f"{at_least + _usd(cpao):>22}"
        )
    if unpriced:
        out.append(
            "LOWER BOUND (>=): "
            + ", ".join(
                f"{line.scenario_id or '(none)'} {line.unpriced_calls:,}" for line in unpriced
            )
            + " calls have no complete price in the book (what is missing is unknown, "
            "not $0"
            + (
                f"; {stats['partly_priced_calls']:,} of them are counted with the part "
                f"that could be priced, {_usd(stats['partly_priced_known'])}"
                if stats.get("partly_priced_calls")
                else ""
            )
            + "). Add the prices to the book, then "
            "`costflow reprice --book DIR --from T1 --to T2`."
        )
    out.append("")
    in_part = stats.get("partly_priced_calls")
    out.append(
        # Counted over the whole store, whatever the slice: say so.
        f"whole store: calls: {stats['calls']:,}  unpriced: {stats['unpriced_calls']:,}"
        f"{f' ({in_part:,} priced in part)' if in_part else ''}  "
        f"dead-lettered: {stats['dead_letters']:,}  "
        f"priced with: {', '.join(stats['price_books']) or '-'}"
    )
    if stats["diverged_tasks"]:
        out.append(
            f"INCOMPLETE: {stats['diverged_tasks']:,} tasks lack {stats['pending_events']:,} "
            "events that stage 1 applied (its state diverged from the stored rows). Right "
            "after a crash this is Kafka re-delivery still under way; if it stays once the "
            "pipeline is idle, stage 1 lost state: run `costflow state restore` "
            "(docs/design.md, Recovery)."
        )
    out.append(
        "rejected/failed/unresolved/pending (outcome window still open): "
        + ", ".join(
            f"{line.scenario_id} {line.rejected}/{line.failed}/{line.unresolved}/{line.pending}"
            for line in lines
        )
    )
    return "\n".join(out)


def render_reprices(rows: list[dict[str, Any]]) -> str:
    """Cost of the repriced calls under the version that priced them before and the new one."""
    if not rows:
        return ""
    header = (
        f"{'provider/model':<32} {'calls':>7} {'old version':>24} {'old cost':>13} "
        f"{'new version':>24} {'new cost':>13} {'difference':>13}"
    )
    out = ["Reprices: the same calls under the old and the new price-book version"]
    reprice_id = None
    for row in rows:
        if row["reprice_id"] != reprice_id:
            reprice_id = row["reprice_id"]
            out += ["", f"reprice {reprice_id}", header, "-" * len(header)]
        out.append(
            f"{row['provider'] + '/' + row['model']:<32} {row['calls']:>7,} "
            f"{row['old_price_book_version']:>24} {_usd(row['old_cost'], 6):>13} "
            f"{row['new_price_book_version']:>24} {_usd(row['new_cost'], 6):>13} "
            f"{_usd(row['difference'], 6):>13}"
        )
    return "\n".join(out)


def render_analytics(
    lines: list[ScenarioLine], tail_lines: list[Tails], top: list[CostlyTask]
) -> str:
    out = ["Waste: cost of tasks not accepted (rejected, failed, unresolved)"]
    header = (
        f"{'scenario':<18} {'total cost':>13} {'waste':>13} {'waste %':>8} {'pending':>8} "
        f"{'figures':>12}"
    )
    out += [header, "-" * len(header)]
    for line in lines:
        share = line.waste_cost / line.total_cost * 100 if line.total_cost else Decimal(0)
        # Unpriced calls: both costs are lower bounds and the share is not exact.
        at_least = ">=" if line.unpriced_calls else ""
        state = "incomplete" if line.unpriced_calls else "final" if line.final else "provisional"
        out.append(
            f"{line.scenario_id or '(none)':<18} {at_least + _usd(line.total_cost, 2):>13} "
            f"{at_least + _usd(line.waste_cost, 2):>13} {share:>7.1f}% {line.pending:>8,} "
            f"{state:>12}"
        )
    out += ["", "Cost per task: tail (1% bins) and the share of spend of the costliest tasks"]
    header = (
        f"{'scenario':<18} {'p50':>10} {'p90':>10} {'p95':>10} {'p99':>10} {'max':>10} "
        f"{'p95/p50':>8} {'top 5%':>8} {'top 1%':>8}"
    )
    out += [header, "-" * len(header)]
    incomplete = {line.scenario_id for line in lines if line.unpriced_calls}
    for t in tail_lines:
        ratio = f"{t.p95 / t.p50:.1f}x" if t.p50 else "n/a"
        # A task with an unpriced call costs at least what is recorded, so each
        # quantile of the true costs is at least the recorded one.
        b = ">=" if t.scenario_id in incomplete else ""
        out.append(
            f"{t.scenario_id or '(none)':<18} {b + _usd(t.p50):>10} {b + _usd(t.p90):>10} "
            f"{b + _usd(t.p95):>10} {b + _usd(t.p99):>10} {b + _usd(t.max_bin_mean):>10} "
            f"{ratio:>8} {t.share(t.top5pct_cost):>8.1%} {t.share(t.top1pct_cost):>8.1%}"
        )
    if incomplete & {t.scenario_id for t in tail_lines}:
        out.append(
            ">=: the scenario has calls without a price; its ratios and shares are of the "
            "recorded costs"
        )
    if top:
        out += ["", "Costliest tasks and their call chains"]
        for task in top:
            at_least = ">=" if any(step[4] is None for step in task.chain) else ""
            out.append(
                f"{task.task_id} {task.day} {task.scenario_id or '(none)'} "
                f"{task.owner or '(no owner)'} {task.outcome or '(no outcome)'} "
                f"{at_least}{_usd(task.total_cost)} in {task.calls} "
                f"call{'' if task.calls == 1 else 's'}"
            )
            steps = [
                f"{model}[{role or '-'}]{'' if status == 'ok' else ' ' + status}"
                f"{' #' + str(attempt) if attempt > 1 else ''} {_step_cost(cost, known)}"
                for model, role, status, attempt, cost, known in task.chain
            ]
            if len(steps) > CHAIN_SHOWN:  # the start and the end tell the story
                head, tail = CHAIN_SHOWN // 2, CHAIN_SHOWN - CHAIN_SHOWN // 2
                hidden = len(steps) - CHAIN_SHOWN
                steps = [*steps[:head], f"... {hidden:,} more calls ...", *steps[-tail:]]
            out.append("    " + " -> ".join(steps))
    return "\n".join(out)


# Calls of a chain printed in full; longer chains show their first and last ones
# (v_task_call_chain has every call).
CHAIN_SHOWN = 12


def _step_cost(cost: Decimal | None, known: Decimal | None) -> str:
    """A call's cost; priced in part: at least its known part; else unknown."""
    if cost is not None:
        return _usd(cost)
    return f">={_usd(known)}" if known is not None else "unpriced"


def render_full_cost(
    lines: list[FullCostLine],
    declared: list[FixedCostItemLine],
    incomplete: frozenset[str] = frozenset(),
) -> str:
    """``incomplete``: scenarios with unpriced calls, whose variable figures are
    lower bounds (marked ``>=``); fixed costs are exact."""
    out = ["Full scenario cost: calls plus allocated fixed costs"]
    header = (
        f"{'scenario':<18} {'variable':>13} {'fixed':>13} {'full cost':>13} "
        f"{'cost/accepted':>14} {'full cost/accepted':>19}"
    )
    out += [header, "-" * len(header)]
    for line in lines:
        at_least = ">=" if line.scenario_id in incomplete else ""
        out.append(
            f"{line.scenario_id or '(none)':<18} {at_least + _usd(line.variable_cost, 2):>13} "
            f"{_usd(line.fixed_cost, 2):>13} {at_least + _usd(line.full_cost, 2):>13} "
            f"{at_least + _usd(line.cost_per_accepted_outcome):>14} "
            f"{at_least + _usd(line.full_cost_per_accepted_outcome):>19}"
        )
    out += ["", "Fixed cost items (current declaration)"]
    for item in declared:
        left = (
            f", {_usd(item.unallocated_cost, 2)} not allocated"
            if item.unallocated_cost >= Decimal("0.005")
            else ""
        )
        out.append(
            f"{item.item} ({item.category}, {item.rule}) {item.period_start}..{item.period_end}: "
            f"{_usd(item.amount, 2)}, {_usd(item.allocated_cost, 2)} allocated{left}"
        )
    return "\n".join(out)


def full_report(client: Any, where: Slice, top: int) -> str:
    """The headline, waste, tails and costliest tasks of a slice, read once each; the
    full scenario cost when fixed costs are declared and the slice is by scenario."""
    lines = scenario_summary(client, where)
    text = (
        render(lines, health(client))
        + "\n\n"
        + render_analytics(lines, tails(client, where), costliest_tasks(client, where, top))
    )
    incomplete = frozenset(line.scenario_id for line in lines if line.unpriced_calls)
    return text + "\n\n" + full_cost_section(client, where, incomplete)


def full_cost_section(client: Any, where: Slice, incomplete: frozenset[str] = frozenset()) -> str:
    """Full scenario cost of the slice, or why there is none."""
    declared = items(client)
    if not declared:
        return "No fixed costs declared (costflow fixed-costs load FILE adds them)."
    try:
        lines = full_cost(client, where)
    except ValueError as exc:  # a slice by owner or environment
        return f"Full scenario cost: {exc}."
    return render_full_cost(lines, declared, incomplete)
