"""Where alerts go: Alertmanager's v2 API, a signed webhook, Slack.

Each receiver takes a list of :class:`AlertEvent` and returns once the other side
acknowledged them (HTTP 2xx), or raises :class:`AlertDeliveryFailed`; urllib3
retries connection errors and 5xx with backoff first. Secrets (the webhook's signing
key, Slack's URL) come from the environment or files and are never logged.

- Alertmanager (https://prometheus.io/docs/alerting/latest/clients/): ``POST
  /api/v2/alerts`` with ``labels`` (``alertname`` and ``severity`` included),
  ``annotations``, ``startsAt`` and ``endsAt``. Firing alerts are re-sent every cycle
  with ``endsAt`` a few intervals ahead (as Prometheus does), so Alertmanager
  resolves them by itself if costflow stops; a resolution is sent with ``endsAt``
  at the resolution.
- Webhook: the JSON Alertmanager posts to its own webhook receivers (version 4),
  with header ``X-Costflow-Signature: sha256=<hex HMAC-SHA256 of the body>``.
- Slack incoming webhook: ``{"text": ...}``, one line per alert.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import urllib3

from pipeline.alerts.notify import GroupKey, NotifyPolicy, alert_labels
from pipeline.alerts.rules import (
    AlertmanagerReceiver,
    KafkaReceiver,
    SlackReceiver,
    WebhookReceiver,
    secret_from,
)
from pipeline.alerts.state import AlertEvent, event_record
from pipeline.alerts.templates import render, show
from pipeline.config import KafkaSettings
from pipeline.errors import CostflowError

_RETRIES = urllib3.Retry(total=3, backoff_factor=0.5, status_forcelist=(500, 502, 503, 504),
                         allowed_methods=None)  # fmt: skip
_TIMEOUT = urllib3.Timeout(connect=5.0, read=10.0)


class AlertDeliveryFailed(CostflowError):
    """A receiver did not acknowledge alerts; they stay undelivered and are retried
    next cycle."""

    code = "alert_delivery_failed"


class Delivery(Protocol):
    name: str
    # How costflow groups, repeats and silences for this receiver; None: Alertmanager,
    # which does all that itself and wants firing alerts re-sent each cycle.
    policy: NotifyPolicy | None

    def send(self, events: Sequence[AlertEvent], at: datetime, group: GroupKey = ()) -> None:
        """Deliver one notification (``group``: its group labels)."""
        ...


def _policy(receiver: WebhookReceiver | SlackReceiver) -> NotifyPolicy:
    everything = list(receiver.group_by) == ["..."]
    return NotifyPolicy(None if everything else tuple(receiver.group_by),
                        receiver.repeat_interval)  # fmt: skip


def annotations_of(event: AlertEvent, templates: dict[str, str]) -> dict[str, str]:
    """Rendered annotations plus the figures every alert carries."""
    out = {k: render(t, event.labels, event.value, event.expected, event.impact, event.details)
           for k, t in templates.items()}  # fmt: skip
    out.setdefault("value", show(event.value))
    if event.expected is not None:
        out.setdefault("expected", show(event.expected))
    if event.impact is not None:
        out.setdefault("impact", show(event.impact))
    for key, value in event.details.items():
        out.setdefault(key, value)
    return out


def _post(http: urllib3.PoolManager, url: str, body: bytes, headers: dict[str, str],
          what: str) -> None:  # fmt: skip
    try:
        response = http.request("POST", url, body=body, headers=headers, timeout=_TIMEOUT,
                                retries=_RETRIES)  # fmt: skip
    except urllib3.exceptions.HTTPError as exc:
        raise AlertDeliveryFailed(f"{what}: {type(exc).__name__}: {exc}") from None
    if not 200 <= response.status < 300:
        text = response.data[:300].decode("utf-8", "replace")
        raise AlertDeliveryFailed(f"{what} answered HTTP {response.status}: {text}")


class AlertmanagerDelivery:
    """Posts to Alertmanager's v2 API."""

    policy: NotifyPolicy | None = None

    def __init__(self, receiver: AlertmanagerReceiver, annotations: dict[str, dict[str, str]],
                 resend_for: timedelta) -> None:  # fmt: skip
        self.name = receiver.name
        self.url = receiver.url.rstrip("/") + "/api/v2/alerts"
        self.annotations, self.resend_for = annotations, resend_for
        self.http = urllib3.PoolManager()

    def payload(self, events: Sequence[AlertEvent], at: datetime) -> list[dict[str, Any]]:
        out = []
        # Alertmanager reads endsAt on its own clock: a firing alert is due again
        # within resend_for of now, whatever the data's time.
        # A resolution is resolved now on that clock (never in its future, where
        # Alertmanager would keep the alert active until then).
        now = datetime.now(UTC)
        for e in events:
            if e.state == "resolved" and e.ends_at is not None:
                ends = min(e.ends_at, now)
            else:
                ends = now + self.resend_for
            out.append({
                "labels": alert_labels(e),
                "annotations": annotations_of(e, self.annotations.get(e.alert, {})),
                "startsAt": e.starts_at.isoformat(),
                "endsAt": ends.isoformat(),
            })  # fmt: skip
        return out

    def send(self, events: Sequence[AlertEvent], at: datetime, group: GroupKey = ()) -> None:
        if events:
            body = json.dumps(self.payload(events, at)).encode()
            _post(self.http, self.url, body, {"Content-Type": "application/json"},
                  f"Alertmanager {self.url}")  # fmt: skip


class WebhookDelivery:
    """Posts Alertmanager's webhook JSON, signed with HMAC-SHA256: one post per group."""

    def __init__(self, receiver: WebhookReceiver, annotations: dict[str, dict[str, str]]) -> None:
        self.name, self.url, self.annotations = receiver.name, receiver.url, annotations
        self.policy: NotifyPolicy | None = _policy(receiver)
        self.secret = (
            secret_from(receiver.secret_env, receiver.secret_file, f"webhook {receiver.name}")
            if receiver.secret_env or receiver.secret_file
            else None
        )
        self.http = urllib3.PoolManager()

    def payload(self, events: Sequence[AlertEvent], group: GroupKey = ()) -> dict[str, Any]:
        alerts: list[dict[str, Any]] = [{
            "status": e.state,
            "labels": alert_labels(e),
            "annotations": annotations_of(e, self.annotations.get(e.alert, {})),
            "startsAt": e.starts_at.isoformat(),
            "endsAt": e.ends_at.isoformat() if e.ends_at else "0001-01-01T00:00:00Z",
            "fingerprint": e.fingerprint,
            "generatorURL": "",
        } for e in events]  # fmt: skip
        common = set.intersection(*(set(a["labels"].items()) for a in alerts)) if alerts else set()
        notes = (
            set.intersection(*(set(a["annotations"].items()) for a in alerts)) if alerts else set()
        )
        return {
            "version": "4",
            "receiver": self.name,
            "status": "firing" if any(e.state == "firing" for e in events) else "resolved",
            "alerts": alerts,
            "groupLabels": dict(group),
            "commonLabels": dict(sorted(common)),
            "commonAnnotations": dict(sorted(notes)),
            "externalURL": "",
            "groupKey": "{}:{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in group) + "}",
            "truncatedAlerts": 0,
        }

    def send(self, events: Sequence[AlertEvent], at: datetime, group: GroupKey = ()) -> None:
        if not events:
            return
        body = json.dumps(self.payload(events, group), sort_keys=True).encode()
        headers = {"Content-Type": "application/json"}
        if self.secret is not None:
            digest = hmac.new(self.secret.get_secret_value().encode(), body, hashlib.sha256)
            headers["X-Costflow-Signature"] = "sha256=" + digest.hexdigest()
        _post(self.http, self.url, body, headers, f"webhook {self.name}")


def _figures(event: AlertEvent) -> str:
    """A summary for a rule without one: its labels and figures."""
    labels = ", ".join(f"{k}={v}" for k, v in event.labels.items())
    figures = render("{{ $value }}", {}, event.value, None, None, event.details)
    if event.expected is not None:
        figures += f" (expected {show(event.expected)})"
    if event.impact is not None:
        figures += f", at stake {show(event.impact)}"
    return f"{labels}: {figures}"


class SlackDelivery:
    """Posts one message per group to a Slack incoming webhook."""

    def __init__(self, receiver: SlackReceiver, annotations: dict[str, dict[str, str]]) -> None:
        self.name, self.annotations = receiver.name, annotations
        self.policy: NotifyPolicy | None = _policy(receiver)
        self.url = secret_from(receiver.url_env, receiver.url_file, f"slack {receiver.name}")
        self.http = urllib3.PoolManager()

    def text(self, events: Sequence[AlertEvent], group: GroupKey = ()) -> str:
        firing = sum(e.state == "firing" for e in events)
        status = f"FIRING:{firing}" if firing else "RESOLVED"
        lines = [f"*[{status}]* " + ", ".join(f"{k}={v}" for k, v in group)] if group else []
        for e in events:
            notes = annotations_of(e, self.annotations.get(e.alert, {}))
            summary = notes.get("summary") or _figures(e)
            mark = (":white_check_mark:" if e.state != "firing" else
                    ":red_circle:" if e.severity == "critical" else ":warning:")  # fmt: skip
            lines.append(f"{mark} *{e.alert}* ({e.severity}, {e.state}): {summary}")
            for mark in ("incomplete", "baseline_incomplete"):
                if e.details.get(mark):
                    lines.append(f"    {mark}: {e.details[mark]}")
        return "\n".join(lines)

    def send(self, events: Sequence[AlertEvent], at: datetime, group: GroupKey = ()) -> None:
        if events:
            body = json.dumps({"text": self.text(events, group)}).encode()
            _post(self.http, self.url.get_secret_value(), body,
                  {"Content-Type": "application/json"}, f"slack {self.name}")  # fmt: skip


class KafkaDelivery:
    """Produces each event to a Kafka topic (``acks=all``), keyed by fingerprint:
    changes only (no repeats), silences applied."""

    policy: NotifyPolicy | None = NotifyPolicy(group_by=None, repeat_interval=None)

    def __init__(self, receiver: KafkaReceiver, kafka: KafkaSettings) -> None:
        from confluent_kafka import Producer

        self.name, self.topic = receiver.name, receiver.topic
        self.producer = Producer({**kafka.librdkafka(), "acks": "all",
                                  "enable.idempotence": True})  # fmt: skip

    def send(self, events: Sequence[AlertEvent], at: datetime, group: GroupKey = ()) -> None:
        errors: list[str] = []

        def delivered(error: Any, _message: Any) -> None:
            if error is not None:
                errors.append(str(error))

        for e in events:
            value = json.dumps(event_record(e), sort_keys=True).encode()
            self.producer.produce(self.topic, value, key=e.fingerprint.encode(),
                                  on_delivery=delivered)  # fmt: skip
        left = self.producer.flush(30)
        if left or errors:
            raise AlertDeliveryFailed(
                f"kafka topic {self.topic}: {left} records unacknowledged, errors: {errors[:3]}"
            )
