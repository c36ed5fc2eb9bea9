"""Grouping, repeat interval and silences for receivers costflow notifies itself
(pipeline.alerts.notify, pipeline.alerts.silences), worked by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.alert_identity import fingerprint
from pipeline.alerts.notify import NotifyPolicy, Told, plan
from pipeline.alerts.silences import Silence, matches
from pipeline.alerts.state import AlertEvent

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FIRED = NOW - timedelta(hours=6)


def event(alert: str, scenario: str, state: str = "firing", at: datetime = FIRED) -> AlertEvent:
    labels = {"scenario_id": scenario}
    return AlertEvent(
        alert=alert, kind="budget", fingerprint=fingerprint(alert, labels), labels=labels,
        state=state,  # type: ignore[arg-type]
        starts_at=FIRED, ends_at=at if state == "resolved" else None, at=at,
        value=Decimal("12.5"), expected=Decimal("10"), impact=Decimal("2.5"), severity="warning",
    )  # fmt: skip


def silence(*matchers: str, starts: datetime = NOW - timedelta(hours=1),
            ends: datetime = NOW + timedelta(hours=1)) -> Silence:  # fmt: skip
    return Silence(matchers=list(matchers), starts_at=starts, ends_at=ends,
                   created_by="oncall", comment="load test")  # fmt: skip


def groups(work: object) -> list[tuple[dict[str, str], list[tuple[str, str, str]]]]:
    return [
        (dict(key), [(e.alert, e.labels["scenario_id"], e.state) for e in events])
        for key, events in work.notifications  # type: ignore[attr-defined]
    ]


def test_one_notification_per_group() -> None:
    pending = [event("Spend", "s2"), event("Spend", "s1"), event("Burn", "s1")]
    by_name = plan(NotifyPolicy(("alertname",)), [], pending, [], {}, NOW)
    assert groups(by_name) == [
        ({"alertname": "Burn"}, [("Burn", "s1", "firing")]),
        ({"alertname": "Spend"}, [("Spend", "s1", "firing"), ("Spend", "s2", "firing")]),
    ]
    by_scenario = plan(NotifyPolicy(("scenario_id",)), [], pending, [], {}, NOW)
    assert [(g, len(e)) for g, e in groups(by_scenario)] == [
        ({"scenario_id": "s1"}, 2), ({"scenario_id": "s2"}, 1)
    ]  # fmt: skip
    each = plan(NotifyPolicy(None), [], pending, [], {}, NOW)
    assert len(each.notifications) == 3


def test_a_firing_alert_is_told_again_after_the_repeat_interval() -> None:
    current = event("Spend", "s1", at=NOW)  # the firing as of this cycle
    policy = NotifyPolicy(("alertname",), timedelta(hours=4))
    told_recently = {current.fingerprint: Told(FIRED, NOW - timedelta(hours=3, minutes=59))}
    assert plan(policy, [], [], [current], told_recently, NOW).notifications == []
    told_4h_ago = {current.fingerprint: Told(FIRED, NOW - timedelta(hours=4))}
    assert groups(plan(policy, [], [], [current], told_4h_ago, NOW)) == [
        ({"alertname": "Spend"}, [("Spend", "s1", "firing")])
    ]
    changes_only = NotifyPolicy(("alertname",), None)
    assert plan(changes_only, [], [], [current], told_4h_ago, NOW).notifications == []


def test_a_silence_mutes_matching_events_until_it_ends() -> None:
    mute_s1 = silence('alertname="Spend"', 'scenario_id=~"s1|s3"')
    pending = [event("Spend", "s1"), event("Spend", "s2")]
    work = plan(NotifyPolicy(), [mute_s1], pending, [], {}, NOW)
    assert [e.labels["scenario_id"] for e in work.silenced] == ["s1"]
    assert groups(work) == [({"alertname": "Spend"}, [("Spend", "s2", "firing")])]
    # Ended (the end is exclusive) with the alert still firing and never told: told now.
    current = event("Spend", "s1", at=NOW)
    ended = silence('alertname="Spend"', ends=NOW)
    assert groups(plan(NotifyPolicy(repeat_interval=None), [ended], [], [current], {}, NOW)) == [
        ({"alertname": "Spend"}, [("Spend", "s1", "firing")])
    ]
    # Not started yet: no effect.
    later = silence('alertname="Spend"', starts=NOW + timedelta(minutes=1))
    assert plan(NotifyPolicy(), [later], pending, [], {}, NOW).silenced == []


def test_a_resolution_goes_only_where_the_firing_went() -> None:
    resolved = event("Spend", "s1", "resolved", at=NOW)
    never_told = plan(NotifyPolicy(), [], [resolved], [], {}, NOW)
    assert never_told.skipped == [resolved] and never_told.notifications == []
    told = {resolved.fingerprint: Told(FIRED, FIRED)}
    assert groups(plan(NotifyPolicy(), [], [resolved], [], told, NOW)) == [
        ({"alertname": "Spend"}, [("Spend", "s1", "resolved")])
    ]
    # Told of an earlier firing of the same labels (before FIRED): not this one.
    earlier = {resolved.fingerprint: Told(FIRED - timedelta(days=1), FIRED - timedelta(days=1))}
    assert plan(NotifyPolicy(), [], [resolved], [], earlier, NOW).skipped == [resolved]
    # A receiver that was down for both: the firing and its resolution go together.
    both = plan(NotifyPolicy(), [], [event("Spend", "s1"), resolved], [], {}, NOW)
    assert groups(both) == [
        ({"alertname": "Spend"}, [("Spend", "s1", "firing"), ("Spend", "s1", "resolved")])
    ]


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        ('scenario_id="support"', {"scenario_id": "support"}, True),
        ("scenario_id=support", {"scenario_id": "support"}, True),
        ('scenario_id!="support"', {"scenario_id": "support"}, False),
        ('scenario_id=~"support"', {"scenario_id": "support-bot"}, False),  # anchored
        ('scenario_id=~"support.*"', {"scenario_id": "support-bot"}, True),
        ('scenario_id!~"support.*"', {"scenario_id": "support-bot"}, False),
        ('owner=""', {"scenario_id": "x"}, True),  # a missing label is ""
        ('owner!=""', {"scenario_id": "x"}, False),
        ('summary="a \\"quoted\\" value"', {"summary": 'a "quoted" value'}, True),
    ],
)
def test_matchers_as_alertmanager_reads_them(matcher: str, labels: dict[str, str],
                                             expected: bool) -> None:  # fmt: skip
    assert matches(matcher, labels) is expected


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"matchers": ["scenario_id"]}, "not a matcher"),
        ({"matchers": ['scenario_id=~"("']}, "not a regular expression"),
        ({"matchers": []}, "at least 1"),
        ({"ends_at": NOW - timedelta(hours=2)}, "end after it starts"),
        ({"starts_at": datetime(2026, 12, 1, 10, 0)}, "timezone"),
        ({"comment": ""}, "at least 1 character"),
    ],
)
def test_silences_refused_with_the_reason(fields: dict[str, object], reason: str) -> None:
    data: dict[str, object] = {
        "matchers": ['alertname="Spend"'], "starts_at": NOW - timedelta(hours=1),
        "ends_at": NOW, "created_by": "oncall", "comment": "load test", **fields,
    }  # fmt: skip
    with pytest.raises(ValidationError, match=reason):
        Silence.model_validate(data)


def test_the_slack_text_counts_firings_and_says_what_is_incomplete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataclasses import replace

    from pipeline.alerts.receivers import SlackDelivery
    from pipeline.alerts.rules import SlackReceiver

    monkeypatch.setenv("TEST_SLACK_URL", "https://hooks.slack.invalid/T0/B0/x")
    summary = {"summary": "{{ $labels.scenario_id }} at {{ $value }}"}
    slack = SlackDelivery(SlackReceiver(name="s", url_env="TEST_SLACK_URL"), {"Cpao": summary})
    lowered = replace(event("Cpao", "chat"), details={
        "value_bound": "lower", "incomplete": "3 of 40 recent tasks ...",
        "baseline_incomplete": "2 of 40 baseline tasks ..."})  # fmt: skip
    text = slack.text([lowered, event("Cpao", "search", "resolved", NOW)], (("alertname", "Cpao"),))
    assert text.splitlines() == [
        "*[FIRING:1]* alertname=Cpao",
        ":warning: *Cpao* (warning, firing): chat at ≥ 12.5",
        "    incomplete: 3 of 40 recent tasks ...",
        "    baseline_incomplete: 2 of 40 baseline tasks ...",
        ":white_check_mark: *Cpao* (warning, resolved): search at 12.5",
    ]
    # Without a summary: the labels and the figures; critical alerts in red.
    bare = SlackDelivery(SlackReceiver(name="s", url_env="TEST_SLACK_URL"), {})
    critical = replace(event("Budget", "chat"), severity="critical")
    assert bare.text([critical]) == (
        ":red_circle: *Budget* (critical, firing): scenario_id=chat: 12.5 (expected 10), "
        "at stake 2.5"
    )


def test_a_receiver_without_its_secret_is_refused_or_left_out_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.alerts.engine import AlertEngine
    from pipeline.alerts.rules import AlertRulesInvalid, load_rules
    from tests.unit.alert_reference import MemoryInputs

    monkeypatch.delenv("TEST_HOOK_SECRET", raising=False)
    path = tmp_path / "rules.yaml"
    path.write_text(
        "groups:\n  - name: g\n    rules:\n      - {alert: U, kind: unpriced}\n"
        "receivers:\n"
        "  - {name: signed, type: webhook, url: 'http://127.0.0.1:9/',"
        " secret_env: TEST_HOOK_SECRET}\n"
        "  - {name: open, type: webhook, url: 'http://127.0.0.1:9/'}\n",
        encoding="utf-8",
    )
    engine = AlertEngine(load_rules(path), MemoryInputs())
    with pytest.raises(AlertRulesInvalid, match="set the environment variable TEST_HOOK_SECRET"):
        engine.deliveries()
    unconfigured: list[str] = []
    assert [d.name for d in engine.deliveries(None, unconfigured)] == ["open"]
    assert unconfigured == ["webhook signed: set the environment variable TEST_HOOK_SECRET"]
