"""Evaluation cycles: rules -> observations -> states -> history -> receivers.

One :class:`AlertEngine` holds a rule file's states. :meth:`AlertEngine.cycle`
evaluates every group that is due at a time, records the firings and resolutions
(``alert_events``) and then delivers, to each receiver, what it has not
acknowledged (``alert_deliveries``); Alertmanager also gets every firing alert again
(it resolves an alert by itself when costflow stops re-sending it).
:func:`backtest` runs the same cycles over stored history without recording or
delivering anything.

Evaluation times are the data's time: ``costflow alerts run`` evaluates at the
latest call time the store holds (:func:`data_time`), never ahead of it, so an hour
is judged only once its calls are in; ``--at`` replays a given time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.alert_identity import fingerprint
from pipeline.alerts import anomaly, kinds, restatements
from pipeline.alerts.budget import period_bounds
from pipeline.alerts.dispatch import notify
from pipeline.alerts.history import AlertHistory
from pipeline.alerts.receivers import (
    AlertmanagerDelivery,
    Delivery,
    KafkaDelivery,
    SlackDelivery,
    WebhookDelivery,
)
from pipeline.alerts.restatements import Judgement
from pipeline.alerts.rules import AlertRulesInvalid
from pipeline.alerts.state import FIRING_STATES, NOTIFIED, AlertEvent, Observation, RuleState
from pipeline.config import KafkaSettings
from pipeline.query.alert_inputs import HOUR, AlertInputs, CycleCache, floor_hour

log = logging.getLogger("costflow.alerts")
# Undelivered events older than this are not retried (a receiver down for a week
# gets the current state, not a week of history).
REDELIVER_WITHIN = timedelta(days=1)
# How long (data time) after a task reached a stage-1 cap stage 1's firing may be
# missing from the history before the evaluator raises it itself. The data time is
# bounded by both stages' committed offsets, so by then the sink has stored it.
STAGE1_GRACE = timedelta(minutes=2)
# Stage-1 firings recorded up to this long before the last adoption are looked at
# again (the sink's clock and insert visibility may lag the evaluator's).
ADOPT_MARGIN = timedelta(minutes=10)
# The last instant of a closed window (calls are stored to the millisecond).
_TICK = timedelta(microseconds=1)


def _empty(rule: Any) -> str:
    """The digest of an hour with nothing stored, for an anomaly rule's judgements."""
    if rule.metric in anomaly.TASK_METRICS:
        return restatements.EMPTY_TASKS
    return restatements.EMPTY


class EvaluationBeforeHistory(AlertRulesInvalid):
    """An evaluation time before the latest one the alert history holds: judging it
    would record transitions out of order (a firing after its resolution)."""


def stage1_rule(rule: Any) -> bool:
    """A task_budget rule whose caps stage 1 checks (pipeline.join.task_caps); with
    ``p99_multiple`` it needs the stored histograms and is evaluated here."""
    return bool(rule.kind == "task_budget" and rule.p99_multiple is None)


class AlertEngine:
    """The states of one rule file's rules, evaluated over ``inputs``."""

    def __init__(self, rule_file: Any, inputs: AlertInputs) -> None:
        self.inputs = inputs
        self.groups = list(rule_file.groups)
        self.receivers_config = list(rule_file.receivers)
        self.silences = list(rule_file.silences)
        self.rules = {r.alert: r for g in self.groups for r in g.rules}
        self.states = {
            r.alert: RuleState(
                r.alert, r.kind, r.severity.value, r.for_, r.keep_firing_for, r.labels
            )
            for r in self.rules.values()
        }
        self.last_run: dict[str, datetime] = {}
        self.last_clock: dict[str, datetime] = {}
        # Anomaly rules judge whole hours: evaluated once per hour, reused in between.
        self._hourly: dict[str, tuple[datetime, list[Observation]]] = {}
        # Live (cycle, not a backtest): stage 1 raises the task caps (adopted, kept and
        # resolved here, raised only as a fallback) and closed windows are kept.
        self.live = False
        # The latest evaluation time in the history (restore) or of this engine.
        self.evaluated_until: datetime | None = None
        # Receivers the last cycle could not notify (their events stay in the outbox).
        self.failed_receivers: list[str] = []
        # Rules removed from the files whose alerts this run resolved (delivered too).
        self.retired: set[str] = set()
        self._history: AlertHistory | None = None
        self._adopted_at: datetime | None = None
        # Live (cycle): windows judged this cycle, kept to notice later restatements,
        # and every kept judgement of the lookback (read from the history once).
        self._judged: list[Judgement] = []
        self._windows: dict[tuple[str, datetime], Judgement] | None = None

    def annotations(self) -> dict[str, dict[str, str]]:
        return {name: dict(rule.annotations) for name, rule in self.rules.items()}

    def deliveries(
        self, kafka: KafkaSettings | None = None, unconfigured: list[str] | None = None
    ) -> list[Delivery]:
        """The configured receivers (reads their secrets now); ``kafka``: the cluster
        of ``kafka`` receivers (default: the ``COSTFLOW_KAFKA_*`` settings).

        Raises AlertRulesInvalid for a receiver whose secret is missing, unless
        ``unconfigured`` is given: then the receiver is left out and what to do is
        appended there (its events stay in the outbox, see :meth:`cycle`).
        """
        notes = self.annotations()
        resend = 4 * min((g.interval for g in self.groups), default=timedelta(minutes=1))
        out: list[Delivery] = []
        for r in self.receivers_config:
            try:
                if r.type == "alertmanager":
                    out.append(AlertmanagerDelivery(r, notes, max(resend, timedelta(minutes=5))))
                elif r.type == "webhook":
                    out.append(WebhookDelivery(r, notes))
                elif r.type == "kafka":
                    out.append(KafkaDelivery(r, kafka or KafkaSettings()))
                else:
                    out.append(SlackDelivery(r, notes))
            except AlertRulesInvalid as exc:
                if unconfigured is None:
                    raise
                unconfigured.append(str(exc))
        return out

    def restore(self, history: AlertHistory, resolve_removed: bool = False) -> int:
        """Rebuild firing instances from history; how many are firing.

        Alerts still firing in the history for rules not in these files are either a
        removed rule's or another evaluator's, which this one cannot tell apart: they
        are named, and resolved only when ``resolve_removed`` says they are removed
        (``alerts run --resolve-removed``): each gets a recorded resolution that this
        engine's receivers are told at the next cycle."""
        latest = history.latest(self.rules)
        self.evaluated_until = history.last_evaluated(self.rules)
        others = history.firing_elsewhere(self.rules)
        listed = ", ".join(f"{name} ({n})" for name, n in others.items())
        if others and resolve_removed:
            now = datetime.now(UTC)
            ended = [
                replace(e, state="resolved", at=max(now, e.at), ends_at=max(now, e.at),
                        details={**e.details, "resolved_because": "rule removed from the "
                                 "rule files (alerts run --resolve-removed)"})
                for e in history.latest(others)
                if e.state in FIRING_STATES
            ]  # fmt: skip
            history.record(ended)
            self.retired |= set(others)
            log.warning("resolved %d alerts of rules removed from the files: %s",
                        len(ended), listed)  # fmt: skip
        elif others:
            log.warning(
                "alert_events holds firing alerts of rules not in these files: %s. A rule "
                "removed from the files leaves its alerts firing there until `costflow "
                "alerts run --resolve-removed` resolves them; another evaluator's rules "
                "are its own (do not resolve those).",
                listed,
            )  # fmt: skip
        for name, state in self.states.items():
            state.restore(e for e in latest if e.alert == name)
        return sum(len(s.instances) for s in self.states.values())

    def adopt(self, history: AlertHistory) -> int:
        """Take over stage 1's task_budget firings (recorded by the sink) this engine
        does not hold yet: all of them the first time, then those recorded since the
        last adoption (by the clock, with a margin for the sink's clock); how many."""
        names = [name for name, rule in self.rules.items() if stage1_rule(rule)]
        if not names:
            return 0
        clock = datetime.now(UTC)
        since = self._adopted_at - ADOPT_MARGIN if self._adopted_at is not None else None
        latest = {e.fingerprint: e for e in history.latest(names, recorded_since=since)}
        self._adopted_at = clock
        adopted = 0
        for fp, event in latest.items():
            state = self.states[event.alert]
            if event.state in FIRING_STATES and fp not in state.instances:
                state.restore([event])
                adopted += 1
        return adopted

    def _stage1(self, rule: Any, at: datetime, found: list[Observation]) -> list[Observation]:
        """Over-cap tasks of a stage-1 rule: those whose alert is held (kept firing
        while active), and those that reached the cap :data:`STAGE1_GRACE` of data
        time before ``at`` and that stage 1 has not raised (it was not given the rule).
        The grace counts in the data, so a fresh process per cycle (cron) raises too."""
        held = self.states[rule.alert].instances
        out, late = [], {}
        for obs in found:
            fp = fingerprint(rule.alert, obs.labels)
            if fp in held:
                out.append(obs)
            elif at - datetime.fromisoformat(obs.details["crossed_at"]) >= STAGE1_GRACE:
                late[fp] = obs
        # Once per task and rule: a task that fired and resolved (it went quiet) and is
        # active again is not raised again.
        fired = self._history.fired(rule.alert, list(late)) if self._history and late else set()
        for fp, obs in late.items():
            crossed = datetime.fromisoformat(obs.details["crossed_at"])
            if fp not in fired:
                log.error(
                    "%s: task %s reached its cap at %s and stage 1 has not raised it %s "
                    "later; is the worker given the rule files (COSTFLOW_WORKER_ALERT_RULES, "
                    "or the sink's COSTFLOW_SINK_ALERT_RULES under `costflow up`)? Raised "
                    "here instead.", rule.alert, obs.labels.get("task_id"),
                    crossed.isoformat(), STAGE1_GRACE,
                )  # fmt: skip
                out.append(replace(obs, details={**obs.details, "evaluated_in": "evaluator"}))
        return out

    def _observe(
        self, rule: Any, at: datetime, inputs: AlertInputs, now: datetime | None
    ) -> list[Observation]:
        if self.live and stage1_rule(rule):
            return self._stage1(rule, at, kinds.evaluate(rule, inputs, at, now))
        if rule.kind != "anomaly":
            return kinds.evaluate(rule, inputs, at, now)
        # The hour judged: the last closed one, or for task metrics the last one closed
        # `decision_lag` ago (anomaly.judged_hour); judged once, reused until it moves.
        judged = anomaly.judged_hour(rule, at)
        cached = self._hourly.get(rule.alert)
        if cached is None or cached[0] != judged:
            # The digest is read first: a call stored while judging shows as a change.
            digest = self._digests(rule, inputs, judged, judged + HOUR, at).get(judged)
            cached = (judged, anomaly.evaluate(rule, inputs, at, judged))
            self._hourly[rule.alert] = cached
            if self.live:
                self._judged.append(restatements.judgement(
                    rule.alert, (judged, judged + HOUR), digest or _empty(rule), cached[1], at,
                ))  # fmt: skip
        return cached[1]

    @staticmethod
    def _digests(
        rule: Any, inputs: AlertInputs, start: datetime, end: datetime, at: datetime
    ) -> dict[datetime, str]:
        """The digests an anomaly rule's judgements keep, per hour in ``[start, end)``:
        of the hour's tasks as of ``at`` for a task metric, else of its calls."""
        if rule.metric in anomaly.TASK_METRICS:
            return restatements.task_hour_digests(inputs, start, end, at)
        return restatements.hour_digests(inputs, start, end)

    def _judge(
        self, rule: Any, window: tuple[datetime, datetime], inputs: AlertInputs, at: datetime
    ) -> list[Observation]:
        """What ``rule`` finds of a closed window at ``at``: an anomaly rule of its hour
        (task figures decided as of ``at``), a budget the thresholds its period reached
        by its end."""
        if rule.kind == "anomaly":
            return anomaly.evaluate(rule, inputs, at, window[0])
        found = kinds.evaluate(rule, inputs, window[1] - _TICK)
        return [o for o in found if "threshold" in o.labels]

    def _fire_unfired(
        self, rule: Any, found: list[Observation], at: datetime, history: AlertHistory
    ) -> list[AlertEvent]:
        """Fire the thresholds a closed period reached that never fired while it was
        open (reached after its last evaluation): once, at its closing judgement."""
        state = self.states[rule.alert]
        ids = {fingerprint(rule.alert, o.labels): o for o in found}
        fired = history.fired(rule.alert, list(ids)) if ids else set()
        out = []
        for fp, obs in ids.items():
            if fp in fired or fp in state.instances:
                continue
            note = {**obs.details, "judged_at_close": "reached after the period's last evaluation"}
            event = state.fire_now(at, replace(obs, details=note))
            if event is not None:
                out.append(event)
        return out

    def restate(self, at: datetime, history: AlertHistory) -> list[AlertEvent]:
        """Judge each budget's last closed period once, then judge again the windows
        judged in the last :data:`restatements.LOOKBACK` whose stored calls (for an
        anomaly rule of a task metric: whose tasks' figures, decided as of ``at``)
        changed since; the ``restated`` events and the firings of label sets found only
        now. The judgements to keep are added to this cycle's."""
        rules = {n: r for n, r in self.rules.items() if r.kind in ("anomaly", "budget")}
        events: list[AlertEvent] = []
        if not rules:
            return events
        since = floor_hour(at) - restatements.LOOKBACK
        inputs = CycleCache(self.inputs)
        fresh = {(j.alert, j.window_start) for j in self._judged}
        if self._windows is None:
            self._windows = {(j.alert, j.window_start): j for j in history.judgements(rules, since)}
        for key in [k for k, j in self._windows.items() if j.window_start < since]:
            del self._windows[key]
        stored = [j for key, j in self._windows.items() if key not in fresh and j.alert in rules]
        held = fresh | {(j.alert, j.window_start) for j in stored}
        for rule in rules.values():
            if rule.kind != "budget":
                continue
            current, _, _ = period_bounds(at, rule.period, rule.timezone)
            closed = period_bounds(current - _TICK, rule.period, rule.timezone)[:2]
            if closed[1] > since and (rule.alert, closed[0]) not in held:
                digest = restatements.window_digest(inputs, *closed)  # before judging
                found = self._judge(rule, closed, inputs, at)
                self._judged.append(restatements.judgement(rule.alert, closed, digest, found, at))
                events += self._fire_unfired(rule, found, at, history)
        # Hour digests of the lookback, read once per cycle for each kind of judgement
        # kept (calls; tasks as of `at`). Every rule reads the same ones.
        hours: dict[bool, dict[datetime, str]] = {}
        for old in stored:
            rule, window = rules[old.alert], (old.window_start, old.window_end)
            if rule.kind == "anomaly":
                tasks = rule.metric in anomaly.TASK_METRICS
                if tasks and old.window_start > anomaly.judged_hour(rule, at):
                    # Not due yet (judged at its close before task metrics waited for
                    # decisions): judged afresh once its tasks are decided.
                    continue
                if tasks not in hours:
                    hours[tasks] = self._digests(rule, inputs, since, floor_hour(at), at)
                digest = hours[tasks].get(old.window_start, _empty(rule))
            else:
                digest = restatements.window_digest(inputs, *window)
            if digest == old.digest:
                continue
            found = self._judge(rule, window, inputs, at)
            changes, raised = restatements.restate(rule, old, found, at)
            events.extend(changes)
            for obs in raised:
                fired = self.states[rule.alert].fire_now(at, obs)
                if fired is not None:
                    events.append(fired)
            log.warning(
                "%s: the window from %s changed since it was judged (digest %s -> %s: "
                "calls:unpriced:retried:tokens:cost, or for task metrics tasks:calls:"
                "unpriced:cost/decided:calls:unpriced:cost/accepted:waste): %d figures "
                "restated, %d label sets found only now",
                rule.alert, old.window_start.isoformat(), old.digest, digest, len(changes),
                len(raised),
            )  # fmt: skip
            self._judged.append(restatements.judgement(rule.alert, window, digest, found, at))
        return events

    def evaluate(
        self, at: datetime, force: bool = False, now: datetime | None = None
    ) -> list[AlertEvent]:
        """Evaluate every group due at the data's time ``at`` (all of them if
        ``force``; ``now``: the clock, default ``at``); the firings and resolutions."""
        events: list[AlertEvent] = []
        inputs = CycleCache(self.inputs)  # rules of one evaluation share their windows
        clock = now or at
        for group in self.groups:
            last = self.last_run.get(group.name)
            # Due when the data's time or the clock moved on by the interval: calls stored
            # late (the data's time standing still) are judged all the same.
            last_clock = self.last_clock.get(group.name, clock)
            moved = last is None or at - last >= group.interval
            if not force and not moved and clock - last_clock < group.interval:
                continue
            self.last_run[group.name], self.last_clock[group.name] = at, clock
            for rule in group.rules:
                observations = self._observe(rule, at, inputs, now)
                events.extend(self.states[rule.alert].step(at, observations))
        return events

    def firing(self, at: datetime) -> list[AlertEvent]:
        return [e for s in self.states.values() for e in s.firing(at)]

    def cycle(
        self,
        at: datetime,
        history: AlertHistory,
        deliveries: Sequence[Delivery],
        force: bool = False,
        now: datetime | None = None,
    ) -> list[AlertEvent]:
        """One cycle: evaluate, record every transition, deliver the firings and
        resolutions; the transitions. Raises nothing for a receiver that fails
        (logged; its events stay undelivered and are retried next cycle).

        Raises EvaluationBeforeHistory when ``at`` is before the latest evaluation
        (:meth:`restore` reads it from the history): nothing is evaluated then.
        """
        if self.evaluated_until is not None and at < self.evaluated_until:
            raise EvaluationBeforeHistory(
                f"{at.isoformat()} is before these rules' latest evaluation "
                f"({self.evaluated_until.isoformat()}) in alert_events; judging it would record "
                "transitions out of order. Replay the past with `costflow alerts test FILES "
                "--since T1 --until T2` (it records nothing), or use another --database"
            )
        self.evaluated_until = at
        self.live, self._history = True, history
        self.adopt(history)
        events = self.evaluate(at, force, now)
        events += self.restate(at, history)
        # Events first: a crash before the judgements are kept judges again (the
        # firings are not repeated: the restored instance is firing already).
        history.record(events)
        history.judged(self._judged)
        if self._windows is not None:
            self._windows.update({(j.alert, j.window_start): j for j in self._judged})
        self._judged = []
        clock = now if now is not None else datetime.now(UTC)
        firing = self.firing(at)
        self.failed_receivers = []
        for delivery in deliveries:
            pending = history.undelivered(delivery.name, at - REDELIVER_WITHIN)
            pending = [e for e in pending if e.alert in self.rules or e.alert in self.retired]
            if not notify(delivery, history, pending, firing, self.silences, at, clock):
                self.failed_receivers.append(delivery.name)
        return events


# Calls are stored to the millisecond: the data time is this after the latest one.
DATA_TIME_TICK = timedelta(milliseconds=1)


def data_time(
    client: Any, now: datetime | None = None, unfinished: datetime | None = None
) -> datetime | None:
    """Just after the latest call time the store holds (1 ms: calls are stored to
    the millisecond, and windows are ``[start, end)``, so the latest call is in
    them), never after ``now`` nor after ``unfinished`` (the first event time the
    pipeline has not finished, see :mod:`pipeline.kafka.backlog`, itself left out):
    the time alert windows end at. None when there are no calls."""
    now = now or datetime.now(UTC)
    if unfinished is not None:
        now = min(now, unfinished)
    (hour,) = client.query("SELECT max(hour) FROM call_costs_hourly").result_rows[0]
    if hour is None or hour.year < 2000:
        return None
    (latest,) = client.query(
        "SELECT max(ts) FROM calls WHERE ts >= %(h)s", parameters={"h": hour}
    ).result_rows[0]
    stored: datetime = latest.replace(tzinfo=UTC) if latest.tzinfo is None else latest
    return min(stored + DATA_TIME_TICK, now)


def backtest(
    rule_file: Any, inputs: AlertInputs, since: datetime, until: datetime
) -> Iterator[AlertEvent]:
    """Every firing and resolution the rules would have raised over stored history,
    evaluating each group at its own interval from ``since`` to ``until``."""
    engine = AlertEngine(rule_file, inputs)
    step = min(g.interval for g in engine.groups)
    at = since
    while at <= until:
        yield from (e for e in engine.evaluate(at) if e.state in NOTIFIED)
        at += step
