"""Budget, anomaly and unpriced rules over the plain reference inputs, and the
alert state machine; every figure worked by hand in the comments."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pipeline.alerts import (
    anomaly,
    budget,
    kinds,
    outcome_regression,
    tail_shift,
    task_budget,
    unpriced,
)
from pipeline.alerts.anomaly import AnomalyRule
from pipeline.alerts.budget import BudgetRule, Period, period_bounds
from pipeline.alerts.outcome_regression import OutcomeRegressionRule
from pipeline.alerts.pipeline_health import DeadLettersRule, PipelineLagRule
from pipeline.alerts.state import NOTIFIED, AlertEvent, Observation, RuleState
from pipeline.alerts.tail_shift import TailShiftRule
from pipeline.alerts.task_budget import TaskBudgetRule
from pipeline.alerts.templates import render, show
from pipeline.alerts.unpriced import UnpricedRule
from tests.unit.alert_reference import Call, MemoryInputs, Task


def t(day: int, hour: int = 0, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


A, B = {"scenario_id": "a"}, {"scenario_id": "b"}


# --- budget ----------------------------------------------------------------


def test_thresholds_fire_per_group_and_period() -> None:
    inputs = MemoryInputs([Call(t(1, 10), Decimal(60), A), Call(t(1, 11), Decimal(30), B)])
    rule = BudgetRule(alert="Budget", amount=Decimal(100), group_by=["scenario_id"])
    found = budget.evaluate(rule, inputs, t(2))
    # a: $60 reaches 0.5 ($50), not 0.8 ($80); b: $30 reaches none. No burn pair holds:
    # nothing was spent in the last hour, and 3d/6h has no spend in its 6 h.
    assert [dict(o.labels) for o in found] == [
        {"scenario_id": "a", "threshold": "0.5", "period": "2026-11"}
    ]
    assert found[0].value == Decimal(60) and found[0].expected == Decimal(50)
    assert found[0].impact == 0  # not over the budget yet
    # 60 in 1 day of 30: $60/day -> $100 after 1 2/3 days: 2 November 16:00.
    assert found[0].details["forecast_overrun_at"] == "2026-11-02T16:00:00+00:00"
    # The next period starts at zero: nothing holds, the November alert will resolve.
    assert budget.evaluate(rule, inputs, t(1, month=12)) == []


def test_over_budget_says_by_how_much() -> None:
    inputs = MemoryInputs([Call(t(3), Decimal("120.5"))])
    rule = BudgetRule(alert="Budget", amount=Decimal(100), thresholds=[Decimal(1)],
                      burn_windows=[])  # fmt: skip
    [found] = budget.evaluate(rule, inputs, t(4))
    assert found.impact == Decimal("20.5")
    assert found.details["forecast_overrun_at"] == t(4).isoformat()  # already overrun


def test_spend_with_unpriced_calls_is_marked_a_lower_bound() -> None:
    # $90 priced + one call without a price (0 in the sums): the $100 budget's 0.8
    # threshold ($80) holds on $90 known, and the figure must say it is only a floor.
    calls = [Call(t(3), Decimal(90), A), Call(t(3, 1), Decimal(0), A, unpriced=True)]
    rule = BudgetRule(alert="Budget", amount=Decimal(100), thresholds=[Decimal("0.8")],
                      burn_windows=[])  # fmt: skip
    [found] = budget.evaluate(rule, MemoryInputs(calls), t(4))
    assert found.value == Decimal(90)
    assert found.details["value_bound"] == "lower"
    assert found.details["incomplete"].startswith("1 of 2 calls have no price")
    text = render("spent {{ $value }} of 100", {}, found.value, found.expected, found.impact,
                  found.details)  # fmt: skip
    assert text == "spent ≥ 90 of 100"
    # Every call priced: no mark, the figure is exact.
    [exact] = budget.evaluate(rule, MemoryInputs(calls[:1]), t(4))
    assert "value_bound" not in exact.details and "incomplete" not in exact.details
    assert render("{{ $value }}", {}, exact.value, None, None, exact.details) == "90"


def test_burn_rate_pair_needs_both_windows() -> None:
    # $720 a 30-day month: $1 per hour. 09:10 $13.70 and 09:56 $1.30: at 10:00 the
    # hour burns 15 / 1 = 15 and the last 5 minutes 1.3 / (1/12) = 15.6, both >= 14.4.
    # 6h/30m: 15 / 6 = 2.5 < 6; 3d/6h: 15 / 72 < 1.
    calls = [Call(t(15, 9, 10), Decimal("13.7")), Call(t(15, 9, 56), Decimal("1.3"))]
    rule = BudgetRule(alert="Burn", amount=Decimal(720), thresholds=[Decimal(10)])
    [found] = budget.evaluate(rule, MemoryInputs(calls), t(15, 10))
    assert dict(found.labels) == {"burn_window": "1h/5m"}
    assert found.value == Decimal(15)
    assert found.impact == Decimal(14)  # $15 against the $1 of an even pace
    # At 10:05 the short window is empty: the pair no longer holds.
    assert budget.evaluate(rule, MemoryInputs(calls), t(15, 10, 5)) == []


def test_periods_in_a_time_zone_and_iso_weeks() -> None:
    # 25 October 2026: Berlin leaves summer time, the day has 25 hours.
    start, end, name = period_bounds(t(25, 12, month=10), Period.day, "Europe/Berlin")
    assert (start.astimezone(UTC), end.astimezone(UTC)) == (
        t(24, 22, month=10),
        t(25, 23, month=10),
    )
    assert name == "2026-10-25" and end - start == timedelta(hours=25)
    start, end, name = period_bounds(t(2, 12, month=12), Period.week, "UTC")
    assert (start, end, name) == (t(30), t(7, month=12), "2026-W49")
    start, end, name = period_bounds(t(31, 23, month=12), Period.month, "UTC")
    assert (start, end) == (t(1, month=12), datetime(2027, 1, 1, tzinfo=UTC))


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        BudgetRule(alert="B", amount=Decimal(1), timezone="Mars/Olympus")


# --- anomaly ---------------------------------------------------------------


def _weekly(values: list[str], current: str, hour: int = 10) -> MemoryInputs:
    """Spend of scenario a at ``hour`` on the 4 previous Mondays, and on 30 Nov."""
    calls = [Call(t(30, hour) - timedelta(weeks=k + 1), Decimal(v), A)
             for k, v in enumerate(values)]  # fmt: skip
    return MemoryInputs([*calls, Call(t(30, hour, 30), Decimal(current), A)])


def test_a_spend_spike_against_the_same_hour_of_previous_weeks() -> None:
    # ln(x + 0.01) of 1.00, 1.10, 0.90, 1.00: 0.00995, 0.10436, -0.09431, 0.00995 ->
    # median 0.00995; deviations 0, 0.09441, 0.10426, 0 -> MAD 0.047205, scale
    # 1.4826 * 0.047205 = 0.0700 < 0.1, so 0.1. Actual 5.00: ln 5.01 = 1.61144;
    # z = (1.61144 - 0.00995) / 0.1 = 16.01; expected e^0.00995 - 0.01 = 1.00.
    rule = AnomalyRule(alert="Spike", group_by=["scenario_id"])
    [found] = anomaly.evaluate(rule, _weekly(["1.00", "1.10", "0.90", "1.00"], "5.00"), t(30, 11))
    assert dict(found.labels) == {"scenario_id": "a"}
    assert found.details["z"] == "16.01"
    assert found.expected == Decimal("1.000000")
    assert found.value == Decimal("5.00") and found.impact == Decimal("4.000000")
    assert found.details["hour"] == t(30, 10).isoformat()


def test_the_hour_still_open_is_not_judged() -> None:
    # At 10:59 the 10:00 hour is not complete: the judged hour is 09:00 (no spike).
    rule = AnomalyRule(alert="Spike", group_by=["scenario_id"])
    assert anomaly.evaluate(rule, _weekly(["1", "1", "1", "1"], "5"), t(30, 10, 59)) == []


def test_a_flat_history_fires_only_past_the_minimum_scale_and_impact() -> None:
    # History 1.00 x4: MAD 0, scale 0.1. 1.20: z = (ln 1.21 - ln 1.01) / 0.1 = 1.81 < 4.
    rule = AnomalyRule(alert="Spike")
    assert anomaly.evaluate(rule, _weekly(["1"] * 4, "1.20"), t(30, 11)) == []
    # 2.00: z = (ln 2.01 - ln 1.01) / 0.1 = 6.88 >= 4: fires, $1.00 at stake...
    [found] = anomaly.evaluate(rule, _weekly(["1"] * 4, "2.00"), t(30, 11))
    assert found.details["z"] == "6.88" and found.impact == Decimal("1.000000")
    # ... unless the rule asks for at least $2 of impact.
    rule = AnomalyRule(alert="Spike", min_impact=Decimal(2))
    assert anomaly.evaluate(rule, _weekly(["1"] * 4, "2.00"), t(30, 11)) == []


def test_too_little_history_raises_nothing_and_daily_history_is_the_fallback() -> None:
    rule = AnomalyRule(alert="Spike")
    # First seen 2 days before: 0 weekly hours, 2 daily ones (< 3): no alert.
    young = MemoryInputs([Call(t(28, 10), Decimal(1)), Call(t(29, 10), Decimal(1)),
                          Call(t(30, 10), Decimal(50))])  # fmt: skip
    assert anomaly.evaluate(rule, young, t(30, 11)) == []
    # First seen 5 days before, $1 each day at 10:00: daily history of 5 ones; $50 fires.
    grown = MemoryInputs([Call(t(25 + k, 10), Decimal(1)) for k in range(5)]
                         + [Call(t(30, 10), Decimal(50))])  # fmt: skip
    [found] = anomaly.evaluate(rule, grown, t(30, 11))
    assert found.details["history_hours"] == "5"


def test_hours_without_calls_count_as_zero_once_the_series_exists() -> None:
    # Weeks -4 and -3 spent $1 at 10:00; weeks -2 and -1 nothing: history 1, 1, 0, 0.
    # ln(x + 0.01): 0.00995, 0.00995, -4.60517, -4.60517 -> median -2.29761, MAD
    # 2.30756, scale 3.42. $1 now: z = (0.00995 + 2.29761) / 3.42 = 0.67: no alert.
    calls = [Call(t(30, 10) - timedelta(weeks=k), Decimal(1)) for k in (3, 4)]
    calls.append(Call(t(30, 10), Decimal(1)))
    assert anomaly.evaluate(AnomalyRule(alert="S"), MemoryInputs(calls), t(30, 11)) == []


def test_a_drop_fires_only_when_asked_for() -> None:
    inputs = _weekly(["10"] * 4, "0.10")
    assert anomaly.evaluate(AnomalyRule(alert="S"), inputs, t(30, 11)) == []
    # ln 10.01 = 2.30359, ln 0.11 = -2.20727: z = -4.51086 / 0.1 = -45.11.
    [found] = anomaly.evaluate(AnomalyRule(alert="S", direction="down"), inputs, t(30, 11))
    assert found.details["z"] == "-45.11"


# --- anomaly: task and cache metrics ---------------------------------------

JUDGED = t(30, 10)  # the hour 10:00 on Monday 30 November
# Task metrics judge it once its tasks are decided: at 11:00 a day later (decision_lag
# 1d, the default outcome window), the first evaluation with 11:00 + 1d behind it.
DECIDED_AT = t(1, 11, month=12)
CLOSED = t(29)  # an outcome window closed before the evaluation
RUNNING = t(2, month=12)  # the window of a task still running then: undecided


def _hour_tasks(
    weeks_back: int, specs: list[tuple[str, str]], deadline: datetime = CLOSED, calls: int = 1,
    unpriced_calls: int = 0,
) -> list[Task]:  # fmt: skip
    """Tasks of scenario a first seen in the judged hour ``weeks_back`` weeks before,
    one per (cost, outcome); an empty outcome is unresolved (window closed 29 Nov)
    unless ``deadline`` is later."""
    first = JUDGED - timedelta(weeks=weeks_back) + timedelta(minutes=5)
    return [Task(first + timedelta(minutes=i), Decimal(cost), outcome, deadline, A,
                 calls=calls, unpriced_calls=unpriced_calls)
            for i, (cost, outcome) in enumerate(specs)]  # fmt: skip


def test_cost_per_task_rose_and_the_tasks_of_the_hour_are_at_stake() -> None:
    # Cost per task 3 weeks back $0.48 / 4 = 0.12, 2 weeks 0.20 / 2 = 0.10, last week
    # 0.40 / 5 = 0.08. ln(x + 0.001): -2.11196, -2.29263, -2.51331 -> median -2.29263;
    # deviations 0.18067, 0, 0.22068 -> MAD 0.18067, scale 1.4826 x 0.18067 = 0.26786.
    # Now 4 tasks for $2.00: 0.50; ln 0.501 = -0.69115, z = 1.60148 / 0.26786 = 5.98.
    # Expected e^-2.29263 - 0.001 = 0.10; at stake (0.50 - 0.10) x 4 tasks = $1.60.
    tasks = (_hour_tasks(3, [("0.12", "accepted")] * 4) + _hour_tasks(2, [("0.10", "")] * 2)
             + _hour_tasks(1, [("0.08", "rejected")] * 5)
             + _hour_tasks(0, [("0.50", "")] * 4, deadline=RUNNING))  # fmt: skip
    rule = AnomalyRule(alert="Cpt", metric="cost_per_task", group_by=["scenario_id"])
    [found] = anomaly.evaluate(rule, MemoryInputs(tasks=tasks), DECIDED_AT)
    assert dict(found.labels) == {"scenario_id": "a"}
    assert (found.value, found.expected, found.impact) == (
        Decimal("0.500000"), Decimal("0.100000"), Decimal("1.600000"),
    )  # fmt: skip
    assert (found.details["z"], found.details["history_hours"]) == ("5.98", "3")
    assert "value_bound" not in found.details and "impact" not in found.details
    # The hour's 4 tasks are still running a day on (window open to 2 December): they
    # count at their cost so far, and the alert says so.
    assert found.details["undecided_tasks"] == "4"
    assert found.details["incomplete"] == (
        "4 of 4 tasks of the hour are still inside their outcome window and count at "
        "their cost so far; the figure may change if they run on"
    )
    assert found.details["hour"] == JUDGED.isoformat()
    assert found.details["decided_as_of"] == DECIDED_AT.isoformat()
    # min_impact is money for this metric: $1.60 at stake passes $1.50, not $2.
    for floor_, fires in (("1.50", True), ("2", False)):
        gated = AnomalyRule(alert="Cpt", metric="cost_per_task", min_impact=Decimal(floor_))
        assert bool(anomaly.evaluate(gated, MemoryInputs(tasks=tasks), DECIDED_AT)) is fires
    # min_tasks counts the hour's tasks: 4.
    for n, fires in ((4, True), (5, False)):
        gated = AnomalyRule(alert="Cpt", metric="cost_per_task", min_tasks=n)
        assert bool(anomaly.evaluate(gated, MemoryInputs(tasks=tasks), DECIDED_AT)) is fires
    # A call of the hour without a price: the cost per task is a lower bound.
    unpriced = [*tasks[:-1], replace(tasks[-1], calls=3, unpriced_calls=1)]
    [low] = anomaly.evaluate(rule, MemoryInputs(tasks=unpriced), DECIDED_AT)
    assert low.details["value_bound"] == "lower"
    assert low.details["incomplete"].endswith(
        "run on; 1 of 6 calls have no price and count as 0, so the cost is a lower bound; "
        "add their prices to the book and run `costflow reprice`"
    )


def test_a_flat_cost_per_task_uses_the_minimum_scale() -> None:
    # 0.10 three weeks running: MAD 0, scale 0.1. 0.12: z = (ln 0.121 - ln 0.101) / 0.1
    # = 1.81 < 4, nothing; 0.20: z = (ln 0.201 - ln 0.101) / 0.1 = 6.88, fires.
    history = [task for k in (1, 2, 3) for task in _hour_tasks(k, [("0.10", "accepted")])]
    rule = AnomalyRule(alert="Cpt", metric="cost_per_task")
    now = _hour_tasks(0, [("0.12", "accepted")])
    assert anomaly.evaluate(rule, MemoryInputs(tasks=history + now), DECIDED_AT) == []
    now = _hour_tasks(0, [("0.20", "accepted")])
    [found] = anomaly.evaluate(rule, MemoryInputs(tasks=history + now), DECIDED_AT)
    assert found.details["z"] == "6.88" and found.impact == Decimal("0.100000")


def _cpao_history() -> list[Task]:
    # 3 weeks back: $0.30 x 3, 2 accepted: 0.90 / 2 = 0.45. 2 weeks: 0.20 x 4 (accepted,
    # accepted, failed, unresolved): 0.80 / 2 = 0.40. Last week: 0.25 accepted + 0.25
    # rejected: 0.50 / 1 = 0.50. 4 weeks back: one rejected task, no accepted outcome.
    return (_hour_tasks(4, [("0.30", "rejected")])
            + _hour_tasks(3, [("0.30", "accepted")] * 2 + [("0.30", "rejected")])
            + _hour_tasks(2, [("0.20", "accepted")] * 2 + [("0.20", "failed"), ("0.20", "")])
            + _hour_tasks(1, [("0.25", "accepted"), ("0.25", "rejected")]))  # fmt: skip


def test_cost_per_accepted_outcome_of_the_hours_decided_tasks() -> None:
    # ln(x + 0.001) of 0.45, 0.40, 0.50: -0.79629, -0.91379, -0.69115 -> median
    # -0.79629; deviations 0, 0.11750, 0.10514 -> MAD 0.10514, scale 0.15588.
    # Now: $1.00 x 2 accepted + $1.00 rejected (a call of it unpriced) = 3.00 / 2 = 1.50,
    # and a $5.00 task still inside its window, left out. ln 1.501 = 0.40613,
    # z = 1.20242 / 0.15588 = 7.71. Expected 0.45; at stake (1.50 - 0.45) x 2 = $2.10.
    now = (_hour_tasks(0, [("1.00", "accepted")] * 2)
           + _hour_tasks(0, [("1.00", "rejected")], calls=2, unpriced_calls=1)
           + _hour_tasks(0, [("5.00", "")], deadline=RUNNING))  # fmt: skip
    rule = AnomalyRule(alert="Cpao", metric="cost_per_accepted_outcome", group_by=["scenario_id"])
    [found] = anomaly.evaluate(rule, MemoryInputs(tasks=_cpao_history() + now), DECIDED_AT)
    assert (found.value, found.expected, found.impact) == (
        Decimal("1.500000"), Decimal("0.450000"), Decimal("2.100000"),
    )  # fmt: skip
    # 4 weekly hours since the first task; 4 weeks back had no accepted outcome.
    assert (found.details["z"], found.details["history_hours"]) == ("7.71", "3")
    assert found.details["history_left_out"].startswith("1 baseline hours had no accepted")
    assert found.details["undecided_tasks"] == "1" and found.details["value_bound"] == "lower"
    assert found.details["incomplete"] == (
        "1 of 4 tasks of the hour are still inside their outcome window and are left out; "
        "the figure may change as their outcomes arrive; 1 of 4 calls of the decided tasks "
        "have no price and count as 0, so the cost per accepted outcome is a lower bound; "
        "add their prices to the book and run `costflow reprice`"
    )
    assert render("{{ $value }}", {}, found.value, None, None, found.details) == "≥ 1.5"
    # min_tasks counts decided tasks: 3 of the 4.
    gated = AnomalyRule(alert="Cpao", metric="cost_per_accepted_outcome", min_tasks=4)
    assert anomaly.evaluate(gated, MemoryInputs(tasks=_cpao_history() + now), DECIDED_AT) == []


def test_an_hour_without_accepted_outcomes_or_undecided_is_not_judged() -> None:
    rule = AnomalyRule(alert="Cpao", metric="cost_per_accepted_outcome")
    # Decided, none accepted: no cost per accepted outcome to compare (no division).
    rejected = _hour_tasks(0, [("9.00", "rejected")] * 3)
    assert anomaly.evaluate(rule, MemoryInputs(tasks=_cpao_history() + rejected), DECIDED_AT) == []
    # Accepted, but the outcome arrives later: a day on the task is still pending...
    pending = _hour_tasks(0, [("9.00", "")], deadline=RUNNING)
    assert anomaly.evaluate(rule, MemoryInputs(tasks=_cpao_history() + pending), DECIDED_AT) == []
    # ... while the same hour with the outcome known is judged: 9.00 / 1 fires.
    known = _hour_tasks(0, [("9.00", "accepted")])
    assert len(anomaly.evaluate(rule, MemoryInputs(tasks=_cpao_history() + known), DECIDED_AT)) == 1


def test_waste_share_of_the_decided_cost() -> None:
    # Waste / decided cost: 3 weeks back 0.10 / 1.00, 2 weeks 0.40 / 2.00 (unresolved
    # counts as waste), last week 0.15 / 1.00: 0.10, 0.20, 0.15. ln(x + 0.01):
    # -2.20727, -1.56065, -1.83258 -> median -1.83258; deviations 0.37469, 0.27193, 0
    # -> MAD 0.27193, scale 0.40316. Now 1.80 of 2.00 rejected or failed: 0.90;
    # ln 0.91 = -0.09431, z = 1.73827 / 0.40316 = 4.31. Expected 0.15; at stake
    # (0.90 - 0.15) x $2.00 = $1.50. A pending $7 task is left out.
    tasks = (_hour_tasks(3, [("0.90", "accepted"), ("0.10", "rejected")])
             + _hour_tasks(2, [("1.60", "accepted"), ("0.40", "")])
             + _hour_tasks(1, [("0.85", "accepted"), ("0.15", "failed")])
             + _hour_tasks(0, [("0.20", "accepted"), ("1.00", "rejected"), ("0.80", "failed")])
             + _hour_tasks(0, [("7.00", "")], deadline=RUNNING))  # fmt: skip
    rule = AnomalyRule(alert="Waste", metric="waste_share", group_by=["scenario_id"])
    [found] = anomaly.evaluate(rule, MemoryInputs(tasks=tasks), DECIDED_AT)
    assert found.value == pytest.approx(0.9) and found.expected == pytest.approx(0.15)
    assert (show(found.value), show(found.expected)) == ("0.9", "0.15")  # no float noise
    assert found.impact == Decimal("1.500000") and found.details["z"] == "4.31"
    assert found.details["undecided_tasks"] == "1" and "value_bound" not in found.details
    # An hour of free tasks has no share: not judged.
    free = [replace(x, cost=Decimal(0)) for x in tasks[-4:]]
    assert anomaly.evaluate(rule, MemoryInputs(tasks=tasks[:-4] + free), DECIDED_AT) == []


def _cache_calls(now_read: int) -> list[Call]:
    # Each hour one call: 1000 prompt tokens (200 of them cache writes) + 500 output.
    reads = {3: 600, 2: 500, 1: 550, 0: now_read}
    return [Call(JUDGED - timedelta(weeks=k, minutes=-5), Decimal(1), A, tokens=1500,
                 cache_read_tokens=r, cache_write_tokens=200, output_tokens=500)
            for k, r in reads.items()]  # fmt: skip


def test_a_cache_hit_rate_drop_fires_when_asked_for_down() -> None:
    # Hit rates 600, 500, 550 of 1000 prompt tokens: 0.60, 0.50, 0.55. ln(x + 0.01):
    # -0.49430, -0.67334, -0.57982 -> median -0.57982; deviations 0.08552, 0.09352, 0
    # -> MAD 0.08552, scale 0.12679. Now 100 / 1000 = 0.10 (output not in the prompt):
    # ln 0.11 = -2.20727, z = -1.62745 / 0.12679 = -12.84. Expected 0.55.
    inputs = MemoryInputs(_cache_calls(100))
    up = AnomalyRule(alert="Cache", metric="cache_hit_rate")
    assert anomaly.evaluate(up, inputs, t(30, 11)) == []  # the default watches a rise
    down = AnomalyRule(alert="Cache", metric="cache_hit_rate", direction="down")
    [found] = anomaly.evaluate(down, inputs, t(30, 11))
    assert found.details["z"] == "-12.84"
    assert (show(found.value), show(found.expected)) == ("0.1", "0.55")
    assert found.impact is None and "input and cache-read rates" in found.details["impact"]


def test_an_hour_without_prompt_tokens_has_no_hit_rate() -> None:
    # The judged hour's only call has no prompt tokens: not judged (not a rate of 0).
    calls = [*_cache_calls(0)[:-1], Call(JUDGED + timedelta(minutes=5), Decimal(1), A)]
    down = AnomalyRule(alert="Cache", metric="cache_hit_rate", direction="down")
    assert anomaly.evaluate(down, MemoryInputs(calls), t(30, 11)) == []
    # A baseline hour without prompt tokens is left out of the history, and said so.
    calls = [*_cache_calls(100)[1:], Call(JUDGED - timedelta(weeks=3), Decimal(1), A)]
    calls.append(Call(JUDGED - timedelta(weeks=4), Decimal(1), A, tokens=1000,
                      cache_read_tokens=500))  # fmt: skip
    [found] = anomaly.evaluate(down, MemoryInputs(calls), t(30, 11))
    assert found.details["history_hours"] == "3"
    assert found.details["history_left_out"].startswith("1 baseline hours had no prompt")


@pytest.mark.parametrize("metric", ["calls", "tokens", "retry_rate", "unpriced_share"])
def test_metrics_without_money_say_why_their_impact_is_empty(metric: str) -> None:
    # One call a week, none retried or unpriced; now 40 retried, unpriced calls of
    # 1000 tokens: every one of these metrics jumps far past z 4.
    calls = [Call(JUDGED - timedelta(weeks=k), Decimal(1), A, tokens=100) for k in (1, 2, 3)]
    calls += [Call(JUDGED + timedelta(seconds=k), Decimal(0), A, unpriced=True, retried=True,
                   tokens=1000) for k in range(40)]  # fmt: skip
    [found] = anomaly.evaluate(
        AnomalyRule(alert="M", metric=metric), MemoryInputs(calls), t(30, 11)
    )
    assert found.impact is None and found.details["impact"] == anomaly.NO_IMPACT[metric]


def test_task_metrics_take_task_labels_only() -> None:
    with pytest.raises(ValueError, match="not \\['model'\\]"):
        AnomalyRule(alert="Cpt", metric="cost_per_task", group_by=["model"])
    with pytest.raises(ValueError, match="min_tasks applies to task metrics"):
        AnomalyRule(alert="S", metric="spend", min_tasks=3)


def test_task_metrics_judge_the_hour_a_decision_lag_back() -> None:
    # The last whole hour ending at least decision_lag before the evaluation time; call
    # metrics keep judging the last whole hour before it.
    from pipeline.config import WorkerSettings

    cpao = AnomalyRule(alert="Cpao", metric="cost_per_accepted_outcome")
    window = WorkerSettings.model_fields["outcome_window_s"].default
    assert cpao.decision_lag == timedelta(seconds=window) == timedelta(days=1)
    assert anomaly.judged_hour(cpao, t(30, 11)) == t(29, 10)
    assert anomaly.judged_hour(cpao, t(1, 10, 59, month=12)) == t(30, 9)
    assert anomaly.judged_hour(cpao, DECIDED_AT) == JUDGED
    # 11:20 - 90 minutes = 09:50: the last hour ending by then is 08:00-09:00.
    odd = AnomalyRule(alert="Cpt", metric="cost_per_task", decision_lag="90m")
    assert anomaly.judged_hour(odd, t(30, 11, 20)) == t(30, 8)
    assert anomaly.judged_hour(AnomalyRule(alert="S"), t(30, 11)) == JUDGED
    with pytest.raises(ValueError, match="decision_lag applies to task metrics only"):
        AnomalyRule(alert="S", metric="spend", decision_lag="1h")


def _fast_and_slow(outcomes: tuple[str, str, str]) -> list[Task]:
    """The judged hour's tasks: one of $0.45 accepted within minutes, and three of
    $0.90 whose outcomes (``outcomes``; empty: not yet arrived) take longer. Their
    windows close at 11:00 on 1 December (last event 10:0x + 1 day, next whole hour)."""
    slow = _hour_tasks(0, [("0.90", o) for o in outcomes], deadline=DECIDED_AT)
    return _hour_tasks(0, [("0.45", "accepted")]) + [replace(x, first_event_at=x.first_event_at
                       + timedelta(minutes=1)) for x in slow]  # fmt: skip


def test_an_outcome_metric_waits_until_the_hours_tasks_are_decided() -> None:
    """Baseline cost per accepted outcome 0.45 (_cpao_history: MAD scale 0.15588).

    Judged at its close (decision_lag 0s, what the rule did before), the hour has one
    decided task, the fast one: 0.45 / 1 = 0.45, z 0, nothing; the three slow tasks
    are left out. Their outcomes arrive during the day (accepted, accepted, rejected):
    judged a day later, the hour's cost per accepted outcome is (0.45 + 3 x 0.90) / 3
    = 1.05; ln 1.051 = 0.04974, z = (0.04974 + 0.79629) / 0.15588 = 5.43. Expected
    0.45; at stake (1.05 - 0.45) x 3 accepted = $1.80. Every task decided: no
    undecided_tasks."""
    pending = MemoryInputs(tasks=_cpao_history() + _fast_and_slow(("", "", "")))
    at_close = AnomalyRule(alert="Cpao", metric="cost_per_accepted_outcome", decision_lag="0s")
    assert anomaly.evaluate(at_close, pending, t(30, 11)) == []
    rule = AnomalyRule(alert="Cpao", metric="cost_per_accepted_outcome")
    # With the default lag the hour is not judged at its close, nor a minute before its
    # tasks' windows close (09:00 is judged then: no tasks, no value).
    assert anomaly.evaluate(rule, pending, t(30, 11)) == []
    decided = MemoryInputs(tasks=_cpao_history() + _fast_and_slow(("accepted", "accepted",
                                                                    "rejected")))  # fmt: skip
    assert anomaly.evaluate(rule, decided, t(1, 10, 59, month=12)) == []
    [found] = anomaly.evaluate(rule, decided, DECIDED_AT)
    assert found.details["hour"] == JUDGED.isoformat()
    assert (found.value, found.expected, found.impact) == (
        Decimal("1.050000"), Decimal("0.450000"), Decimal("1.800000"),
    )  # fmt: skip
    assert found.details["z"] == "5.43" and "undecided_tasks" not in found.details
    # Outcomes that never arrive: the windows close at 11:00, the three are unresolved
    # (decided, none accepted): 3.15 / 1 = 3.15 fires all the same.
    [silent] = anomaly.evaluate(rule, pending, DECIDED_AT)
    assert silent.value == Decimal("3.150000") and "undecided_tasks" not in silent.details


def test_a_backtest_judges_task_hours_when_a_live_run_could_have() -> None:
    """`alerts test` over stored history sees every outcome stored since. The hour of
    30 Nov 10:00 (outcomes as above, all stored) is judged at 11:00 the next day, as
    a live run would judge it: the firing's time is then, not 30 Nov 11:00, when a live
    run knew one outcome of four (and found nothing, see the test above). With
    decision_lag 0s the backtest would report the future: a firing at 30 Nov 11:00
    from outcomes that arrived during the day."""
    from pipeline.alerts.engine import backtest
    from pipeline.alerts.rules import rule_file_model

    def replay(extra: dict[str, str]) -> list[tuple[str, datetime, str]]:
        rules = rule_file_model().model_validate({"groups": [{"name": "g", "interval": "1h",
            "rules": [{"alert": "Cpao", "kind": "anomaly", "metric": "cost_per_accepted_outcome",
                       **extra}]}]})  # fmt: skip
        inputs = MemoryInputs(tasks=_cpao_history() + _fast_and_slow(("accepted", "accepted",
                                                                       "rejected")))  # fmt: skip
        return [(e.state, e.at, e.details["hour"])
                for e in backtest(rules, inputs, t(30, 11), t(1, 13, month=12))]  # fmt: skip

    hour = JUDGED.isoformat()
    # Fired when the hour is judged, resolved when the next hour is.
    assert replay({}) == [("firing", DECIDED_AT, hour), ("resolved", t(1, 12, month=12), hour)]
    assert replay({"decision_lag": "0s"}) == [("firing", t(30, 11), hour),
                                              ("resolved", t(30, 12), hour)]  # fmt: skip


# --- unpriced --------------------------------------------------------------


def test_a_model_seen_unpriced_for_the_first_time() -> None:
    new = {"provider": "acme", "model": "m-1"}
    calls = [
        Call(t(30, 9), Decimal(0), {"provider": "openai", "model": "old"}, unpriced=True),
        Call(t(30, 10, 20), Decimal(0), new, unpriced=True),
        Call(t(30, 10, 40), Decimal("0.5"), new, unpriced=True),
    ]
    rule = UnpricedRule(alert="Unpriced", window=timedelta(hours=1))
    [found] = unpriced.evaluate(rule, MemoryInputs(calls), t(30, 11))
    assert dict(found.labels) == new and found.value == 2
    # Two hours on, the model is no longer new.
    assert unpriced.evaluate(rule, MemoryInputs(calls), t(30, 13)) == []


def test_the_unpriced_share_of_calls() -> None:
    calls = [Call(t(30, 10, m), Decimal(1), A, unpriced=m < 15) for m in range(0, 50, 5)]
    # 3 of 10 calls unpriced (minutes 0, 5, 10): 0.3 > 0.2.
    rule = UnpricedRule(alert="U", new_models=False, max_share=Decimal("0.2"),
                        group_by=["scenario_id"])  # fmt: skip
    [found] = unpriced.evaluate(rule, MemoryInputs(calls), t(30, 11))
    assert found.value == Decimal("0.3")
    # A rule that sets only max_share does not also alert on new models (the A model
    # is new within the window: with new_models it would add a second alert).
    share_only = UnpricedRule(alert="U", max_share=Decimal("0.2"), group_by=["scenario_id"])
    assert unpriced.evaluate(share_only, MemoryInputs(calls), t(30, 11)) == [found]
    both = UnpricedRule(alert="U", new_models=True, max_share=Decimal("0.2"),
                        group_by=["scenario_id"])  # fmt: skip
    assert len(unpriced.evaluate(both, MemoryInputs(calls), t(30, 11))) == 2


# --- states ----------------------------------------------------------------


def _obs(value: int = 1) -> list[Observation]:
    return [Observation({"scenario_id": "a"}, value=Decimal(value))]


def test_pending_then_firing_then_resolved_after_keep_firing_for() -> None:
    rule = RuleState("Spend", "budget", "warning", timedelta(minutes=10), timedelta(minutes=10))
    t0 = t(30, 10)
    [pending] = rule.step(t0, _obs())  # recorded, so a restart keeps it; not notified
    assert (pending.state, pending.starts_at, pending.ends_at) == ("pending", t0, None)
    assert rule.step(t0 + timedelta(minutes=5), _obs()) == []  # 5 m < for
    [fired] = rule.step(t0 + timedelta(minutes=10), _obs(2))
    assert (fired.state, fired.starts_at, fired.value) == ("firing", t0 + timedelta(minutes=10), 2)
    # Cleared at 10:15 (recorded, not notified): kept firing 10 minutes from then.
    [cleared] = rule.step(t0 + timedelta(minutes=15), [])
    assert (cleared.state, cleared.starts_at) == ("cleared", t0 + timedelta(minutes=10))
    assert rule.step(t0 + timedelta(minutes=20), []) == []  # 5 m < keep_firing_for
    [resolved] = rule.step(t0 + timedelta(minutes=25), [])
    assert resolved.state == "resolved" and resolved.ends_at == t0 + timedelta(minutes=25)
    assert resolved.fingerprint == fired.fingerprint
    # Its figures are the last evaluation's that found the condition (10:10, value 2).
    assert resolved.value == 2
    assert resolved.details["figures_as_of"] == (t0 + timedelta(minutes=10)).isoformat()


def test_a_condition_back_within_keep_firing_for_restarts_the_count() -> None:
    rule = RuleState("Spend", "budget", "warning", timedelta(0), timedelta(minutes=10))
    t0 = t(30, 10)
    [_fired] = rule.step(t0, _obs())
    states = [[e.state for e in rule.step(t0 + timedelta(minutes=m), _obs() if m == 10 else [])]
              for m in (5, 10, 15, 20, 25)]  # fmt: skip
    # Cleared at 10:05, back at 10:10 (still the same alert), cleared again at 10:15,
    # resolved 10 minutes after that.
    assert states == [["cleared"], ["recurred"], ["cleared"], [], ["resolved"]]
    assert not any(s in NOTIFIED for step in states[:-1] for s in step)


def test_keep_firing_for_counts_across_a_restart() -> None:
    # A new process each cycle: the 10 minutes count from the first clear (10:05), not
    # from the first cycle of the new process.
    history: list[AlertEvent] = []
    resolved_at = []
    for minute, found in ((0, _obs()), (5, []), (10, []), (15, []), (20, [])):
        rule = RuleState("Spend", "budget", "warning", timedelta(0), timedelta(minutes=10))
        rule.restore(history)
        events = rule.step(t(30, 10, minute), found)
        history.extend(events)
        resolved_at += [minute for e in events if e.state == "resolved"]
    assert resolved_at == [15]


def test_a_pending_alert_that_clears_sends_nothing() -> None:
    rule = RuleState("Spend", "budget", "warning", timedelta(minutes=10), timedelta(0))
    steps = [rule.step(t(30, 10), _obs()), rule.step(t(30, 10, 5), [])]
    # Bookkeeping only (pending, then inactive again): nothing a receiver is told of.
    assert [[e.state for e in step] for step in steps] == [["pending"], ["inactive"]]
    assert not any(e.state in NOTIFIED for step in steps for e in step)
    assert rule.instances == {}


def test_a_pending_alert_survives_a_restart_between_cycles() -> None:
    # `alerts run --once` from cron every 5 minutes: a new process per cycle. With
    # only firing instances restored, a rule with `for: 10m` would never fire.
    hold = timedelta(minutes=10)
    history: list[AlertEvent] = []
    fired = []
    for minute in (0, 5, 10, 15):
        rule = RuleState("Spend", "budget", "warning", hold, timedelta(0))
        rule.restore(history)
        events = rule.step(t(30, 10, minute), _obs())
        history.extend(events)
        fired += [(minute, e.starts_at) for e in events if e.state == "firing"]
    # Active since 10:00, so it has held for 10 m at 10:10 and fires then, once.
    assert fired == [(10, t(30, 10, 10))]


def test_a_restored_firing_alert_is_not_fired_again() -> None:
    first = RuleState("Spend", "budget", "warning", timedelta(0), timedelta(0))
    [fired] = first.step(t(30, 10), _obs())
    again = RuleState("Spend", "budget", "warning", timedelta(0), timedelta(0))
    again.restore([fired])
    assert again.step(t(30, 10, 5), _obs()) == []
    [resolved] = again.step(t(30, 10, 10), [])
    assert resolved.starts_at == fired.starts_at


# --- outcome regression ----------------------------------------------------


def _tasks(day: int, costs: list[str], outcome: str = "accepted") -> list[Task]:
    return [Task(t(day, 1 + i % 20), Decimal(c), outcome, labels=A) for i, c in enumerate(costs)]


def test_cost_per_accepted_outcome_doubled_beyond_the_noise() -> None:
    # Baseline (23-29 Nov): 40 accepted tasks at $1.00: R 1, no spread. Recent (30 Nov):
    # 40 at $2.00: R 2. Interval of 2 - 1 is [1, 1]: outside the noise; ratio 2 >= 1.2.
    # At stake: (2 - 1) x 40 accepted = $40.
    tasks = _tasks(25, ["1.00"] * 40) + _tasks(30, ["2.00"] * 40)
    rule = OutcomeRegressionRule(alert="Cpao", group_by=["scenario_id"])
    [found] = outcome_regression.evaluate(rule, MemoryInputs(tasks=tasks), t(1, month=12))
    assert (found.value, found.expected, found.impact) == (
        Decimal("2.000000"), Decimal("1.000000"), Decimal("40.000000"),
    )  # fmt: skip


def test_a_rise_within_the_noise_does_not_fire() -> None:
    # 10 tasks a side. Recent $0.50/$2.50 alternating: R 1.5, residuals +-1, sum 10,
    # SE sqrt(10/9 * 10) / 10 = 0.3333. Baseline $0.50/$1.50: R 1.0, residuals +-0.5,
    # sum 2.5, SE 0.1667. Half-width 1.96 * sqrt(0.1111 + 0.0278) = 0.7305 > 0.5.
    tasks = _tasks(25, ["0.50", "1.50"] * 5) + _tasks(30, ["0.50", "2.50"] * 5)
    rule = OutcomeRegressionRule(alert="Cpao", min_accepted=2)
    assert outcome_regression.evaluate(rule, MemoryInputs(tasks=tasks), t(1, month=12)) == []
    # The same spread over 40 tasks a side: SE sqrt(40/39 * 40) / 40 = 0.160128 and
    # sqrt(40/39 * 10) / 40 = 0.080064; half-width 1.959964 * 0.179029 = 0.350890 < 0.5,
    # so it fires; the interval starts at 0.5 - 0.350890 = 0.149110.
    tasks = _tasks(25, ["0.50", "1.50"] * 20) + _tasks(30, ["0.50", "2.50"] * 20)
    [found] = outcome_regression.evaluate(rule, MemoryInputs(tasks=tasks), t(1, month=12))
    assert found.details["interval_low"] == "0.149110"


def test_tasks_with_unpriced_calls_mark_the_figures_they_lower() -> None:
    # As the doubling above, but 3 recent tasks and 2 baseline tasks have a call
    # without a price: the recent R is a lower bound, the baseline's too (the rise may
    # be overstated); both say how many tasks of how many. Priced only: no marks.
    def unpriced(task: Task) -> Task:
        return replace(task, unpriced_calls=1)

    base, recent = _tasks(25, ["1.00"] * 40), _tasks(30, ["2.00"] * 40)
    rule = OutcomeRegressionRule(alert="Cpao")
    [clean] = outcome_regression.evaluate(rule, MemoryInputs(tasks=base + recent), t(1, month=12))
    assert "value_bound" not in clean.details and "baseline_incomplete" not in clean.details
    marked = [unpriced(x) for x in base[:2]] + base[2:] + [unpriced(x) for x in recent[:3]]
    [found] = outcome_regression.evaluate(
        rule, MemoryInputs(tasks=marked + recent[3:]), t(1, month=12)
    )
    assert found.value == clean.value  # the figures are what is stored; the marks say so
    assert found.details["value_bound"] == "lower"
    assert found.details["incomplete"].startswith("3 of 40 recent tasks have a call without")
    assert found.details["baseline_incomplete"].startswith("2 of 40 baseline tasks")


def test_undecided_tasks_are_left_out_and_model_labels_refused() -> None:
    pending = [Task(t(30, 2), Decimal(50), "", deadline=t(2, month=12), labels=A)] * 5
    tasks = _tasks(25, ["1.00"] * 40) + _tasks(30, ["1.00"] * 40) + pending
    rule = OutcomeRegressionRule(alert="Cpao")
    assert outcome_regression.evaluate(rule, MemoryInputs(tasks=tasks), t(1, month=12)) == []
    with pytest.raises(ValueError, match="not \\['model'\\]"):
        OutcomeRegressionRule(alert="Cpao", group_by=["model"])


# --- tail shift ------------------------------------------------------------


def test_the_p95_of_cost_per_task_moved_up() -> None:
    # Baseline: 90 tasks at $1.00 (bin 0), 10 at $1.65 (bin 50): its p95 (rank 95) is
    # bin 50. Recent: 80 at $1.00, 20 at $2.71 (bin 100): 20 of 100 above bin 50 where
    # 5% are expected, P(X >= 20) ~ 1e-7; p95 moves from 1.01^50 = 1.644632 to
    # 1.01^100 = 2.704814 (x1.64 >= 1.2). At stake: 20 x $2.71 = $54.20 less 20 x
    # 1.01^51 (1.661078) = $33.22156: $20.97844.
    base = _tasks(20, ["1.00"] * 90) + _tasks(21, ["1.65"] * 10)
    recent = _tasks(30, ["1.00"] * 80) + _tasks(30, ["2.71"] * 20)
    rule = TailShiftRule(alert="Tail", group_by=["scenario_id"], min_tasks=50)
    [found] = tail_shift.evaluate(rule, MemoryInputs(tasks=base + recent), t(1, 9, month=12))
    assert (found.value, found.expected) == (Decimal("2.704814"), Decimal("1.644632"))
    assert found.impact == Decimal("20.978440")
    assert found.details["tasks_above_baseline"] == "20"
    # The same distribution as the baseline: nothing above its p95 bin, no alert.
    same = _tasks(30, ["1.00"] * 90) + _tasks(30, ["1.65"] * 10)
    assert tail_shift.evaluate(rule, MemoryInputs(tasks=base + same), t(1, 9, month=12)) == []


# --- task budget -----------------------------------------------------------


HOUR_ = timedelta(hours=1)


def _calls_of(task_id: str, first: datetime, n: int, each: str, every: timedelta) -> list[Call]:
    return [Call(first + k * every, Decimal(each), {**A, "task_id": task_id}) for k in range(n)]


# "run": 80 calls of $0.075 every 37.5 s from 11:00 ($6.00, the last at 11:49:22.5);
# "quiet": $6.00 but nothing after 9:00; "cheap": $4.00. Caps: $5 is reached by call
# 67 (67 x 0.075 = 5.025; 66 x 0.075 = 4.95) at 11:00 + 66 x 37.5 s = 11:41:15; 50
# calls by call 50 at 11:00 + 49 x 37.5 s = 11:30:37.5.
RUN_CALLS = (
    _calls_of("run", t(30, 11), 80, "0.075", timedelta(seconds=37.5))
    + _calls_of("quiet", t(30, 8), 6, "1.00", timedelta(minutes=12))
    + _calls_of("cheap", t(30, 11), 4, "1.00", timedelta(minutes=18))
)
RUN_TASKS = [
    Task(t(30, 11), Decimal(6), "", labels=A, task_id="run", calls=80,
         last_event_at=t(30, 11, 49)),
    Task(t(30, 8), Decimal(6), "", labels=A, task_id="quiet", calls=6, last_event_at=t(30, 9)),
    Task(t(30, 11), Decimal(4), "", labels=A, task_id="cheap", calls=4,
         last_event_at=t(30, 11, 54)),
]  # fmt: skip


def test_a_runaway_task_over_an_absolute_cap() -> None:
    inputs = MemoryInputs(calls=RUN_CALLS, tasks=RUN_TASKS)
    rule = TaskBudgetRule(alert="Runaway", max_cost=Decimal(5))
    [found] = task_budget.evaluate(rule, inputs, t(30, 12))
    assert found.labels["task_id"] == "run"
    assert (found.value, found.expected, found.impact) == (Decimal(6), Decimal(5), Decimal(1))
    assert found.details["crossed_at"] == "2026-11-30T11:41:15+00:00"
    # By calls: 80 >= 50 (the quiet task is out of the hour).
    [by_calls] = task_budget.evaluate(TaskBudgetRule(alert="R", max_calls=50), inputs, t(30, 12))
    assert by_calls.details["cap"] == "max_calls" and by_calls.value == 80
    assert by_calls.details["crossed_at"] == "2026-11-30T11:30:37.500000+00:00"


def test_a_task_budget_says_what_the_task_was_at_the_evaluation_time() -> None:
    # At 11:30 "run" had 49 calls (the 49th is at 11:30:00: at the instant, included):
    # $3.675, under both caps. At 11:45, 73 calls (k x 37.5 s <= 45 min: k <= 72):
    # $5.475, over $5 and over 50 calls; 50 calls came first (11:30:37.5), so that is
    # the cap it names.
    inputs = MemoryInputs(calls=RUN_CALLS, tasks=RUN_TASKS)
    both = TaskBudgetRule(alert="R", max_cost=Decimal(5), max_calls=50)
    assert task_budget.evaluate(both, inputs, t(30, 11, 30)) == []
    [found] = task_budget.evaluate(both, inputs, t(30, 11, 45))
    assert (found.details["cap"], found.value, found.details["cost"]) == (
        "max_calls", Decimal(73), "5.475")  # fmt: skip
    assert found.details["last_event_at"] == "2026-11-30T11:45:00+00:00"
    [by_cost] = task_budget.evaluate(TaskBudgetRule(alert="R", max_cost=Decimal(5)), inputs,
                                     t(30, 11, 45))  # fmt: skip
    assert (by_cost.value, by_cost.impact) == (Decimal("5.475"), Decimal("0.475"))


def test_a_task_over_k_times_its_scenarios_p99() -> None:
    # 100 baseline tasks at $1.00 (bin 0): p99 in bin 0, whose upper bound is 1.01^1;
    # cap 3 x 1.010000 = 3.030000. $3.10 fires, $3.00 does not.
    base = [Task(t(25 + i % 5, 3), Decimal(1), labels=A, task_id=f"b{i}") for i in range(100)]
    live = [
        Task(t(30, 11), Decimal("3.10"), "", labels=A, task_id="hot"),
        Task(t(30, 11), Decimal("3.00"), "", labels=A, task_id="warm"),
    ]
    calls = [*_calls_of("hot", t(30, 11), 1, "3.10", HOUR_),
             *_calls_of("warm", t(30, 11), 1, "3.00", HOUR_)]  # fmt: skip
    rule = TaskBudgetRule(alert="Runaway", p99_multiple=Decimal(3))
    [found] = task_budget.evaluate(rule, MemoryInputs(calls, base + live), t(30, 11, 30))
    assert found.labels["task_id"] == "hot" and found.expected == Decimal("3.030000")
    # Without enough history there is no cap at all.
    assert task_budget.evaluate(rule, MemoryInputs(tasks=live), t(30, 11, 30)) == []


# --- pipeline health -------------------------------------------------------


def test_pipeline_lag_on_the_clock_and_never_in_a_backtest() -> None:
    rule = PipelineLagRule(alert="Lag", max_lag="15m")
    # Data at 10:00, clock 10:20: 1,200 s behind, over 900.
    [found] = kinds.evaluate(rule, MemoryInputs(), t(30, 10), now=t(30, 10, 20))
    assert (found.value, found.expected) == (1200, 900)
    assert kinds.evaluate(rule, MemoryInputs(), t(30, 10), now=t(30, 10, 15)) == []
    assert kinds.evaluate(rule, MemoryInputs(), t(30, 10)) == []  # backtest: clock = at
    with pytest.raises(ValueError, match="no group_by"):
        PipelineLagRule(alert="Lag", group_by=["owner"])


class _DeadLetters(MemoryInputs):
    def dead_letter_counts(self, start: datetime, end: datetime) -> dict[str, int]:
        stored = [(t(30, 9, 50), "not_json"), (t(30, 10, 10), "not_json"),
                  (t(30, 10, 20), "not_json"), (t(30, 10, 30), "schema_violation")]  # fmt: skip
        counts: dict[str, int] = {}
        for when, reason in stored:
            if start <= when < end:
                counts[reason] = counts.get(reason, 0) + 1
        return counts


def test_dead_letters_per_reason_over_a_window() -> None:
    # Window 10:00-11:00: not_json 2 (> 1), schema_violation 1 (not > 1).
    rule = DeadLettersRule(alert="Dlq", max_count=1, window="1h")
    [found] = kinds.evaluate(rule, _DeadLetters(), t(30, 11), now=t(30, 11))
    assert dict(found.labels) == {"reason": "not_json"} and found.value == 2


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1234.50000"), "1234.5"),
        (Decimal("1E+3"), "1000"),
        (6.9e-18, "0"),  # a baseline of zero rates summed in floats
        (120000.0, "120000"),  # seconds of lag, not 1.2e+05
        (0.012345, "0.01235"),
        (None, ""),
    ],
)
def test_figures_never_in_exponent_form(value: Decimal | float | None, text: str) -> None:
    assert show(value) == text


def test_a_group_is_due_when_the_clock_moves_even_if_the_data_time_stands_still() -> None:
    # Budget $10, threshold 0.5, interval 5m. At data time 12:00 the day spent $4: no
    # alert. Calls of $2 stored late (dated 11:00) do not move the data's time: the
    # group is judged again once the clock is 5 minutes on, and fires ($6 >= $5).
    from pipeline.alerts.engine import AlertEngine
    from pipeline.alerts.rules import rule_file_model

    rules = rule_file_model().model_validate({"groups": [{"name": "g", "interval": "5m", "rules": [
        {"alert": "B", "kind": "budget", "amount": "10", "period": "day",
         "thresholds": ["0.5"], "burn_windows": []}]}]})  # fmt: skip
    inputs = MemoryInputs([Call(t(30, 9), Decimal(4), A)])
    engine, at, clock = AlertEngine(rules, inputs), t(30, 12), t(30, 12, 1)
    assert engine.evaluate(at, now=clock) == []
    inputs.calls.append(Call(t(30, 11), Decimal(2), A))
    assert engine.evaluate(at, now=clock + timedelta(minutes=4)) == []  # not due yet
    [fired] = engine.evaluate(at, now=clock + timedelta(minutes=5))
    assert (fired.state, fired.value) == ("firing", Decimal(6))
