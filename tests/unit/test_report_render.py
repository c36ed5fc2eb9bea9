"""The headline table says when a cost is only a lower bound."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from pipeline.query.report import ScenarioLine
from pipeline.render.report import render

STATS = {"calls": 9, "unpriced_calls": 1, "dead_letters": 0, "price_books": ["default@1"],
         "diverged_tasks": 0, "pending_events": 0, "restarted_tasks": 0}  # fmt: skip


def line(scenario: str, cost: str, accepted: int, unpriced: int) -> ScenarioLine:
    total = Decimal(cost)
    return ScenarioLine(
        scenario, 4, accepted, 4 - accepted, 0, 0, 0, total, total / 4,
        total / accepted if accepted else None, Decimal(0), True, unpriced,
    )  # fmt: skip


def test_a_scenario_with_unpriced_calls_shows_at_least_and_why() -> None:
    text = render([line("priced", "2.00", 2, 0), line("partly", "1.00", 2, 1)], STATS)
    rows = {row.split()[0]: row for row in text.splitlines() if row[:1].isalpha()}
    assert ">=" not in rows["priced"] and "$1.0000" in rows["priced"]  # 2.00 / 2 accepted
    assert rows["partly"].count(">=") == 3 and ">=$0.5000" in rows["partly"]  # 1.00 / 2
    assert rows["all"].count(">=") == 3 and ">=$0.7500" in rows["all"]  # 3.00 / 4 accepted
    assert "LOWER BOUND (>=): partly 1 calls have no complete price" in text


def test_calls_priced_in_part_are_counted_with_their_known_cost() -> None:
    stats = {**STATS, "partly_priced_calls": 1, "partly_priced_known": Decimal("0.00075")}
    text = render([line("partly", "1.00", 2, 1)], stats)
    assert "1 of them are counted with the part that could be priced, $0.0008" in text
    assert "unpriced: 1 (1 priced in part)" in text
    assert "in part" not in render([line("partly", "1.00", 2, 1)], STATS)


def test_a_fully_priced_report_has_no_lower_bound() -> None:
    text = render([line("priced", "2.00", 2, 0)], {**STATS, "unpriced_calls": 0})
    assert ">=" not in text and "LOWER BOUND" not in text


def test_waste_tails_and_costliest_tasks_mark_lower_bounds() -> None:
    from datetime import date

    from pipeline.query.analytics import CostlyTask, Tails
    from pipeline.render.report import render_analytics

    lines = [line("priced", "2.00", 2, 0), line("partly", "1.00", 2, 1)]
    quantiles = [Decimal("0.1"), Decimal("0.2"), Decimal("0.3"), Decimal("0.4"), Decimal("0.5")]
    tails = [Tails(name, 4, Decimal(1), *quantiles, Decimal(0), Decimal(0))
             for name in ("priced", "partly")]  # fmt: skip
    top = [
        CostlyTask("t1", date(2026, 11, 2), "partly", "", "accepted", Decimal("0.9"), 2,
                   [("m", "", "ok", 1, Decimal("0.8"), Decimal("0.8")),
                    ("x", "", "ok", 1, None, Decimal("0.1")), ("y", "", "ok", 1, None, None)]),
        CostlyTask("t2", date(2026, 11, 2), "priced", "", "accepted", Decimal("0.8"), 1,
                   [("m", "", "ok", 1, Decimal("0.8"), Decimal("0.8"))]),
    ]  # fmt: skip
    text = render_analytics(lines, tails, top).splitlines()
    waste = [row for row in text if row.startswith(("priced ", "partly "))][:2]
    assert ">=" not in waste[0] and waste[1].count(">=") == 2 and "incomplete" in waste[1]
    tail_rows = [row for row in text if row.startswith(("priced ", "partly "))][2:4]
    assert ">=" not in tail_rows[0] and tail_rows[1].count(">=") == 5
    assert any(row.startswith("t1 ") and ">=$0.9000 in 2 calls" in row for row in text)
    assert any(row.startswith("t2 ") and re.search(r" \$0\.8000 in 1 call\b", row) for row in text)
    # A call priced in part shows its known part as a lower bound; one with nothing
    # known says so.
    assert any(row.endswith("x[-] >=$0.1000 -> y[-] unpriced") for row in text)


def test_a_long_call_chain_shows_its_ends_and_counts_the_rest() -> None:
    from datetime import date

    from pipeline.query.analytics import CostlyTask
    from pipeline.render.report import CHAIN_SHOWN, render_analytics

    chain = [(f"m{n}", "", "ok", 1, Decimal("0.1"), Decimal("0.1")) for n in range(500)]
    task = CostlyTask("t1", date(2026, 11, 2), "s", "", "accepted", Decimal(50), 500, chain)
    text = render_analytics([line("s", "50", 1, 0)], [], [task])
    (row,) = [r for r in text.splitlines() if r.startswith("    m0[")]
    assert row.count(" -> ") == CHAIN_SHOWN  # CHAIN_SHOWN calls and the gap between them
    assert f"... {500 - CHAIN_SHOWN:,} more calls ..." in row
    assert row.startswith("    m0[") and row.endswith("m499[-] $0.1000")


def test_a_period_that_ends_before_it_starts_is_refused() -> None:
    from datetime import date

    from pipeline.errors import ConfigError
    from pipeline.query.analytics import Slice

    with pytest.raises(ConfigError, match="--since 2026-12-05 is after --until 2026-12-01"):
        Slice(since=date(2026, 12, 5), until=date(2026, 12, 1))
    assert Slice(since=date(2026, 12, 1), until=date(2026, 12, 1)).where()[0] == (
        "1 AND day >= %(since)s AND day <= %(until)s"
    )


def test_an_empty_slice_says_so_rather_than_print_empty_tables() -> None:
    from pipeline.render.report import render

    stats = {"calls": 3, "unpriced_calls": 0, "dead_letters": 0, "price_books": ["b@1"],
             "diverged_tasks": 0, "pending_events": 0, "restarted_tasks": 0}  # fmt: skip
    assert "No tasks in this slice" in render([], stats)
