"""pydantic's genai-prices data as the second community layer: its own dated history,
its match clauses as aliases, and which source wins where both price a model."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from genai_prices import data

from pipeline.events.models import CallEvent
from pipeline.pricing import CompiledBook, load_price_book, price_call
from pipeline.pricing.importers.genai_prices import import_genai_prices
from pipeline.pricing.tools import show
from pipeline.resources import default_price_book


@pytest.fixture(scope="module")
def default() -> CompiledBook:
    return CompiledBook(load_price_book(default_price_book()))


@pytest.fixture(scope="module")
def imported() -> dict[tuple[str, str], list[dict[str, Any]]]:
    entries, report = import_genai_prices(list(data.providers))
    assert report.imported > 2000 and entries
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in entries:
        out.setdefault((entry["provider"], entry["model"]), []).append(entry)
    return out


def total(book: CompiledBook, provider: str, model: str, ts: str, **usage: int) -> Decimal:
    body = {"event_id": "e", "task_id": "t", "ts": ts, "provider": provider, "model": model}
    call = CallEvent.model_validate({**body, "usage": usage})
    return price_call(call, book).total


def test_a_dated_change_is_real_history_in_the_shipped_book(default: CompiledBook) -> None:
    # genai-prices: Z.ai GLM-5.3-Flash input $0.075 per MTok, $0.15 from 2026-09-10
    assert total(default, "zai", "GLM-5.3-Flash", "2026-09-09T23:59:59Z",
                 input_tokens=1_000_000) == Decimal("0.075")  # fmt: skip
    assert total(default, "zai", "GLM-5.3-Flash", "2026-09-10T00:00:00Z",
                 input_tokens=1_000_000) == Decimal("0.15")  # fmt: skip
    history = show(default, "zai", "GLM-5.3-Flash", datetime(2026, 10, 1, tzinfo=UTC))["history"]
    assert [(h["effective_from"][:10], h["assumed"], h["input_per_mtok"]) for h in history] == [
        ("1970-01-01", True, "0.075"), ("2026-09-10", False, "0.15")]  # fmt: skip
    assert history[0]["source"].startswith("genai-prices ")


def test_litellm_wins_where_both_price_a_model(default: CompiledBook) -> None:
    """LiteLLM's list is first: it carries the service-tier and long-context x tier
    prices the engine uses, and the parity test holds it to LiteLLM's own numbers;
    genai-prices prices the models LiteLLM does not list."""
    entry = default.entry_for("anthropic", "claude-haiku-4-5", datetime(2026, 11, 1, tzinfo=UTC))
    assert entry.entry.source is not None and entry.entry.source.startswith("litellm ")


def test_tiers_and_match_clauses_are_carried(
    imported: dict[tuple[str, str], list[dict[str, Any]]],
) -> None:
    # Gemini 2.5 Pro: $1.25 / $10 per MTok, $2.50 / $15 above 200k prompt tokens
    (pro,) = imported[("google", "gemini-2.5-pro")]
    assert (pro["input_per_mtok"], pro["output_per_mtok"]) == ("1.25", "10")
    assert pro["tiers"][0]["above_prompt_tokens"] == 200_000
    assert (pro["tiers"][0]["input_per_mtok"], pro["tiers"][0]["output_per_mtok"]) == ("2.5", "15")
    # Claude Haiku 4.5 matches the names gateways use for it, and prices web search
    haiku = imported[("anthropic", "claude-haiku-4-5")][-1]
    assert "claude-4-5-haiku*" in haiku["aliases"]
    assert haiku["per_unit"] == {"web_search": "0.01"}
    assert haiku["cache_write_1h_per_mtok"] == "2"
