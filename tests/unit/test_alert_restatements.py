"""Restated windows: digests and the comparison of a window's judgements, worked by
hand (the engine's cycle over real chDB is in tests/integration/test_alerts.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pipeline.alert_identity import fingerprint
from pipeline.alerts import restatements
from pipeline.alerts.anomaly import AnomalyRule
from pipeline.alerts.restatements import Judgement, digest, hour_digests, judgement, restate
from pipeline.alerts.state import Observation, RuleState
from pipeline.query.alert_inputs import Sums
from tests.unit.alert_reference import Call, MemoryInputs

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
        Decimal(4), "no longer found", "4")
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
