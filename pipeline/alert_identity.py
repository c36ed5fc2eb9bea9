"""What an alert instance is, shared by every process that raises alerts.

An alert instance is its rule's name and its labels; its fingerprint is the key of
its history (``alert_events``). Stage 1 raises ``task_budget`` alerts (through the
sink) and ``costflow alerts run`` raises and resolves the rest; both must compute the
same fingerprint for the same instance, so it lives here, pure, for both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def fingerprint(alert: str, labels: Mapping[str, str]) -> str:
    """Stable id of an alert instance: 16 hex digits of the SHA-256 of the alert name
    and its labels (sorted by name)."""
    text = alert + "\x00" + "\x00".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def lower_bound(
    unpriced: int, total: int, items: str = "calls have no price and count as 0",
    figure: str = "the cost",
) -> dict[str, str]:  # fmt: skip
    """Details marking a figure summed over ``total`` items of which ``unpriced`` have
    no price (counted as 0): a lower bound, and the alert says so and why, instead of
    passing it off as the spend. Empty when every item is priced. ``items``, ``figure``:
    what was counted and what is low (calls and the cost by default)."""
    if not unpriced:
        return {}
    return {
        "value_bound": "lower",
        "incomplete": (
            f"{unpriced} of {total} {items}, so {figure} is a lower bound; add their "
            "prices to the book and run `costflow reprice`"
        ),
    }


def task_alert_labels(task_id: str) -> dict[str, str]:
    """A ``task_budget`` alert instance's labels: the same whether stage 1 or
    ``costflow alerts run`` raised it, so both find one instance. Only the task id:
    a task's scenario and owner may arrive after its calls (its task event is late),
    and an instance whose labels changed would be a second alert for the same task;
    they travel in the details (annotations) instead."""
    return {"task_id": task_id}
