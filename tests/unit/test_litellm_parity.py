"""Our import of LiteLLM's price list prices chat calls exactly as LiteLLM does,
except where LiteLLM is wrong; each such difference has a named, checked reason
(listed in docs/pricing.md). Reads the price file shipped inside the litellm wheel."""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch over the network
import litellm
from litellm import cost_per_token
from litellm.types.utils import (
    CompletionTokensDetailsWrapper,
    PromptTokensDetailsWrapper,
    Usage,
)

from pipeline.errors import PricingError, UnitNotPriced
from pipeline.events.models import CallEvent
from pipeline.pricing import CompiledBook, load_price_book, price_call
from pipeline.pricing.importers.litellm import import_litellm
from pipeline.pricing.importers.report import ImportReport
from pipeline.resources import default_price_book

PRICE_FILE = Path(litellm.__file__).parent / "model_prices_and_context_window_backup.json"
RELATIVE = Decimal("1e-9")


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    return json.loads(PRICE_FILE.read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module", params=["fresh import", "shipped default book"])
def imported(
    request: pytest.FixtureRequest, source: dict[str, Any]
) -> tuple[CompiledBook, ImportReport]:
    """A fresh import of the installed litellm's list, and the book costflow ships
    (its community layer must come from the same litellm: after upgrading litellm,
    run `costflow pricing update --book pricing/default`)."""
    book, report = import_litellm(source, datetime(2020, 1, 1, tzinfo=UTC), "parity")
    if request.param == "fresh import":
        return CompiledBook(book), report
    return CompiledBook(load_price_book(default_price_book())), report


def ours(
    book: CompiledBook, provider: str, model: str, tier: str, usage: dict[str, int]
) -> Decimal | PricingError:
    """Our total, or the pricing error the call gets (recorded on its row)."""
    call = CallEvent.model_validate(
        {
            "event_id": "e",
            "task_id": "t",
            "ts": "2026-01-01T00:00:00Z",
            "provider": provider,
            "model": model,
            "service_tier": tier,
            "usage": usage,
        }
    )
    try:
        return price_call(call, book).total
    except PricingError as error:
        return error


def refusal_reasons(entry: dict[str, Any], tier: str, error: PricingError) -> list[str]:
    """Why we refuse to price where LiteLLM gives a number: the list has no price for
    the class or service tier, and a guess (LiteLLM's) is what we do not do."""
    suffix = {"standard": "", "batch": "_batches"}.get(tier, f"_{tier}")
    if not isinstance(error, UnitNotPriced):
        return []
    # Every dimension without a price must be one the list leaves out.
    reasons = []
    for dimension in error.dimensions:
        key = {
            "input_tokens": "input_cost_per_token",
            "output_tokens": "output_cost_per_token",
            "cache_read_tokens": "cache_read_input_token_cost",
            "cache_write_tokens": "cache_creation_input_token_cost",
        }.get(dimension)
        if key and key not in entry:
            reasons.append(f"costflow_refuses_unlisted_{dimension}")
        elif key == "cache_creation_input_token_cost" and float(entry[key]) < float(
            entry.get("input_cost_per_token", 0)
        ):
            # A write price below input is dropped on import (no provider bills that).
            reasons.append("costflow_drops_cache_write_below_input")
        elif key and f"{key}{suffix}" not in entry:
            reasons.append(f"costflow_refuses_unlisted_{dimension}_in_a_service_tier")
        else:
            return []
    return reasons


def theirs(key: str, provider: str, tier: str, usage: dict[str, int]) -> Decimal:
    """The same usage in LiteLLM's OpenAI-style shape: prompt includes cached and
    cache-write tokens, completion includes reasoning tokens."""
    cache_read = usage.get("cache_read_tokens", 0)
    reasoning = usage.get("reasoning_tokens", 0)
    lite_usage = Usage(
        prompt_tokens=usage.get("input_tokens", 0)
        + cache_read
        + usage.get("cache_write_tokens", 0),
        completion_tokens=usage.get("output_tokens", 0) + reasoning,
        prompt_tokens_details=PromptTokensDetailsWrapper(cached_tokens=cache_read)
        if cache_read
        else None,
        completion_tokens_details=CompletionTokensDetailsWrapper(reasoning_tokens=reasoning)
        if reasoning
        else None,
        cache_creation_input_tokens=usage.get("cache_write_tokens", 0),
        cache_read_input_tokens=cache_read,
    )
    prompt_cost, completion_cost = cost_per_token(
        model=key,
        custom_llm_provider=provider,
        usage_object=lite_usage,
        service_tier=None if tier == "standard" else tier,
    )
    return Decimal(repr(prompt_cost)) + Decimal(repr(completion_cost))


BASE_CASES: dict[str, dict[str, int]] = {
    "plain": {"input_tokens": 1000, "output_tokens": 500},
    "cache_read": {"input_tokens": 1000, "cache_read_tokens": 2000, "output_tokens": 500},
    "cache_write": {"input_tokens": 1000, "cache_write_tokens": 300, "output_tokens": 500},
    "reasoning": {"input_tokens": 1000, "output_tokens": 500, "reasoning_tokens": 200},
}


def cases_for(entry: dict[str, Any]) -> list[tuple[str, str, dict[str, int]]]:
    cases = [(name, "standard", usage) for name, usage in BASE_CASES.items()]
    for field in entry:
        if field.startswith("input_cost_per_token_above_") and field.endswith("k_tokens"):
            threshold = int(field.split("_above_")[1].split("k")[0]) * 1000
            cases.append(("tier_at", "standard", {"input_tokens": threshold, "output_tokens": 500}))
            cases.append(
                ("tier_over", "standard", {"input_tokens": threshold + 1, "output_tokens": 500})
            )
    for tier in ("priority", "flex", "batch"):
        suffix = "batches" if tier == "batch" else tier
        if f"input_cost_per_token_{suffix}" in entry:
            cases.append(
                (tier, tier, {"input_tokens": 1000, "cache_read_tokens": 500, "output_tokens": 500})
            )
    return cases


def known_difference(
    entry: dict[str, Any],
    provider: str,
    case: str,
    tier: str,
    ours_standard: Decimal,
    their: Decimal,
) -> str | None:
    """Why LiteLLM's number differs from ours, if it is one of the documented reasons."""
    if "off_peak_pricing" in entry:
        return "litellm_off_peak_by_wall_clock"
    if tier != "standard" and abs(their - ours_standard) <= abs(their) * RELATIVE:
        return "litellm_ignores_service_tier"
    if case == "cache_write" and float(entry.get("cache_creation_input_token_cost", 1)) < float(
        entry.get("input_cost_per_token", 0)
    ):
        return "costflow_drops_cache_write_below_input"
    if provider == "xai" and case == "reasoning":
        return "litellm_xai_reasoning_counted_twice"
    if provider == "xai" and case == "tier_at":
        return "litellm_xai_tier_at_threshold"
    return None


def test_chat_models_price_as_litellm_except_documented_bugs(
    source: dict[str, Any], imported: tuple[CompiledBook, ImportReport]
) -> None:
    book, report = imported
    compared = 0
    explained: Counter[str] = Counter()
    unexplained: list[str] = []
    for key, entry in source.items():
        if (
            not isinstance(entry, dict)
            or entry.get("mode") != "chat"
            or "litellm_provider" not in entry
        ):
            continue
        if key in report.skipped:
            continue  # not imported, with its reason (e.g. a duplicate key with other prices)
        provider = entry["litellm_provider"]
        model = key.removeprefix(f"{provider}/")
        for case, tier, usage in cases_for(entry):
            mine = ours(book, provider, model, tier, usage)
            their = theirs(key, provider, tier, usage)
            compared += 1
            if isinstance(mine, PricingError):
                reasons = refusal_reasons(entry, tier, mine)
                if reasons:
                    explained.update(reasons)
                else:
                    unexplained.append(f"{key} [{case}/{tier}] ours={mine!r} litellm={their}")
                continue
            if abs(mine - their) <= abs(their) * RELATIVE:
                continue
            standard = ours(book, provider, model, "standard", usage)
            assert isinstance(standard, Decimal), standard
            reason = known_difference(entry, provider, case, tier, standard, their)
            if reason:
                explained[reason] += 1
            else:
                unexplained.append(f"{key} [{case}/{tier}] ours={mine} litellm={their}")
    assert compared > 10_000, compared  # the comparison is not vacuous
    assert not unexplained, f"{len(unexplained)} unexplained differences:\n" + "\n".join(
        unexplained[:20]
    )
    # Every documented difference occurs with the pinned litellm, so docs/pricing.md is
    # accurate; after an upgrade that fixes one, this fails until the table is updated.
    # The off-peak one exists only while LiteLLM's wall clock is in DeepSeek's window.
    required = {
        "litellm_ignores_service_tier",
        "costflow_refuses_unlisted_cache_read_tokens",
        "costflow_refuses_unlisted_cache_write_tokens",
        "costflow_drops_cache_write_below_input",
        "litellm_xai_reasoning_counted_twice",
        "litellm_xai_tier_at_threshold",
    }
    optional = {
        "litellm_off_peak_by_wall_clock",
        "costflow_refuses_unlisted_output_tokens_in_a_service_tier",
        "costflow_refuses_unlisted_cache_read_tokens_in_a_service_tier",
    }
    assert required <= set(explained) <= required | optional, explained


def test_import_reports_what_it_cannot_represent(source: dict[str, Any]) -> None:
    _book, report = import_litellm(source, datetime(2020, 1, 1, tzinfo=UTC), "parity")
    every_key = {k for k, v in source.items() if isinstance(v, dict) and k != "sample_spec"}
    assert report.imported + len(report.skipped) + len(report.aliased) == len(every_key)
    # alias_of entries price as their target (litellm 1.110: claude-fable-latest ->
    # claude-fable-5-1), never skipped as "not priced per token"
    aliases = {
        k: v["alias_of"] for k, v in source.items() if isinstance(v, dict) and "alias_of" in v
    }
    assert aliases and set(aliases) == set(report.aliased) | {
        k for k in aliases if k in report.skipped and "alias_of" in report.skipped[k]
    }
    assert not any("mode None" in report.skipped.get(k, "") for k in aliases)
    off_peak = [
        k
        for k, v in source.items()
        if isinstance(v, dict) and "off_peak_pricing" in v and k not in report.skipped
    ]
    # Time-of-day prices are carried into the book (judged by event time), not dropped.
    assert off_peak and not any("off_peak_pricing" in report.ignored_prices.get(k, ())
                                for k in off_peak)  # fmt: skip
