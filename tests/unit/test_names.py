"""Provider and model names as gateways send them: one test per normalisation rule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pipeline.events.models import CallEvent
from pipeline.pricing import CompiledBook, PriceBook, price_call
from pipeline.pricing.names import candidates, canonical_provider, strip_self_prefix


def book() -> CompiledBook:
    entries = [
        {"provider": "google", "model": "gemini-2.5-flash", "effective_from": "2025-01-01",
         "input_per_mtok": "0.30", "output_per_mtok": "2.50"},
        {"provider": "openai", "model": "gpt-4o", "effective_from": "2024-05-13",
         "input_per_mtok": "2.50", "output_per_mtok": "10.00"},
        {"provider": "openrouter", "model": "openai/gpt-4o", "effective_from": "2024-05-13",
         "input_per_mtok": "2.75", "output_per_mtok": "11.00"},
        {"provider": "anthropic", "model": "claude-haiku-4-5", "effective_from": "2025-10-15",
         "input_per_mtok": "1.00", "output_per_mtok": "5.00"},
        {"provider": "vertex_ai", "model": "claude-haiku-4-5", "effective_from": "2025-10-15",
         "input_per_mtok": "1.10", "output_per_mtok": "5.50"},
    ]  # fmt: skip
    return CompiledBook(PriceBook.model_validate({"name": "n", "version": "1", "entries": entries}))


def priced(provider: str, model: str) -> tuple[str, Decimal]:
    call = CallEvent.model_validate(
        {"event_id": "e", "task_id": "t", "ts": "2026-06-01T00:00:00Z", "provider": provider,
         "model": model, "usage": {"input_tokens": 1_000_000}}
    )  # fmt: skip
    cost = price_call(call, book())
    return cost.entry_model, cost.total


@pytest.mark.parametrize(
    ("sent", "canonical"),
    [("gemini", "google"), ("Google", "google"), ("gcp.gemini", "google"),
     ("vertex_ai-language-models", "vertex_ai"), ("vertex_ai-anthropic_models", "vertex_ai"),
     ("gcp.vertex_ai", "vertex_ai"), ("aws.bedrock", "bedrock"), ("bedrock_converse", "bedrock"),
     ("azure_openai", "azure"), ("openai", "openai"), ("some-new-lab", "some-new-lab")],
)  # fmt: skip
def test_rule_1_provider_spellings(sent: str, canonical: str) -> None:
    assert canonical_provider(sent) == canonical


def test_rule_1_gemini_and_google_price_the_same_entry() -> None:
    assert priced("gemini", "gemini-2.5-flash") == ("gemini-2.5-flash", Decimal("0.30"))
    assert priced("google", "gemini-2.5-flash") == ("gemini-2.5-flash", Decimal("0.30"))


def test_rule_2_a_prefix_naming_the_provider_goes_a_routers_ids_stay() -> None:
    assert strip_self_prefix("openai", "openai/gpt-4o") == "gpt-4o"
    assert strip_self_prefix("google", "models/gemini-2.5-flash") == "gemini-2.5-flash"
    assert priced("openai", "openai/gpt-4o") == ("gpt-4o", Decimal("2.50"))
    assert priced("gemini", "models/gemini-2.5-flash") == ("gemini-2.5-flash", Decimal("0.30"))
    # OpenRouter's own price for its id, not OpenAI's
    assert priced("openrouter", "openai/gpt-4o") == ("openai/gpt-4o", Decimal("2.75"))


@pytest.mark.parametrize("dated", ["gpt-4o-2024-08-06", "gpt-4o-20240806", "gpt-4o@20240806"])
def test_rule_3_a_dated_id_prices_as_its_model(dated: str) -> None:
    assert priced("openai", dated) == ("gpt-4o", Decimal("2.50"))


def test_rule_4_vertex_and_the_gemini_api_stand_in_for_each_other_only_when_missing() -> None:
    assert priced("vertex_ai", "gemini-2.5-flash") == ("gemini-2.5-flash", Decimal("0.30"))
    # Vertex has its own entry for Claude: that one, not Anthropic's
    assert priced("vertex_ai", "claude-haiku-4-5@20251001") == (
        "claude-haiku-4-5", Decimal("1.10"))  # fmt: skip
    assert list(candidates("vertex_ai", "m-20250101")) == [
        ("vertex_ai", "m-20250101"), ("vertex_ai", "m"), ("google", "m-20250101"), ("google", "m")
    ]  # fmt: skip


def test_rule_5_a_model_id_sent_in_capitals_is_tried_lower_cased() -> None:
    assert priced("OpenAI", "GPT-4o") == ("gpt-4o", Decimal("2.50"))
    assert priced("openai", "OpenAI/GPT-4o-2024-08-06") == ("gpt-4o", Decimal("2.50"))
    # Lower-casing comes last: an id that exists as sent is never replaced.
    assert list(candidates("openai", "GPT-X"))[-1] == ("openai", "gpt-x")


def test_names_never_cross_unrelated_providers() -> None:
    from pipeline.errors import PriceNotFound

    with pytest.raises(PriceNotFound):
        priced("azure", "gpt-4o")  # Azure bills its own prices; not OpenAI's by guess


def test_entries_rules_and_overlays_use_the_same_names_as_calls() -> None:
    """An entry or overlay written with a gateway's spelling applies to every spelling."""
    book = CompiledBook(
        PriceBook.model_validate(
            {
                "name": "n", "version": "1",
                "entries": [{"provider": "gemini", "model": "gemini-x",
                             "effective_from": "2025-01-01", "input_per_mtok": "1.00"}],
                "overlays": [{"name": "deal", "match": {"provider": "google"},
                              "effective_from": "2025-01-01", "multiplier": "0.5"}],
                "provider_rules": [{"provider": "gcp.gemini", "source": "test",
                                    "service_tiers": {"batch": "0.5"}}],
            }
        )
    )  # fmt: skip

    def total(provider: str, tier: str = "standard") -> Decimal:
        call = CallEvent.model_validate(
            {"event_id": "e", "task_id": "t", "ts": "2026-06-01T00:00:00Z", "provider": provider,
             "model": "gemini-x", "service_tier": tier, "usage": {"input_tokens": 1_000_000}}
        )  # fmt: skip
        return price_call(call, book).total

    # 1.00 per MTok, the overlay halves it whichever spelling the gateway sends
    assert total("google") == total("gemini") == total("Gemini") == Decimal("0.5")
    # the rule written as gcp.gemini is Google's: batch halves again
    assert total("gemini", "batch") == Decimal("0.25")
