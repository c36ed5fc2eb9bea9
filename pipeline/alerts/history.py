"""Alert history in ClickHouse (``alert_events``, ``alert_deliveries``; migration 0012;
``alert_judgements``, migration 0016).

The evaluator writes each transition (pending and inactive too, so that pending
instances survive a restart) before delivering the firings and resolutions, and
marks each delivery after the receiver acknowledged it, so after a crash anywhere
the history says what is pending or firing and what each receiver has not been told
yet (an outbox).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pipeline.alerts.notify import Told
from pipeline.alerts.restatements import Judgement
from pipeline.alerts.state import NOTIFIED, AlertEvent
from pipeline.alerts.templates import show

_EVENT_COLUMNS = [
    "at", "alert", "kind", "fingerprint", "labels", "state", "starts_at", "ends_at",
    "value", "expected", "impact", "severity", "details",
]  # fmt: skip


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _number(text: str) -> Decimal | None:
    try:
        return Decimal(text) if text else None
    except InvalidOperation:
        return None


class AlertHistory:
    """Events and deliveries over a clickhouse-connect client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def record(self, events: Iterable[AlertEvent]) -> None:
        rows = [
            (
                e.at, e.alert, e.kind, e.fingerprint, dict(e.labels), e.state, e.starts_at,
                e.ends_at, show(e.value), show(e.expected), e.impact, e.severity, dict(e.details),
            )
            for e in events
        ]  # fmt: skip
        if rows:
            self.client.insert("alert_events", rows, column_names=_EVENT_COLUMNS)

    def events_since(
        self, since: datetime, alerts: Iterable[str] | None = None
    ) -> list[AlertEvent]:
        """Events at or after ``since`` (oldest first), of ``alerts`` if given."""
        where, params = "at >= %(since)s", dict[str, Any](since=since)
        if alerts is not None:
            where += " AND alert IN %(alerts)s"
            params["alerts"] = list(alerts)
        result = self.client.query(
            f"SELECT {', '.join(_EVENT_COLUMNS)} FROM alert_events FINAL WHERE {where} "
            "ORDER BY at, alert, fingerprint, state",
            parameters=params,
        )
        return [self._event(row) for row in result.result_rows]

    def latest(
        self, alerts: Iterable[str], recorded_since: datetime | None = None
    ) -> list[AlertEvent]:
        """Each instance's latest event, for restoring state (any age: a firing
        alert stays firing until its resolution is recorded); with ``recorded_since``
        (the clock), only instances with an event recorded since then."""
        # A restated window is a record, never an instance's state.
        where = "alert IN %(alerts)s AND state != 'restated'"
        params = dict[str, Any](alerts=list(alerts))
        if recorded_since is not None:
            where += (" AND fingerprint IN (SELECT fingerprint FROM alert_events "
                      "WHERE alert IN %(alerts)s AND recorded_at >= %(since)s)")  # fmt: skip
            params["since"] = recorded_since
        result = self.client.query(
            f"SELECT {', '.join(_EVENT_COLUMNS)} FROM alert_events FINAL "
            f"WHERE {where} ORDER BY at DESC, state DESC LIMIT 1 BY fingerprint",
            parameters=params,
        )
        return [self._event(row) for row in result.result_rows]

    def firing_elsewhere(self, alerts: Iterable[str]) -> dict[str, int]:
        """Alerts other than ``alerts`` with instances whose latest event is a firing
        one, and how many: rules removed from the files, or another evaluator's."""
        rows = self.client.query(
            "SELECT alert, count() FROM (SELECT alert, fingerprint, "
            "argMax(state, (at, state)) AS s FROM alert_events FINAL "
            "WHERE alert NOT IN %(a)s AND state != 'restated' "
            "GROUP BY alert, fingerprint) WHERE s IN ('firing', 'cleared', 'recurred') "
            "GROUP BY alert ORDER BY alert",
            parameters={"a": list(alerts) or [""]},
        ).result_rows
        return {str(alert): int(n) for alert, n in rows}

    def last_evaluated(self, alerts: Iterable[str]) -> datetime | None:
        """The latest evaluation time of ``alerts`` in the history (their events and
        their judgements of closed windows), if any."""
        (latest,) = self.client.query(
            "SELECT greatest((SELECT max(at) FROM alert_events WHERE alert IN %(a)s), "
            "(SELECT max(judged_at) FROM alert_judgements WHERE alert IN %(a)s))",
            parameters={"a": list(alerts)},
        ).result_rows[0]
        return _utc(latest) if latest is not None and latest.year >= 2000 else None

    def fired(self, alert: str, fingerprints: list[str]) -> set[str]:
        """Those of ``fingerprints`` of ``alert`` that have ever fired."""
        rows = self.client.query(
            "SELECT DISTINCT fingerprint FROM alert_events WHERE alert = %(a)s "
            "AND fingerprint IN %(fps)s AND state = 'firing'",
            parameters={"a": alert, "fps": fingerprints},
        ).result_rows
        return {fp for (fp,) in rows}

    def judged(self, judgements: Iterable[Judgement]) -> None:
        """Keep what rules judged of closed windows (the latest per rule and window
        wins, see :mod:`pipeline.alerts.restatements`)."""
        rows = [
            (j.alert, j.window_start, j.window_end, j.digest, j.findings_json(), j.judged_at)
            for j in judgements
        ]
        if rows:
            self.client.insert(
                "alert_judgements", rows,
                column_names=["alert", "window_start", "window_end", "digest", "findings",
                              "judged_at"],
            )  # fmt: skip

    def judgements(self, alerts: Iterable[str], since: datetime) -> list[Judgement]:
        """The latest judgement of each window of ``alerts`` starting at or after
        ``since``."""
        rows = self.client.query(
            "SELECT alert, window_start, window_end, digest, findings, judged_at "
            "FROM alert_judgements "
            "FINAL WHERE alert IN %(alerts)s AND window_start >= %(since)s",
            parameters={"alerts": list(alerts), "since": since},
        ).result_rows
        return [
            Judgement(
                alert,
                _utc(start) or start,
                _utc(end) or end,
                digest,
                Judgement.parse_findings(found),
                _utc(judged) or judged,
            )
            for alert, start, end, digest, found, judged in rows
        ]

    @staticmethod
    def _event(row: tuple[Any, ...]) -> AlertEvent:
        data = dict(zip(_EVENT_COLUMNS, row, strict=True))
        value = _number(data["value"])
        return AlertEvent(
            alert=data["alert"], kind=data["kind"], fingerprint=data["fingerprint"],
            labels=dict(data["labels"]), state=data["state"],
            starts_at=_utc(data["starts_at"]) or datetime.min.replace(tzinfo=UTC),
            ends_at=_utc(data["ends_at"]), at=_utc(data["at"]) or datetime.min.replace(tzinfo=UTC),
            value=value if value is not None else Decimal(0),
            expected=_number(data["expected"]), impact=data["impact"],
            severity=data["severity"], details=dict(data["details"]),
        )  # fmt: skip

    def delivered(
        self,
        receiver: str,
        events: Iterable[AlertEvent],
        outcome: str = "sent",
        now: datetime | None = None,
    ) -> None:
        """Acknowledge events for ``receiver`` at the clock ``now`` (default: now);
        ``outcome``: sent (the receiver has them), silenced (a silence muted them) or
        skipped (a resolution of an alert the receiver was never told of)."""
        when = now or datetime.now(UTC)
        rows = [(receiver, e.fingerprint, e.at, e.state, outcome, when) for e in events]
        if rows:
            self.client.insert(
                "alert_deliveries",
                rows,
                column_names=["receiver", "fingerprint", "at", "state", "outcome", "delivered_at"],
            )

    def told(self, receiver: str) -> dict[str, Told]:
        """By fingerprint, the latest firing ``receiver`` was sent and when."""
        rows = self.client.query(
            "SELECT fingerprint, max(at), max(delivered_at) FROM alert_deliveries "
            "WHERE receiver = %(r)s AND state = 'firing' AND outcome = 'sent' "
            "GROUP BY fingerprint",
            parameters={"r": receiver},
        ).result_rows
        return {fp: Told(_utc(at) or at, _utc(sent) or sent) for fp, at, sent in rows}

    def undelivered(self, receiver: str, since: datetime) -> list[AlertEvent]:
        """Events at or after ``since`` the receiver has not acknowledged."""
        done = {
            (fp, _utc(at), state)
            for fp, at, state in self.client.query(
                "SELECT fingerprint, at, state FROM alert_deliveries FINAL "
                "WHERE receiver = %(r)s AND at >= %(since)s",
                parameters={"r": receiver, "since": since},
            ).result_rows
        }
        return [
            e
            for e in self.events_since(since)
            if e.state in NOTIFIED and (e.fingerprint, e.at, e.state) not in done
        ]
