"""Restated windows: digests and the comparison of a window's judgements, worked by
hand (the engine's cycle over real chDB is in tests/integration/test_alerts.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pipeline.alert_identity import fingerprint
from pipeline.alerts import restatements
from pipeline.alerts.anomaly import AnomalyRule
from pipeline.alerts.engine import AlertEngine
from pipeline.alerts.restatements import (
    Judgement,
    digest,
    hour_digests,
    judgement,
    restate,
    task_digest,
    task_hour_digests,
)
from pipeline.alerts.rules import rule_file_model
from pipeline.alerts.state import AlertEvent, Observation, RuleState
from pipeline.query.alert_inputs import Sums, TaskHour
from tests.unit.alert_reference import Call, MemoryInputs, Task

HOUR = datetime(2026, 11, 30, 10, tzinfo=UTC)
WINDOW = (HOUR, HOUR + timedelta(hours=1))
AT = HOUR + timedelta(hours=3)
RULE = AnomalyRule(alert="Spike", group_by=["scenario_id"])
A, B, C = {"scenario_id": "a"}, {"scenario_id": "b"}, {"scenario_id": "c"}


def test_the_digest_is_every_figure_an_hourly_metric_reads() -> None:
    assert digest(Sums()) == restatements.EMPTY == "0:0:0:0:0"
    # 0.500 and 0.5 are the same money: the digest must not see a change.
    assert digest(Sums(3, 1, 2, 700, Decimal("0.500"))) == "3:1:2:700:0.5"
    assert digest(Sums(3, 1, 2, 700, Decimal("0.5"))) == "3:1:2:700:0.5"
    assert digest(Sums(1, 0, 0, 0, Decimal("12E+1"))) == "1:0:0:0:120"


def test_hour_digests_sum_every_label_set_of_an_hour() -> None:
    calls = [
        Call(HOUR + timedelta(minutes=5), Decimal("0.25"), A, tokens=100),
        Call(HOUR + timedelta(minutes=50), Decimal("0.50"), B, retried=True, tokens=10),
        Call(HOUR + timedelta(hours=1, minutes=1), Decimal(0), A, unpriced=True),
    ]
    got = hour_digests(MemoryInputs(calls), HOUR, HOUR + timedelta(hours=2))
    assert got == {HOUR: "2:0:1:110:0.75", HOUR + timedelta(hours=1): "1:1:0:0:0"}


def test_findings_survive_their_json() -> None:
    found = [Observation(A, Decimal("10.50")), Observation(B, 0.25)]
    j = judgement("Spike", (HOUR, HOUR + timedelta(hours=1)), "1:0:0:0:1", found, AT)
    assert Judgement.parse_findings(j.findings_json()) == j.findings
    assert j.findings[fingerprint("Spike", A)] == (A, "10.5")
    assert j.window_end == HOUR + timedelta(hours=1)


def test_restate_records_changes_and_raises_only_what_is_new() -> None:
    """Judged before: a at 10.5 and c at 4. Judged again: a at 12 (a value change,
    recorded), b at 7 (new: raised, fires), c gone (no longer anomalous, recorded)."""
    old = judgement("Spike", WINDOW, "d1", [Observation(A, Decimal("10.5")),
                                          Observation(C, Decimal(4))], HOUR)  # fmt: skip
    found = [Observation(A, Decimal(12), Decimal(1), Decimal(11)), Observation(B, Decimal(7))]
    events, raised = restate(RULE, old, found, AT)
    hour = HOUR.isoformat()
    by_scenario = {e.labels["scenario_id"]: e for e in events}
    assert sorted(by_scenario) == ["a", "c"]
    a, c = by_scenario["a"], by_scenario["c"]
    assert (a.state, a.value, a.expected, a.impact) == ("restated", Decimal(12), Decimal(1),
                                                        Decimal(11))  # fmt: skip
    assert (a.details["restated"], a.details["was"]) == ("value", "10.5")
    assert (c.value, c.details["restated"], c.details["was"]) == (
        Decimal(4),
        "no longer found",
        "4",
    )
    for e in events:
        assert e.labels["restated_window"] == hour == e.details["window"]
        assert (e.starts_at, e.ends_at, e.at) == (HOUR, HOUR + timedelta(hours=1), AT)
        assert e.fingerprint == fingerprint("Spike", e.labels)
    [b] = raised
    assert b.labels == {**B, "restated_window": hour}
    assert (b.value, b.details["restated"], b.details["was"]) == (Decimal(7), "found", "not found")


def test_an_unchanged_judgement_restates_nothing() -> None:
    old = judgement("Spike", WINDOW, "d1", [Observation(A, Decimal("10.5"))], HOUR)
    assert restate(RULE, old, [Observation(A, Decimal("10.50"))], AT) == ([], [])


def test_a_raised_window_fires_once_then_resolves_when_no_longer_found() -> None:
    state = RuleState("Spike", "anomaly", "warning", timedelta(minutes=30), timedelta(0))
    obs = Observation({**A, "restated_window": HOUR.isoformat()}, Decimal(7))
    fired = state.fire_now(AT, obs)  # `for: 30m` does not hold it: the hour is over
    assert fired is not None and (fired.state, fired.starts_at) == ("firing", AT)
    assert state.fire_now(AT, obs) is None  # already firing: not twice
    [resolved] = state.step(AT + timedelta(minutes=5), [])
    assert resolved.state == "resolved"


# --- task metrics: judged once decided, judged again when their figures change ------


def test_the_task_digest_is_every_figure_a_task_metric_reads() -> None:
    """tasks:calls:unpriced:cost/decided:calls:unpriced:cost/accepted:waste."""
    assert task_digest(TaskHour()) == restatements.EMPTY_TASKS == "0:0:0:0/0:0:0:0/0:0"
    hour = TaskHour(4, 7, 1, Decimal("3.150"), 2, 3, 1, Decimal("1.35000"), 1, Decimal("0.9"))
    assert task_digest(hour) == "4:7:1:3.15/2:3:1:1.35/1:0.9"
    # The call digest of the same hour stays as it was (five figures, no slash).
    assert "/" not in restatements.EMPTY and restatements.EMPTY != restatements.EMPTY_TASKS
    # Decided as of a time: a window closing turns a pending task into waste.
    first = HOUR + timedelta(minutes=5)
    tasks = [Task(first, Decimal("0.50")),
             Task(first, Decimal("0.25"), "", deadline=AT + timedelta(hours=1))]  # fmt: skip
    end = HOUR + timedelta(hours=1)
    assert task_hour_digests(MemoryInputs(tasks=tasks), HOUR, end, AT) == {
        HOUR: "2:2:0:0.75/1:1:0:0.5/1:0"
    }
    later = AT + timedelta(hours=1)
    assert task_hour_digests(MemoryInputs(tasks=tasks), HOUR, end, later) == {
        HOUR: "2:2:0:0.75/2:2:0:0.75/1:0.25"
    }


class MemoryHistory:
    """What :meth:`AlertEngine.cycle` reads and writes of the history, in lists."""

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []
        self.kept: dict[tuple[str, datetime], Judgement] = {}

    def record(self, events: Iterable[AlertEvent]) -> None:
        self.events.extend(events)

    def judged(self, judgements: Iterable[Judgement]) -> None:
        self.kept.update({(j.alert, j.window_start): j for j in judgements})

    def judgements(self, alerts: Iterable[str], since: datetime) -> list[Judgement]:
        names = set(alerts)
        return [j for j in self.kept.values() if j.alert in names and j.window_start >= since]

    def fired(self, alert: str, fingerprints: list[str]) -> set[str]:
        firing = [e for e in self.events if e.alert == alert and e.state == "firing"]
        return {e.fingerprint for e in firing if e.fingerprint in fingerprints}


DAY = timedelta(days=1)
SLOW_END = HOUR + timedelta(hours=10, minutes=30)  # 20:30: the slow tasks ran on till then


def _tasks(outcomes: tuple[str, str, str], slow_cost: str = "0.90") -> list[Task]:
    """Scenario a's tasks first seen at 10:00 on 30 November and the same hour of the
    three Mondays before. Baseline cost per accepted outcome (hand-worked in
    test_alert_kinds: ln(x + 0.001), median, MAD scale 0.15588): 0.45, 0.40, 0.50 ->
    0.45. The hour: one task of $0.45 accepted at once, and three of $0.90 that ran on
    until 20:30 (window closing 21:00 on 1 December), with ``outcomes``."""
    a = {"scenario_id": "a"}
    closed = HOUR - timedelta(days=2)

    def week(k: int, specs: list[tuple[str, str]]) -> list[Task]:
        first = HOUR - timedelta(weeks=k) + timedelta(minutes=5)
        return [Task(first, Decimal(c), o, closed, a) for c, o in specs]

    slow_deadline = SLOW_END + DAY + timedelta(minutes=30)
    slow = [Task(HOUR + timedelta(minutes=6), Decimal(c), o, slow_deadline, a,
                 last_event_at=SLOW_END)
            for c, o in zip(("0.90", "0.90", slow_cost), outcomes, strict=True)]  # fmt: skip
    return (week(3, [("0.30", "accepted")] * 2 + [("0.30", "rejected")])
            + week(2, [("0.20", "accepted")] * 2 + [("0.20", "failed"), ("0.20", "")])
            + week(1, [("0.25", "accepted"), ("0.25", "rejected")])
            + week(0, [("0.45", "accepted")]) + slow)  # fmt: skip


def test_a_late_outcome_judges_a_task_hour_again_and_fires_once() -> None:
    """Cost per accepted outcome of 30 Nov 10:00, decision_lag 1d.

    - 30 Nov 11:05: the hour is not judged (its tasks are undecided); a judgement kept
      at its close by the version before (a call digest) is left for later.
    - 1 Dec 11:05: judged: one decided task, 0.45 / 1 = 0.45 = the baseline, nothing;
      3 tasks still running past their first hour are undecided. Kept with the task
      digest 4:4:0:3.15/1:1:0:0.45/1:0.
    - Their outcomes arrive (accepted, accepted, rejected). 1 Dec 13:05: the digest is
      4:4:0:3.15/4:4:0:3.15/3:0.9, the hour is judged again: (0.45 + 2.70) / 3 = 1.05,
      z 5.43, impact (1.05 - 0.45) x 3 = $1.80: found only now, fires once with
      ``restated_window``. 13:10 resolves it; 13:15 changes nothing.
    - A late call of $0.30 to the rejected task (cost 1.20): 3.45 / 3 = 1.15, a changed
      value: recorded as ``restated`` at 13:20, not fired."""
    rules = rule_file_model().model_validate({"groups": [{"name": "g", "interval": "5m",
        "rules": [{"alert": "Cpao", "kind": "anomaly", "metric": "cost_per_accepted_outcome",
                   "group_by": ["scenario_id"]}]}]})  # fmt: skip
    inputs = MemoryInputs(tasks=_tasks(("", "", "")))
    engine, history = AlertEngine(rules, inputs), MemoryHistory()
    window = (HOUR, HOUR + timedelta(hours=1))
    history.judged([judgement("Cpao", window, "1:0:0:0:0.45", [], HOUR + timedelta(hours=1))])

    def cycle(at: datetime) -> list[tuple[str, str, str]]:
        events = engine.cycle(at, history, [], force=True)  # type: ignore[arg-type]
        return [(e.state, e.labels.get("restated_window", ""), str(e.value)) for e in events]

    assert cycle(HOUR + timedelta(hours=1, minutes=5)) == []
    assert history.kept[("Cpao", HOUR)].digest == "1:0:0:0:0.45"  # not due: left as it was
    assert cycle(HOUR + DAY + timedelta(hours=1, minutes=5)) == []
    kept = history.kept[("Cpao", HOUR)]
    assert (kept.digest, kept.findings) == ("4:4:0:3.15/1:1:0:0.45/1:0", {})
    inputs.tasks[:] = _tasks(("accepted", "accepted", "rejected"))
    hour = HOUR.isoformat()
    assert cycle(HOUR + DAY + timedelta(hours=3, minutes=5)) == [("firing", hour, "1.050000")]
    [fired] = history.events[-1:]
    assert dict(fired.labels) == {"scenario_id": "a", "restated_window": hour}
    assert (fired.expected, fired.impact) == (Decimal("0.450000"), Decimal("1.800000"))
    assert (fired.details["restated"], fired.details["was"]) == ("found", "not found")
    assert fired.details["z"] == "5.43" and "undecided_tasks" not in fired.details
    assert history.kept[("Cpao", HOUR)].digest == "4:4:0:3.15/4:4:0:3.15/3:0.9"
    assert cycle(HOUR + DAY + timedelta(hours=3, minutes=10)) == [("resolved", hour, "1.050000")]
    assert cycle(HOUR + DAY + timedelta(hours=3, minutes=15)) == []
    inputs.tasks[:] = _tasks(("accepted", "accepted", "rejected"), slow_cost="1.20")
    assert cycle(HOUR + DAY + timedelta(hours=3, minutes=20)) == [("restated", hour, "1.150000")]
    restated = history.events[-1]
    assert (restated.details["restated"], restated.details["was"]) == ("value", "1.05")
    assert [e.state for e in history.events] == ["firing", "resolved", "restated"]
    assert cycle(HOUR + DAY + timedelta(hours=3, minutes=25)) == []


def test_a_call_metric_keeps_its_call_digest() -> None:
    """Spend rules judge the last closed hour and keep the calls' digest, unchanged by
    task metrics: stored judgements are not restated on upgrade."""
    rules = rule_file_model().model_validate({"groups": [{"name": "g", "interval": "5m",
        "rules": [{"alert": "Spike", "kind": "anomaly", "metric": "spend"}]}]})  # fmt: skip
    calls = [Call(HOUR + timedelta(minutes=5), Decimal("0.25"), A, tokens=100)]
    history = MemoryHistory()
    engine = AlertEngine(rules, MemoryInputs(calls))
    engine.cycle(HOUR + timedelta(hours=1, minutes=5), history, [], force=True)  # type: ignore[arg-type]
    assert history.kept[("Spike", HOUR)].digest == "1:0:0:100:0.25"
