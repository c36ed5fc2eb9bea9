"""What a receiver costflow notifies itself (webhook, Slack, Kafka) is told each
cycle: Alertmanager's grouping, repeat interval and silences, for setups without it.

Pure: given the receiver's policy, the file's silences, the events it has not
acknowledged, the alerts firing now and what it was last told, :func:`plan` says
which notifications to send, which events a silence mutes and which resolutions to
skip. The rules follow Alertmanager's notification pipeline
(https://prometheus.io/docs/alerting/latest/configuration/#route):

- Alerts are grouped by the values of the receiver's ``group_by`` labels (``...``:
  every label, one alert per notification); one notification per group per cycle.
- A firing alert is told again every ``repeat_interval`` of the clock while it
  fires (none: changes only).
- A silenced event is not sent and is acknowledged as silenced; an alert still
  firing when its silence ends is told then.
- A resolution is sent only to a receiver that was told of the firing (as
  Alertmanager sends no "resolved" for an alert it never notified).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pipeline.alerts.silences import Silence, silenced_by
from pipeline.alerts.state import AlertEvent

GroupKey = tuple[tuple[str, str], ...]


def alert_labels(event: AlertEvent) -> dict[str, str]:
    """The alert's labels as Alertmanager sees them: ``alertname``, ``severity``,
    ``costflow_kind`` and the rule's labels (empty values left out)."""
    return {"alertname": event.alert, "severity": event.severity, "costflow_kind": event.kind,
            **{k: v for k, v in event.labels.items() if v != ""}}  # fmt: skip


@dataclass(frozen=True)
class NotifyPolicy:
    """``group_by``: label names (None: every label); ``repeat_interval``: how often a
    firing alert is told again (None: only its changes)."""

    group_by: tuple[str, ...] | None = ("alertname",)
    repeat_interval: timedelta | None = timedelta(hours=4)

    def key(self, event: AlertEvent) -> GroupKey:
        labels = alert_labels(event)
        names = sorted(labels) if self.group_by is None else self.group_by
        return tuple((name, labels.get(name, "")) for name in names)


@dataclass(frozen=True)
class Told:
    """What a receiver was last told of one alert instance: the latest firing event
    time it acknowledged (``alert_events.at``) and when (the clock)."""

    event_at: datetime
    sent_at: datetime


@dataclass
class Plan:
    """One cycle's work for one receiver."""

    # One list of events per group, in group order: each is one notification.
    notifications: list[tuple[GroupKey, list[AlertEvent]]] = field(default_factory=list)
    silenced: list[AlertEvent] = field(default_factory=list)
    # Resolutions of alerts the receiver was never told of.
    skipped: list[AlertEvent] = field(default_factory=list)


def plan(
    policy: NotifyPolicy,
    silences: Sequence[Silence],
    pending: Sequence[AlertEvent],
    firing: Sequence[AlertEvent],
    told: Mapping[str, Told],
    now: datetime,
) -> Plan:
    """The notifications of one cycle.

    ``pending``: firing and resolved events the receiver has not acknowledged;
    ``firing``: every alert firing now (an event at this cycle each); ``told``: by
    fingerprint; ``now``: the clock silences and repeats are judged on.
    """
    out = Plan()
    send: list[AlertEvent] = []
    for event in pending:
        if silenced_by(silences, alert_labels(event), now) is not None:
            out.silenced.append(event)
        else:
            send.append(event)
    firing_sent = {e.fingerprint: e.starts_at for e in send if e.state == "firing"}
    kept: list[AlertEvent] = []
    for event in send:
        if event.state == "resolved" and not _was_told(event, told, firing_sent):
            out.skipped.append(event)
        else:
            kept.append(event)
    changed = {e.fingerprint for e in pending}
    for event in firing:
        if event.fingerprint in changed:
            continue
        if silenced_by(silences, alert_labels(event), now) is not None:
            continue
        last = told.get(event.fingerprint)
        if last is None or last.event_at < event.starts_at:
            kept.append(event)  # never told of this firing (silenced, or a new receiver)
        elif policy.repeat_interval is not None and now - last.sent_at >= policy.repeat_interval:
            kept.append(event)
    groups: dict[GroupKey, list[AlertEvent]] = {}
    for event in kept:
        groups.setdefault(policy.key(event), []).append(event)
    out.notifications = [
        (key, sorted(events, key=lambda e: (e.alert, e.fingerprint, e.at)))
        for key, events in sorted(groups.items())
    ]
    return out


def _was_told(
    event: AlertEvent, told: Mapping[str, Told], firing_sent: Mapping[str, datetime]
) -> bool:
    last = told.get(event.fingerprint)
    if last is not None and last.event_at >= event.starts_at:
        return True
    return firing_sent.get(event.fingerprint) == event.starts_at
