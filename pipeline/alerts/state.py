"""Alert states per rule and label set, as Prometheus keeps them.

inactive -> pending (the condition holds, for less than ``for``) -> firing ->
resolved (the condition has been found cleared for ``keep_firing_for``, counted
from the first evaluation that found it so, as Prometheus does). A pending alert whose
condition clears goes back to inactive without a notification. Every transition is
an :class:`AlertEvent` and the events are the history (``alert_events``) the current
state is rebuilt from, pending instances included: an evaluator restarted between
cycles (``alerts run --once`` from cron) still fires a rule with a ``for`` once it
has held that long. A firing alert whose condition clears records ``cleared`` (its
``keep_firing_for`` counts from there, across restarts) and ``recurred`` if the
condition comes back before it resolved. Only firings and resolutions are notified
(:data:`NOTIFIED`); a resolution's figures are those of the last evaluation that
found the condition (``details.figures_as_of``). ``restated`` records a change of a closed window's
figures (:mod:`pipeline.alerts.restatements`); it is never an instance's state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from pipeline.alert_identity import fingerprint

State = Literal["pending", "inactive", "firing", "cleared", "recurred", "resolved", "restated"]
# The states of an instance that has fired and not resolved.
FIRING_STATES: frozenset[str] = frozenset({"firing", "cleared", "recurred"})
# The transitions receivers are told of; pending and inactive are bookkeeping.
NOTIFIED: frozenset[str] = frozenset({"firing", "resolved"})


@dataclass(frozen=True)
class Observation:
    """A label set whose condition holds at an evaluation.

    ``value`` and ``expected`` are in the metric's unit (money as Decimal);
    ``impact``: the money at stake so far, when the kind can say.
    """

    labels: Mapping[str, str]
    value: Decimal | float
    expected: Decimal | float | None = None
    impact: Decimal | None = None
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertEvent:
    """A firing, a refresh of a firing alert, or a resolution."""

    alert: str
    kind: str
    fingerprint: str
    labels: Mapping[str, str]
    state: State
    starts_at: datetime
    ends_at: datetime | None
    at: datetime
    value: Decimal | float
    expected: Decimal | float | None
    impact: Decimal | None
    severity: str
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Instance:
    """One alert instance's state (pending or firing)."""

    alert: str
    kind: str
    labels: Mapping[str, str]
    state: State
    active_since: datetime
    last_active: datetime
    observation: Observation
    severity: str
    fired_at: datetime | None = None
    # The first evaluation that found the condition cleared, while firing: the
    # alert keeps firing ``keep_firing_for`` from then (as Prometheus counts it).
    cleared_at: datetime | None = None
    # The instance's identity, fixed when it is created or restored.
    fp: str = ""


class RuleState:
    """The instances of one rule; :meth:`step` applies one evaluation."""

    def __init__(
        self, alert: str, kind: str, severity: str, hold: timedelta, keep_firing: timedelta,
        static: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        """``static``: the rule's own ``labels``, on every event (for routing) but not
        part of an instance's identity (its fingerprint)."""
        self.alert, self.kind, self.severity = alert, kind, severity
        self.hold, self.keep_firing = hold, keep_firing
        self.static = dict(static or {})
        self.instances: dict[str, Instance] = {}

    def restore(self, events: Iterable[AlertEvent]) -> None:
        """Rebuild pending and firing instances from history (the latest event per
        instance; a pending instance keeps the time it became active)."""
        latest: dict[str, AlertEvent] = {}
        for event in sorted(events, key=lambda e: e.at):
            latest[event.fingerprint] = event
        for fp, event in latest.items():
            if event.state != "pending" and event.state not in FIRING_STATES:
                continue
            labels = {k: v for k, v in event.labels.items() if k not in self.static}
            obs = Observation(labels, event.value, event.expected, event.impact,
                              event.details)  # fmt: skip
            fired = event.starts_at if event.state in FIRING_STATES else None
            self.instances[fp] = Instance(
                self.alert, self.kind, labels,
                "pending" if fired is None else "firing", event.starts_at,
                event.at, obs, event.severity, fired_at=fired,
                cleared_at=event.at if event.state == "cleared" else None, fp=fp,
            )  # fmt: skip

    def _event(self, inst: Instance, state: State, at: datetime) -> AlertEvent:
        """``state``'s event for ``inst``: a pending or inactive instance starts when
        it became active, a firing or resolved one when it fired."""
        obs = inst.observation
        starts = inst.active_since if state in ("pending", "inactive") else inst.fired_at
        assert starts is not None
        details = dict(obs.details)
        if state == "resolved":
            details["figures_as_of"] = inst.last_active.isoformat()
        return AlertEvent(
            alert=self.alert, kind=self.kind,
            fingerprint=inst.fp or fingerprint(self.alert, inst.labels),
            labels={**self.static, **inst.labels}, state=state, starts_at=starts,
            ends_at=at if state in ("resolved", "inactive") else None, at=at, value=obs.value,
            expected=obs.expected, impact=obs.impact, severity=inst.severity,
            details=details,
        )  # fmt: skip

    def step(self, at: datetime, observations: Iterable[Observation]) -> list[AlertEvent]:
        """Apply an evaluation at ``at``; the transitions it causes (pending,
        inactive, firing, resolved: filter on :data:`NOTIFIED` for notifications).

        Firing instances that stay firing are not in the result (see
        :meth:`firing`, which receivers refresh from).
        """
        events: list[AlertEvent] = []
        seen: set[str] = set()
        for obs in observations:
            fp = fingerprint(self.alert, obs.labels)
            seen.add(fp)
            inst = self.instances.get(fp)
            if inst is None:
                inst = Instance(self.alert, self.kind, dict(obs.labels), "pending", at, at, obs,
                                self.severity, fp=fp)  # fmt: skip
                self.instances[fp] = inst
            if inst.cleared_at is not None:
                events.append(self._event(inst, "recurred", at))
            inst.last_active, inst.observation, inst.cleared_at = at, obs, None
            if inst.state == "pending" and at - inst.active_since >= self.hold:
                inst.state, inst.fired_at = "firing", at
                events.append(self._event(inst, "firing", at))
            elif inst.state == "pending" and inst.active_since == at:
                events.append(self._event(inst, "pending", at))
        for fp, inst in list(self.instances.items()):
            if fp in seen:
                continue
            if inst.state == "pending":
                events.append(self._event(inst, "inactive", at))
                del self.instances[fp]
                continue
            newly = inst.cleared_at is None
            if inst.cleared_at is None:
                inst.cleared_at = at
            if at - inst.cleared_at >= self.keep_firing:
                events.append(self._event(inst, "resolved", at))
                del self.instances[fp]
            elif newly:
                events.append(self._event(inst, "cleared", at))
        return events

    def fire_now(self, at: datetime, obs: Observation) -> AlertEvent | None:
        """Fire ``obs`` at ``at`` without ``for`` (a restated window: its condition held
        for the whole closed window); None when that instance is firing already. It
        resolves like any other once evaluations stop finding it."""
        fp = fingerprint(self.alert, obs.labels)
        if fp in self.instances:
            return None
        inst = Instance(self.alert, self.kind, dict(obs.labels), "firing", at, at, obs,
                        self.severity, fired_at=at, fp=fp)  # fmt: skip
        self.instances[fp] = inst
        return self._event(inst, "firing", at)

    def firing(self, at: datetime) -> list[AlertEvent]:
        """Every firing instance as of ``at`` (what a receiver re-sends)."""
        return [
            self._event(i, "firing", at) for i in self.instances.values() if i.state == "firing"
        ]


def event_record(event: AlertEvent) -> dict[str, object]:
    """An event as JSON-ready data (``alerts test`` lines, the Kafka receiver's
    records): money and figures as exact decimal text."""
    from pipeline.alerts.templates import show

    return {
        "alert": event.alert,
        "kind": event.kind,
        "fingerprint": event.fingerprint,
        "labels": dict(event.labels),
        "state": event.state,
        "starts_at": event.starts_at.isoformat(),
        "ends_at": event.ends_at.isoformat() if event.ends_at else None,
        "at": event.at.isoformat(),
        "value": show(event.value),
        "expected": show(event.expected) if event.expected is not None else None,
        "impact": show(event.impact) if event.impact is not None else None,
        "severity": event.severity,
        "details": dict(event.details),
    }
