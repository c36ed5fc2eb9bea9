"""costflow reprice through the real embedded broker, sink and chDB, against the reference."""

from __future__ import annotations

import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.clickhouse.client import connect
from pipeline.config import Settings
from pipeline.demo.workload import START, generate
from pipeline.pricing import CompiledBook, load_price_book
from pipeline.runtime.replay import replay
from pipeline.runtime.reprice import comparison, run_reprice
from tests.integration.conftest import assert_matches_reference, write_events
from tests.reference import RATES, call_cost, parse_ts

pytestmark = pytest.mark.integration

DEFAULT_BOOK = Path(__file__).resolve().parents[2] / "pricing" / "default"
# The correction, written out by hand: gpt-4o-mini input was 0.16, not 0.15 (OpenAI's
# rule bills cache writes at the input rate, so they move too), and the research
# preview nobody priced gets a price.
CORRECTED = {
    **RATES,
    ("openai", "gpt-4o-mini"): ("0.16", "0.075", "0.16", "0.60", "0.60"),
    ("acme", "acme-research-preview"): ("1.00", "1.00", "1.00", "2.00", "2.00"),
}
FROM, TO = START + timedelta(days=2), START + timedelta(days=5)


def corrected_book(tmp_path: Path) -> Path:
    book = tmp_path / "book"
    shutil.copytree(DEFAULT_BOOK, book)
    header = yaml.safe_load((book / "book.yaml").read_text())
    header["version"] = "2026.11.1-fix1"
    (book / "book.yaml").write_text(yaml.safe_dump(header))
    # A correction of the community list's gpt-4o-mini, dated id included, as the
    # book's own entry (it shadows the list's entries for the model and its alias).
    corrected = {
        "provider": "openai", "model": "gpt-4o-mini", "aliases": ["gpt-4o-mini-2024-07-18"],
        "effective_from": "2024-07-18", "input_per_mtok": "0.16", "cache_read_per_mtok": "0.075",
        "output_per_mtok": "0.60",
    }  # fmt: skip
    research = {
        "provider": "acme", "model": "acme-research-preview", "effective_from": "2026-01-01",
        "input_per_mtok": "1.00", "cache_read_per_mtok": "1.00", "cache_write_per_mtok": "1.00",
        "output_per_mtok": "2.00",
    }  # fmt: skip
    corrections = yaml.safe_load((book / "corrections.yaml").read_text())
    corrections["entries"] += [corrected, research]
    (book / "corrections.yaml").write_text(yaml.safe_dump(corrections))
    return book


def cost_after_reprice(call: dict[str, Any]) -> Decimal | None:
    in_window = FROM <= parse_ts(call["ts"]) < TO
    return call_cost(call, CORRECTED if in_window else RATES)


def test_reprice_moves_exactly_the_calls_in_the_window_and_is_idempotent(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    # A seed whose window holds an acme call (unpriced until the fix): the guard below says so.
    events = generate(120, seed=24)
    calls = {e["event_id"]: e for e in events if e["type"] == "call"}
    changed = {
        event_id
        for event_id, call in calls.items()
        if FROM <= parse_ts(call["ts"]) < TO and call_cost(call) != cost_after_reprice(call)
    }
    newly_priced = {e for e in changed if call_cost(calls[e]) is None}
    assert changed and newly_priced  # the workload exercises both kinds of change

    replay(isolated_settings, write_events(tmp_path / "events.jsonl", events), timeout_s=240)
    client = connect(isolated_settings.clickhouse, isolated_settings.stack, create=False)
    assert_matches_reference(client, events)

    book = CompiledBook(load_price_book(corrected_book(tmp_path)))
    dry = run_reprice(isolated_settings, book, FROM, TO, dry_run=True)
    assert dry["calls_changed"] == len(changed)
    assert_matches_reference(client, events)  # a dry run changes nothing

    result = run_reprice(isolated_settings, book, FROM, TO, timeout_s=240)
    assert result["calls_changed"] == len(changed)
    assert result["calls_scanned"] == sum(
        1 for c in calls.values() if FROM <= parse_ts(c["ts"]) < TO
    )
    assert result["calls_not_priced_by_new_book"] == {}
    assert_matches_reference(client, events, cost=cost_after_reprice)

    # Every priced row names the version that priced it: the corrected one exactly
    # for the calls whose price changed.
    versions = dict(
        client.query("SELECT event_id, price_book_version FROM calls FINAL").result_rows
    )
    assert {e for e, v in versions.items() if v == "default@2026.11.1-fix1"} == changed
    # Side by side: the old and the new cost of the same calls.
    applied = comparison(client, result["reprice_id"])
    assert sum(row["calls"] for row in applied) == len(changed)
    assert sum(row["previously_unpriced_calls"] for row in applied) == len(newly_priced)
    assert sum(row["old_cost"] for row in applied) == sum(
        call_cost(calls[e]) or Decimal(0) for e in changed
    )
    assert sum(row["new_cost"] for row in applied) == sum(
        cost_after_reprice(calls[e]) or Decimal(0) for e in changed
    )

    # Run again: nothing left to change, nothing written.
    again = run_reprice(isolated_settings, book, FROM, TO, timeout_s=240)
    assert (again["calls_changed"], again["records_sent"]) == (0, 0)
    assert comparison(client, again["reprice_id"]) == []
    assert_matches_reference(client, events, cost=cost_after_reprice)
