"""Rule files that would fail at run time, or mean something else than written, are
refused by `alerts validate` with the reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipeline.alerts.rules import AlertRulesInvalid, load_rules

GROUP = "groups:\n  - name: g\n    rules:\n      - {rule}\n"


def _load(tmp_path: Path, rule: str, receivers: str = "") -> object:
    path = tmp_path / "rules.yaml"
    path.write_text(GROUP.format(rule=rule) + receivers, encoding="utf-8")
    return load_rules(path)


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        # 100.1 as a YAML float is 100.099999999999994315658113919198513031005859375.
        ("{alert: B, kind: budget, amount: 100.1}", "quoted decimal string"),
        ("{alert: T, kind: task_budget, max_cost: 2.5}", "quoted decimal string"),
        ("{alert: A, kind: anomaly, min_impact: 0.5}", "quoted decimal string"),
        ("{alert: B, kind: budget, amount: '100', thresholds: ['0.5', '0.5']}",
         "thresholds repeat"),
        ("{alert: B, kind: budget, amount: '100', burn_windows: "
         "[{long: 5m, short: 1h, factor: 14.4}]}", "shorter than its long"),
        ("{alert: B, kind: budget, amount: '100', labels: {severity: page}}",
         "set by costflow"),
        ("{alert: B, kind: budget, amount: '100', labels: {alertname: X}}", "set by costflow"),
        # Decimal() takes each of these; none is what a reader sees as an amount.
        ("{alert: B, kind: budget, amount: '1e1'}", "is not an amount"),
        ("{alert: B, kind: budget, amount: '1_5'}", "is not an amount"),
        ("{alert: B, kind: budget, amount: ' 15'}", "is not an amount"),
        ("{alert: B, kind: budget, amount: '\u0661\u0665'}", "is not an amount"),
        ("{alert: B, kind: budget, amount: '100', annotations: {summary: '{{ $valeu }}'}}",
         "is not a placeholder"),
        ("{alert: B, kind: budget, amount: '100', annotations: {summary: 'at {{ .Value }}'}}",
         "is not a placeholder"),
        ("{alert: B, kind: budget, amount: '100'}\n  - name: g\n    rules:\n"
         "      - {alert: C, kind: budget, amount: '100'}", "group names must be unique"),
        ("{alert: B, kind: budget, amount: '100', amount: '1'}", "given twice"),
        ("{alert: B, kind: budget, amount: '100', thresholds: [], burn_windows: []}",
         "never fires"),
        ("{alert: B, kind: budget, amount: '100', labels: {threshold: x}}",
         "may not replace them"),
        ("{alert: B, kind: budget, amount: '100', group_by: [owner], labels: {owner: x}}",
         "may not replace them"),
        ("{alert: T, kind: task_budget, max_calls: 5, active_for: 0s}", "at least 1s"),
    ],
)  # fmt: skip
def test_refused_with_the_reason(tmp_path: Path, rule: str, reason: str) -> None:
    with pytest.raises(AlertRulesInvalid, match=reason):
        _load(tmp_path, rule)


@pytest.mark.parametrize(
    ("receiver", "reason"),
    [
        ("{name: am, type: alertmanager, url: 'alertmanager:9093'}", "not an http"),
        ("{name: hook, type: webhook, url: 'ftp://x/', secret_env: S}", "not an http"),
        ("{name: hook, type: webhook, url: 'http://x/', secret_env: S, secret_file: /f}",
         "signing secret"),
    ],
)  # fmt: skip
def test_receivers_refused_with_the_reason(tmp_path: Path, receiver: str, reason: str) -> None:
    with pytest.raises(AlertRulesInvalid, match=reason):
        _load(tmp_path, "{alert: B, kind: budget, amount: '100'}", f"receivers:\n  - {receiver}\n")


def test_money_as_strings_and_integers_is_exact(tmp_path: Path) -> None:
    rules = _load(tmp_path, "{alert: B, kind: budget, amount: '100.10', thresholds: [0.5, 1]}")
    [rule] = rules.groups[0].rules  # type: ignore[attr-defined]
    assert rule.amount == Decimal("100.10")
    assert rule.thresholds == [Decimal("0.5"), Decimal(1)]  # ratios, not money: floats fine
    rules = _load(tmp_path, "{alert: B, kind: budget, amount: 250}")
    assert rules.groups[0].rules[0].amount == Decimal(250)  # type: ignore[attr-defined]


def test_validate_notes_secrets_missing_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    monkeypatch.delenv("COSTFLOW_TEST_HOOK_SECRET", raising=False)
    receivers = (
        "receivers:\n"
        "  - {name: hook, type: webhook, url: 'http://x/', secret_env: COSTFLOW_TEST_HOOK_SECRET}\n"
    )
    _load(tmp_path, "{alert: B, kind: budget, amount: '100'}", receivers)
    assert main(["alerts", "validate", str(tmp_path / "rules.yaml")]) == 0
    out = capsys.readouterr().out
    assert "note: receiver hook: set the environment variable COSTFLOW_TEST_HOOK_SECRET" in out
    monkeypatch.setenv("COSTFLOW_TEST_HOOK_SECRET", "s")
    assert main(["alerts", "validate", str(tmp_path / "rules.yaml")]) == 0
    assert "note:" not in capsys.readouterr().out


def test_validate_says_which_silences_are_active(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    silences = (
        "receivers:\n  - {name: am, type: alertmanager, url: 'http://am:9093'}\n"
        "silences:\n"
        "  - {matchers: ['alertname=\"B\"'], starts_at: '2020-01-01T00:00:00Z',"
        " ends_at: '2020-01-02T00:00:00Z', created_by: me, comment: old}\n"
        "  - {matchers: ['alertname=\"B\"'], starts_at: '2020-01-01T00:00:00Z',"
        " ends_at: '2999-01-01T00:00:00Z', created_by: me, comment: long}\n"
    )
    _load(tmp_path, "{alert: B, kind: budget, amount: '100'}", silences)
    assert main(["alerts", "validate", str(tmp_path / "rules.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert 'silence alertname="B": ended 2020-01-02T00:00:00+00:00 (me: old)' in out
    assert 'silence alertname="B": active until 2999-01-01T00:00:00+00:00 (me: long)' in out
    assert out[-1].startswith("note: silences apply to webhook, slack and kafka receivers")


def test_grouping_and_repeats_of_a_webhook(tmp_path: Path) -> None:
    receivers = (
        "receivers:\n"
        "  - {name: a, type: webhook, url: 'http://x/'}\n"
        "  - {name: b, type: webhook, url: 'http://x/', group_by: ['...'], repeat_interval: 30m}\n"
    )
    rules: Any = _load(tmp_path, "{alert: B, kind: budget, amount: '100'}", receivers)
    a, b = rules.receivers
    assert (a.group_by, a.repeat_interval) == (["alertname"], timedelta(hours=4))
    assert (b.group_by, b.repeat_interval) == (["..."], timedelta(minutes=30))
    bad = "receivers:\n  - {name: a, type: webhook, url: 'http://x/', group_by: ['a-b']}\n"
    with pytest.raises(AlertRulesInvalid, match="group_by"):
        _load(tmp_path, "{alert: B, kind: budget, amount: '100'}", bad)


def test_an_empty_file_and_a_doubled_operator_say_what_to_write(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n", encoding="utf-8")
    with pytest.raises(AlertRulesInvalid, match="is empty: an alert rule file holds `groups:`"):
        load_rules(empty)
    silence = (
        "silences:\n  - {matchers: ['alertname==B'], starts_at: '2020-01-01T00:00:00Z',"
        " ends_at: '2999-01-01T00:00:00Z', created_by: me, comment: typo}\n"
    )
    with pytest.raises(AlertRulesInvalid, match="did you mean 'alertname=\"B\"'"):
        _load(tmp_path, "{alert: B, kind: budget, amount: '100'}", silence)


def test_validate_notes_labels_an_alert_never_carries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    _load(tmp_path, "{alert: R, kind: task_budget, max_cost: '5', annotations: {summary: "
                    "'{{ $labels.task_id }} of {{ $labels.scenario_id }}'}}")  # fmt: skip
    assert main(["alerts", "validate", str(tmp_path / "rules.yaml")]) == 0
    [note] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note")]
    assert note.startswith("note: R: annotation summary reads $labels.scenario_id, which its "
                           "alerts do not carry (alertname, costflow_kind")  # fmt: skip


def test_intervals_of_nothing_and_urls_with_secrets_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    for text, reason in [
        ("groups:\n  - name: g\n    interval: 0s\n    rules:\n"
         "      - {alert: U, kind: unpriced}\n", "at least 1s"),
        ("groups:\n  - name: g\n    interval: 1ms\n    rules:\n"
         "      - {alert: U, kind: unpriced}\n", "at least 1s"),
        (GROUP.format(rule="{alert: U, kind: unpriced}")
         + "receivers:\n  - {name: h, type: webhook, url: 'http://h/', repeat_interval: 0s}\n",
         "at least 1s"),
        (GROUP.format(rule="{alert: U, kind: unpriced}")
         + "receivers:\n  - {name: h, type: webhook, url: 'https://u:p@hooks.example/x'}\n",
         "no place for secrets"),
    ]:  # fmt: skip
        path.write_text(text, encoding="utf-8")
        with pytest.raises(AlertRulesInvalid, match=reason):
            load_rules(path)


def test_a_rules_own_labels_are_on_its_events_but_not_in_their_identity() -> None:
    from pipeline.alert_identity import fingerprint
    from pipeline.alerts.state import Observation, RuleState

    at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    state = RuleState("B", "budget", "warning", timedelta(0), timedelta(0), {"team": "finops"})
    [fired] = state.step(at, [Observation({"scenario_id": "chat"}, Decimal(5))])
    assert fired.labels == {"team": "finops", "scenario_id": "chat"}
    assert fired.fingerprint == fingerprint("B", {"scenario_id": "chat"})
    again = RuleState("B", "budget", "warning", timedelta(0), timedelta(0), {"team": "finops"})
    again.restore([fired])  # from alert_events, where the event carries the rule's labels
    [resolved] = again.step(at + timedelta(minutes=1), [])
    assert resolved.fingerprint == fired.fingerprint and resolved.labels == fired.labels


def test_every_label_a_kind_adds_is_one_a_rule_may_not_set() -> None:
    from pipeline.alerts.kinds import KIND_LABELS
    from pipeline.alerts.rules import ALERT_LABELS

    assert set().union(*KIND_LABELS.values()) | {"restated_window"} == ALERT_LABELS
