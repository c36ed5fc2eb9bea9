"""Stage 1's ``task_budget`` firings into ``alert_events``, once per task and rule.

Every snapshot of a task at or over a cap names the caps (``task_alerts``, see
:mod:`pipeline.join.task_caps`): the first one the sink sees becomes the firing, at
the event time of the snapshot's latest event; later snapshots, re-emitted ones and
re-consumed batches find the instance already in ``alert_events`` and add nothing.
``costflow alerts run`` (or the sink's alert loop) delivers the firing from there,
keeps it firing while the task is active and resolves it when the task goes quiet.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pipeline.alert_identity import fingerprint, lower_bound, task_alert_labels
from pipeline.clickhouse.lookups import id_chunks
from pipeline.records import TaskRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ALERT_EVENT_COLUMNS = (
    "at", "alert", "kind", "fingerprint", "labels", "state", "starts_at", "ends_at",
    "value", "expected", "impact", "severity", "details",
)  # fmt: skip


def _firing(record: TaskRecord, crossed: dict[str, str]) -> tuple[str, tuple[Any, ...]]:
    data = record.data
    labels = task_alert_labels(record.task_id)
    at = _EPOCH + timedelta(milliseconds=int(data.get("last_event_ms") or 0))
    cost, calls = Decimal(str(data.get("total_cost") or "0")), int(data.get("calls") or 0)
    unpriced = int(data.get("unpriced_calls") or 0)
    on_cost = crossed["cap"] == "max_cost"
    limit = Decimal(crossed["limit"])
    details = {
        "cap": crossed["cap"],
        "scenario_id": data.get("scenario_id") or "",
        "owner": data.get("owner") or "",
        "calls": str(calls),
        "cost": str(cost),
        "unpriced_calls": str(unpriced),
        "last_event_at": at.isoformat(),
        "evaluated_in": "stage1",
        **(lower_bound(unpriced, calls) if on_cost else {}),
    }
    fp = fingerprint(crossed["alert"], labels)
    # The rule's own labels (``label.<name>``): on the event, not in its identity.
    static = {k[len("label.") :]: v for k, v in crossed.items() if k.startswith("label.")}
    row = (
        at, crossed["alert"], "task_budget", fp, {**static, **labels}, "firing", at, None,
        str(cost if on_cost else calls), crossed["limit"],
        max(cost - limit, Decimal(0)) if on_cost else None,
        crossed.get("severity", "warning"), details,
    )  # fmt: skip
    return fp, row


def task_alert_rows(client: Any, records: Iterable[TaskRecord]) -> list[tuple[Any, ...]]:
    """``alert_events`` rows for (task, rule) pairs over a cap that have none yet."""
    first: dict[str, tuple[Any, ...]] = {}
    for record in records:
        if record.kind != "snapshot":
            continue
        for crossed in record.data.get("task_alerts") or ():
            fp, row = _firing(record, crossed)
            if fp not in first or row[0] < first[fp][0]:
                first[fp] = row
    if not first:
        return []
    known: set[str] = set()
    for chunk in id_chunks(sorted(first)):
        known.update(
            r[0]
            for r in client.query(
                "SELECT DISTINCT fingerprint FROM alert_events WHERE fingerprint IN %(fps)s",
                parameters={"fps": list(chunk)},
            ).result_rows
        )
    return [row for fp, row in sorted(first.items()) if fp not in known]
