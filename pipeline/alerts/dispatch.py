"""One cycle's notifications to each receiver, acknowledged in the history.

Alertmanager receivers get every change plus every firing alert each cycle (it
groups, repeats and silences itself). The receivers costflow notifies itself get
what :func:`pipeline.alerts.notify.plan` says, one notification per group; each
acknowledged notification, each silenced event and each skipped resolution becomes
a row of ``alert_deliveries`` (``outcome``: sent, silenced, skipped), so a restart
neither repeats nor loses any of them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from pipeline.alerts.history import AlertHistory
from pipeline.alerts.notify import plan
from pipeline.alerts.receivers import AlertDeliveryFailed, Delivery
from pipeline.alerts.silences import Silence
from pipeline.alerts.state import AlertEvent

log = logging.getLogger("costflow.alerts")


def notify(
    delivery: Delivery,
    history: AlertHistory,
    pending: Sequence[AlertEvent],
    firing: Sequence[AlertEvent],
    silences: Sequence[Silence],
    at: datetime,
    now: datetime,
) -> bool:
    """Tell ``delivery`` this cycle's news: ``pending`` (its unacknowledged firing
    and resolved events), ``firing`` (every alert firing at ``at``), on the clock
    ``now``; False when the receiver failed (logged; retried next cycle)."""
    if delivery.policy is None:
        changed = {(e.fingerprint, e.state) for e in pending}
        batch = [*pending, *(e for e in firing if (e.fingerprint, "firing") not in changed)]
        try:
            delivery.send(batch, at)
        except AlertDeliveryFailed as exc:
            log.error("receiver %s: %s; retrying next cycle", delivery.name, exc)
            return False
        history.delivered(delivery.name, pending, now=now)
        return True
    work = plan(delivery.policy, silences, pending, firing, history.told(delivery.name), now)
    history.delivered(delivery.name, work.silenced, "silenced", now)
    history.delivered(delivery.name, work.skipped, "skipped", now)
    if work.skipped:
        log.warning("receiver %s: %d alerts fired and resolved before it could be told; "
                    "not sent (alert_deliveries: outcome skipped)", delivery.name,
                    len(work.skipped))  # fmt: skip
    for group, events in work.notifications:
        try:
            delivery.send(events, at, group)
        except AlertDeliveryFailed as exc:
            log.error("receiver %s: %s; retrying next cycle", delivery.name, exc)
            return False
        history.delivered(delivery.name, events, now=now)
    return True
