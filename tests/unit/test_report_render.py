"""The headline table says when a cost is only a lower bound."""

from __future__ import annotations

from decimal import Decimal

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
    assert "LOWER BOUND (>=): partly 1 calls have no price" in text


def test_a_fully_priced_report_has_no_lower_bound() -> None:
    text = render([line("priced", "2.00", 2, 0)], {**STATS, "unpriced_calls": 0})
    assert ">=" not in text and "LOWER BOUND" not in text
