"""The reconciliation views' verdicts, on rows written straight into ``calls``:
each verdict worked by hand from the two figures."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pipeline.clickhouse.migrate import migrate


def test_every_reported_cost_gets_a_verdict_and_none_is_taken_on_trust(chdb_client: Any) -> None:
    migrate(chdb_client)
    rows = [
        # event, currency, computed, reported
        ("same", "USD", "0.0100", "0.0100"),
        ("within-1pct", "USD", "0.0100", "0.01009"),  # 0.00009 < 1% of 0.01009
        ("beyond-1pct", "USD", "0.0100", "0.0102"),  # 0.0002 > 0.000102
        ("tiny", "USD", "0.0000001", "0.0000009"),  # 0.0000008 < 0.000001 floor
        ("unpriced", "USD", None, "0.5"),
        ("euro", "EUR", "0.0100", "0.0100"),
        ("garbage", "USD", "0.0100", "n/a"),
    ]
    for event_id, currency, computed, reported in rows:
        cost = "NULL" if computed is None else f"toDecimal128('{computed}', 18)"
        chdb_client.command(
            "INSERT INTO calls (event_id, task_id, ts, provider, model, currency, cost_total, "
            f"attributes) VALUES ('{event_id}', 't', '2026-12-01 10:00:00', 'openai', "
            f"'gpt-4o-mini', '{currency}', {cost}, "
            f"map('provider_reported_cost', '{reported}'))"
        )
    chdb_client.command(
        "INSERT INTO calls (event_id, task_id, ts, provider, model, currency, cost_total) "
        "VALUES ('no-report', 't', '2026-12-01 10:00:00', 'openai', 'gpt-4o-mini', 'USD', 1)"
    )
    verdicts = dict(
        chdb_client.query("SELECT event_id, verdict FROM v_cost_reconciliation_calls").result_rows
    )
    assert verdicts == {
        "same": "agrees",
        "within-1pct": "agrees",
        "beyond-1pct": "differs",
        "tiny": "agrees",
        "unpriced": "unpriced",
        "euro": "not_comparable_currency",
        "garbage": "unreadable_report",
    }
    ((reported, computed, differing, unpriced, other),) = chdb_client.query(
        "SELECT calls_reported, computed_cost - reported_cost, calls_differing, calls_unpriced, "
        "calls_not_comparable FROM v_cost_reconciliation_daily"
    ).result_rows
    # comparable: same, within-1pct, beyond-1pct, tiny; computed - reported summed:
    # 0 + (-0.00009) + (-0.0002) + (-0.0000008) = -0.0002908
    assert (reported, computed, differing, unpriced, other) == (7, Decimal("-0.0002908"), 1, 1, 2)
