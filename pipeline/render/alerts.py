"""Alert events as text for people (the demo, ``alerts test --text``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.render.money import usd


def render_alert_events(events: Sequence[Any]) -> str:
    """One line per firing or resolution, oldest first: when, state, alert, labels
    and the figures (value against expected, money at stake)."""
    if not events:
        return "Alerts: none raised."
    lines = [f"Alerts raised ({len(events)} firings and resolutions):"]
    for e in events:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(e.labels.items()))
        figures = _figures(e)
        lines.append(
            f"  {e.at:%Y-%m-%d %H:%M}  {e.state:<8} {e.alert} [{e.severity}] {{{labels}}}"
            + (f"  {figures}" if figures and e.state == "firing" else "")
        )
    return "\n".join(lines)


def _figures(e: Any) -> str:
    from decimal import Decimal

    # A cost that counts unpriced calls as 0 is at least this much, and says so.
    floor = "≥ " if e.details.get("value_bound") == "lower" else ""
    if e.kind == "anomaly" and isinstance(e.value, Decimal):
        return (f"spent {floor}{usd(e.value)} in the hour, {usd(e.expected)} expected, "
                f"{usd(e.impact)} above (z {e.details.get('z', '?')})")  # fmt: skip
    if e.kind == "budget" and "threshold" in e.labels:
        budget = Decimal(e.details["budget"])
        return f"spent {floor}{usd(e.value)} of {usd(budget)} in {e.details.get('period', '')}"
    if e.kind == "task_budget":
        cost = Decimal(e.details.get("cost", "0"))
        return (f"running cost {floor}{usd(cost)} over {e.details.get('calls')} calls "
                f"(cap {e.details.get('cap')} {e.expected})")  # fmt: skip
    if e.kind == "unpriced":
        noun = "call" if str(e.value) == "1" else "calls"
        return f"{e.value} {noun} without a price since {e.details.get('first_unpriced_hour', '')}"
    return f"value {e.value}"
