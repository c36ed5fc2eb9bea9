"""Restatements of closed windows: a window judged again when its figures changed.

An anomaly rule judges each whole hour once (a call metric at the first evaluation
after the hour closed, a task metric ``decision_lag`` later); a budget's thresholds
are judged for the last time when its period closes. Calls can still change a closed
window afterwards: a reprice changes their cost, and a call produced late within its
partition is stored after the window was judged (the watermark bounds lateness across
partitions, not within one). The tasks of an hour change too: an outcome arrives (also
after its deadline: unresolved becomes accepted), a deadline passes, a task runs on.
So each judgement is kept (:class:`Judgement`, table ``alert_judgements``) with a
digest read *before* judging: of the window's stored calls (:func:`digest`), or, for
an anomaly rule of a task metric, of the hour's task figures as of the evaluation
(:func:`task_digest`). When the store's digest of a judged window differs, the window
is judged again and :func:`restate` says what changed:

- a label set found now and not before (anomalous, or over a threshold) raises the
  alert's severity for that window: it fires (its labels plus ``restated_window``, the
  window's start) and is notified like any firing;
- a changed value, or a label set no longer found, is recorded (``alert_events``,
  state ``restated``) and not notified.

Pure: the engine reads digests and judgements and records what this returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pipeline.alert_identity import fingerprint
from pipeline.alerts.state import AlertEvent, Observation
from pipeline.alerts.templates import show
from pipeline.query.alert_inputs import AlertInputs, Sums, TaskHour

# Judged windows compared with the store each cycle (a reprice of an older hour is
# not noticed by alerts; its figures are restated in the views all the same).
LOOKBACK = timedelta(days=7)
# The label naming the judged window of a restated alert: one instance per window.
RESTATED_LABEL = "restated_window"


def digest(sums: Sums) -> str:
    """The figures of an hour's stored calls that any hourly metric is computed from,
    as text: ``calls:unpriced:retried:tokens:known cost``."""
    cost = sums.cost.normalize() if sums.cost else Decimal(0)
    return f"{sums.calls}:{sums.unpriced_calls}:{sums.retried_calls}:{sums.tokens}:{cost:f}"


EMPTY = digest(Sums())


def task_digest(hour: TaskHour) -> str:
    """The figures of an hour's tasks that the task metrics are computed from, as text:
    ``tasks:calls:unpriced:cost/decided:calls:unpriced:cost/accepted:waste cost``
    (decided as of the time they were read). The slashes tell it from a call digest."""

    def money(value: Decimal) -> str:
        return f"{value.normalize() if value else Decimal(0):f}"

    return (
        f"{hour.tasks}:{hour.calls}:{hour.unpriced_calls}:{money(hour.cost)}/"
        f"{hour.decided}:{hour.decided_calls}:{hour.decided_unpriced_calls}:"
        f"{money(hour.decided_cost)}/{hour.accepted}:{money(hour.waste_cost)}"
    )


EMPTY_TASKS = task_digest(TaskHour())


def window_digest(inputs: AlertInputs, start: datetime, end: datetime) -> str:
    """The digest of every stored call with ``start <= ts < end``."""
    return digest(inputs.sums([], {}, start, end).get((), Sums()))


def hour_digests(inputs: AlertInputs, start: datetime, end: datetime) -> dict[datetime, str]:
    """The digest of every whole UTC hour in ``[start, end)`` with stored calls (hours
    without calls are absent: their digest is :data:`EMPTY`)."""
    series = inputs.hourly([], {}, start, end).get((), {})
    return {hour: digest(sums) for hour, sums in series.items()}


def task_hour_digests(
    inputs: AlertInputs, start: datetime, end: datetime, decided_by: datetime
) -> dict[datetime, str]:
    """The task digest of every whole UTC hour in ``[start, end)`` with tasks first
    seen in it, decided as of ``decided_by`` (hours without tasks are absent: their
    digest is :data:`EMPTY_TASKS`). Every label set together, as :func:`hour_digests`:
    any change of an hour's tasks judges every task-metric rule of the hour again."""
    series = inputs.task_hourly([], {}, start, end, decided_by).get((), {})
    return {hour: task_digest(tasks) for hour, tasks in series.items()}


@dataclass(frozen=True)
class Judgement:
    """What a rule found of one window: the digest of its calls read before judging
    and, by fingerprint, the labels and value (exact decimal text) of each label set
    found anomalous."""

    alert: str
    window_start: datetime
    window_end: datetime
    digest: str
    findings: Mapping[str, tuple[Mapping[str, str], str]]
    judged_at: datetime

    def findings_json(self) -> str:
        return json.dumps(
            {fp: {"labels": dict(labels), "value": value}
             for fp, (labels, value) in sorted(self.findings.items())},
            sort_keys=True,
        )  # fmt: skip

    @staticmethod
    def parse_findings(text: str) -> dict[str, tuple[Mapping[str, str], str]]:
        """Inverse of :meth:`findings_json` (raises ValueError on text it did not write)."""
        data = json.loads(text) if text else {}
        return {fp: (dict(f["labels"]), str(f["value"])) for fp, f in data.items()}


def judgement(
    alert: str, window: tuple[datetime, datetime], digest_text: str,
    found: Iterable[Observation], at: datetime,
) -> Judgement:  # fmt: skip
    """The judgement of ``window`` (start, end) from the observations found there."""
    findings = {fingerprint(alert, o.labels): (dict(o.labels), show(o.value)) for o in found}
    return Judgement(alert, window[0], window[1], digest_text, findings, at)


def _restated_labels(labels: Mapping[str, str], window_start: datetime) -> dict[str, str]:
    return {**labels, RESTATED_LABEL: window_start.isoformat()}


def restate(
    rule: Any, old: Judgement, found: list[Observation], at: datetime
) -> tuple[list[AlertEvent], list[Observation]]:
    """Compare a window's earlier judgement with ``found`` (the same window judged at
    ``at``): the ``restated`` events to record (changed values, label sets no longer
    found) and the observations that raise severity (found now, not before), labelled
    with the window, to fire."""
    alert, kind, severity = rule.alert, rule.kind, rule.severity.value
    events: list[AlertEvent] = []
    raised: list[Observation] = []
    now = {fingerprint(alert, o.labels): o for o in found}
    window = old.window_start.isoformat()

    def event(labels: Mapping[str, str], value: Decimal | float, obs: Observation | None,
              details: dict[str, str]) -> AlertEvent:  # fmt: skip
        restated = _restated_labels(labels, old.window_start)
        return AlertEvent(
            alert=alert, kind=kind, fingerprint=fingerprint(alert, restated),
            labels={**rule.labels, **restated},
            state="restated", starts_at=old.window_start, ends_at=old.window_end, at=at,
            value=value, expected=obs.expected if obs else None,
            impact=obs.impact if obs else None, severity=severity,
            details={**(dict(obs.details) if obs else {}), "window": window,
                     "judged_at": old.judged_at.isoformat(), **details},
        )  # fmt: skip

    for fp, obs in now.items():
        if fp not in old.findings:
            details = {"restated": "found", "was": "not found",
                       "window": window, "judged_at": old.judged_at.isoformat()}  # fmt: skip
            raised.append(
                Observation(
                    _restated_labels(obs.labels, old.window_start),
                    obs.value,
                    obs.expected,
                    obs.impact,
                    {**obs.details, **details},
                )
            )
        elif show(obs.value) != old.findings[fp][1]:
            was = old.findings[fp][1]
            events.append(event(obs.labels, obs.value, obs, {"restated": "value", "was": was}))
    for fp, (labels, was) in old.findings.items():
        if fp not in now:
            events.append(
                event(labels, Decimal(was), None, {"restated": "no longer found", "was": was})
            )
    return events, raised
