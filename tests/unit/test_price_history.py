"""Dated history from undated lists, and the community layer under the book's own."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ConfigError, PricingError
from pipeline.events.models import CallEvent
from pipeline.pricing import CompiledBook, load_price_book, price_call
from pipeline.pricing.book import read_underlay
from pipeline.pricing.importers import update_book
from pipeline.pricing.importers.history import BEGINNING, merge_history
from pipeline.resources import default_price_book

DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
DEC_15 = datetime(2026, 12, 15, tzinfo=UTC)


def fresh(model: str, input_rate: str) -> dict[str, Any]:
    return {"provider": "p", "model": model, "effective_from": "2026-12-01T00:00:00+00:00",
            "input_per_mtok": input_rate, "output_per_mtok": "8"}  # fmt: skip


def test_first_import_is_assumed_since_the_beginning_later_ones_add_dated_changes() -> None:
    first, changes = merge_history([], [fresh("a", "2"), fresh("b", "1")], DEC_1)
    assert changes.added == ["p/a", "p/b"] and not changes.changed
    assert all(e["effective_from"] == BEGINNING.isoformat() for e in first)
    assert all(e["effective_from_assumed"] for e in first)
    # Two weeks later a's price fell, b is unchanged, c is new, and nothing was removed.
    second, changes = merge_history(first, [fresh("a", "1.5"), fresh("b", "1"),
                                            fresh("c", "3")], DEC_15)  # fmt: skip
    assert changes.added == ["p/c"]
    assert [(name, old["input_per_mtok"], new["input_per_mtok"], since)
            for name, old, new, since in changes.changed] == [
        ("p/a", "2", "1.5", DEC_15.isoformat())]  # fmt: skip
    a = [e for e in second if e["model"] == "a"]
    assert [(e["effective_from"], e["input_per_mtok"]) for e in a] == [
        (BEGINNING.isoformat(), "2"), (DEC_15.isoformat(), "1.5")]  # fmt: skip
    assert len([e for e in second if e["model"] == "b"]) == 1
    # The same list again changes nothing; a list without b keeps b's history.
    third, changes = merge_history(second, [fresh("a", "1.5"), fresh("c", "3")], DEC_15)
    assert not changes and changes.no_longer_listed == ["p/b"] and third == second
    with pytest.raises(ConfigError, match="later --effective-from"):
        merge_history(second, [fresh("a", "1")], DEC_1)


def priced(book: CompiledBook, model: str, ts: str) -> Decimal:
    call = CallEvent.model_validate(
        {"event_id": "e", "task_id": "t", "ts": ts, "provider": "openai", "model": model,
         "usage": {"input_tokens": 1_000_000}}
    )  # fmt: skip
    return price_call(call, book).total


def test_update_builds_history_and_a_call_is_priced_with_what_was_in_force(
    tmp_path: Path,
) -> None:
    book_dir = tmp_path / "book"
    book_dir.mkdir()
    (book_dir / "book.yaml").write_text('name: t\nversion: "1"\ncurrency: USD\n')
    (book_dir / "own.yaml").write_text(
        "entries:\n  - {provider: openai, model: curated, effective_from: '2025-01-01',"
        " input_per_mtok: '9', output_per_mtok: '9'}\n"
    )

    def listing(rate: float) -> bytes:
        return json.dumps({
            "gpt-x": {"litellm_provider": "openai", "mode": "chat",
                      "input_cost_per_token": rate, "output_cost_per_token": 1e-05},
            "curated": {"litellm_provider": "openai", "mode": "chat",
                        "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06},
        }).encode()  # fmt: skip

    first = update_book(book_dir, "litellm", listing(2e-06), "1.0", DEC_1)
    assert first.changes.added == ["openai/curated", "openai/gpt-x"]
    second = update_book(book_dir, "litellm", listing(1.5e-06), "1.1", DEC_15)
    assert [c[0] for c in second.changes.changed] == ["openai/gpt-x"]
    assert second.version.startswith("2026.12.15-") and second.version != first.version
    book = CompiledBook(load_price_book(book_dir))
    assert book.label == f"t@{second.version}"
    # Last month's call: the first import's price, assumed in force since the beginning.
    assert priced(book, "gpt-x", "2026-11-02T10:00:00Z") == Decimal("2")
    assert priced(book, "gpt-x", "2026-12-14T23:59:59Z") == Decimal("2")
    assert priced(book, "gpt-x", "2026-12-15T00:00:00Z") == Decimal("1.5")
    # The book's own entry wins over the layer's for the same model.
    assert priced(book, "curated", "2026-11-02T10:00:00Z") == Decimal("9")
    layer = read_underlay(book_dir / "community" / "litellm.json")
    assert layer.source_version == "1.1" and len(layer.entries) == 3


def test_the_default_book_prices_the_chat_models_of_the_community_list() -> None:
    """>= 99 % of a sample of LiteLLM's chat models, with usages dated a month before
    the import, price with the book costflow ships (no --book)."""
    book = CompiledBook(load_price_book(default_price_book()))
    layer = read_underlay(default_price_book() / "community" / "litellm.json")
    chat = sorted({(e["provider"], e["model"]) for e in layer.entries})
    sample = random.Random(11).sample(chat, 500)
    failures = []
    for provider, model in sample:
        call = CallEvent.model_validate(
            {"event_id": "e", "task_id": "t", "ts": "2026-11-01T00:00:00Z", "provider": provider,
             "model": model, "usage": {"input_tokens": 1000, "output_tokens": 100}}
        )  # fmt: skip
        try:
            price_call(call, book)
        except PricingError as error:
            failures.append(f"{provider}/{model}: {error.code}")
    assert len(failures) <= len(sample) // 100, failures
