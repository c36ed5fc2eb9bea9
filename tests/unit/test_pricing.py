"""Price lookup and arithmetic; expected values are worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import PriceBookInvalid, PriceNotFound, ServiceTierNotPriced, UnitNotPriced
from pipeline.events.models import CallEvent
from pipeline.pricing import CompiledBook, PriceBook, load_price_book, price_call

DEFAULT_BOOK = Path(__file__).resolve().parents[2] / "pricing" / "default"
# A provider rule shaped like Anthropic's published one, for provider "p".
RULE = {
    "provider": "p",
    "source": "test",
    "cache_read_per_input": "0.1",
    "cache_write_per_input": "1.25",
    "cache_write_1h_per_input": "2",
    "service_tiers": {"batch": "0.5", "flex": "0.5"},
}


def book(*entries: dict[str, Any], **fields: Any) -> CompiledBook:
    """A compiled book ``t@1``; ``fields``: overlays, fx_rates, currency."""
    return CompiledBook(
        PriceBook.model_validate({"name": "t", "version": "1", "entries": list(entries), **fields})
    )


def entry(**overrides: Any) -> dict[str, Any]:
    """An entry for p/m at 2.00 in, 8.00 out; an override of None removes the field."""
    base: dict[str, Any] = {
        "provider": "p",
        "model": "m",
        "effective_from": "2026-01-01",
        "input_per_mtok": "2.00",
        "output_per_mtok": "8.00",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def call(model: str = "m", ts: str = "2026-06-01T00:00:00Z", **usage: int) -> CallEvent:
    return CallEvent.model_validate(
        {"event_id": "e", "task_id": "t", "ts": ts, "provider": "p", "model": model, "usage": usage}
    )


def test_each_dimension_priced_at_its_own_rate() -> None:
    compiled = book(
        entry(
            cache_read_per_mtok="0.50",
            cache_write_per_mtok="2.50",
            reasoning_per_mtok="10.00",
            per_request="0.001",
        )
    )
    cost = price_call(
        call(
            input_tokens=1000,
            cache_read_tokens=4000,
            cache_write_tokens=2000,
            output_tokens=500,
            reasoning_tokens=300,
        ),
        compiled,
    )
    # 1000*2/1e6 = 0.002; 4000*0.5/1e6 = 0.002; 2000*2.5/1e6 = 0.005
    # 500*8/1e6 = 0.004; 300*10/1e6 = 0.003; request 0.001
    assert cost.input == Decimal("0.002")
    assert cost.cache_read == Decimal("0.002")
    assert cost.cache_write == Decimal("0.005")
    assert cost.output == Decimal("0.004")
    assert cost.reasoning == Decimal("0.003")
    assert cost.request == Decimal("0.001")
    assert cost.total == Decimal("0.017")
    assert cost.price_book_version == "t@1"
    assert cost.currency == "USD"


def test_reasoning_is_billed_as_output_and_an_unpriced_cache_class_is_an_error() -> None:
    cost = price_call(call(reasoning_tokens=1_000_000), book(entry()))
    assert cost.reasoning == Decimal("8.00")
    # No cache-read rate and no provider rule: never the input rate by guess.
    with pytest.raises(UnitNotPriced, match="cache_read_tokens"):
        price_call(call(cache_read_tokens=1), book(entry()))
    with pytest.raises(UnitNotPriced, match="cache_write_tokens"):
        price_call(call(cache_write_tokens=1), book(entry()))
    # A declared rule prices them: 0.1 x 2.00 = 0.20 and 1.25 x 2.00 = 2.50 per MTok.
    ruled = book(entry(), provider_rules=[RULE])
    cost = price_call(call(cache_read_tokens=1_000_000, cache_write_tokens=1_000_000), ruled)
    assert (cost.cache_read, cost.cache_write) == (Decimal("0.200"), Decimal("2.5000"))


def test_single_token_is_exact() -> None:
    cost = price_call(call(output_tokens=1), book(entry(output_per_mtok="0.075")))
    assert cost.total == Decimal("0.000000075")


def test_effective_dates_pick_the_price_in_force_at_event_time() -> None:
    compiled = book(entry(), entry(effective_from="2026-07-01T00:00:00Z", input_per_mtok="1.00"))
    before = call(ts="2026-06-30T23:59:59.999Z", input_tokens=1_000_000)
    at = call(ts="2026-07-01T00:00:00Z", input_tokens=1_000_000)
    assert price_call(before, compiled).total == Decimal("2.00")
    assert price_call(at, compiled).total == Decimal("1.00")
    assert price_call(at, compiled).entry_effective_from == datetime(2026, 7, 1, tzinfo=UTC)


def test_a_call_before_the_first_entry_has_no_price() -> None:
    with pytest.raises(PriceNotFound) as info:
        price_call(call(ts="2025-12-31T23:59:59Z"), book(entry()))
    assert info.value.provider == "p" and info.value.model == "m"


def test_exact_and_pattern_aliases() -> None:
    compiled = book(entry(aliases=["m-latest", "m-2026*"]))
    assert price_call(call("m-latest", input_tokens=10**6), compiled).total == Decimal("2.00")
    assert price_call(call("m-20260315", input_tokens=10**6), compiled).entry_model == "m"
    with pytest.raises(PriceNotFound):
        price_call(call("m-2025"), compiled)


def test_unknown_model_is_a_typed_error_with_advice() -> None:
    with pytest.raises(PriceNotFound, match="add an entry or alias"):
        price_call(call("nope"), book(entry()))


def test_book_rejects_unknown_fields_and_negative_prices() -> None:
    with pytest.raises(ValueError, match="extra"):
        PriceBook.model_validate({"name": "t", "version": "1", "entries": [entry(colour="red")]})
    with pytest.raises(ValueError, match="greater than or equal"):
        PriceBook.model_validate(
            {"name": "t", "version": "1", "entries": [entry(input_per_mtok="-1")]}
        )


def test_duplicate_effective_dates_are_refused() -> None:
    with pytest.raises(PriceBookInvalid, match="same effective_from"):
        book(entry(), entry())


def test_shipped_book_loads_and_prices_a_dated_model_id() -> None:
    compiled = CompiledBook(load_price_book(DEFAULT_BOOK))
    sonnet = CallEvent.model_validate(
        {
            "event_id": "e",
            "task_id": "t",
            "ts": "2026-11-01T00:00:00Z",
            "provider": "anthropic",
            "model": "claude-sonnet-4-5-20250929",
            "usage": {"input_tokens": 1000, "cache_read_tokens": 2000, "output_tokens": 300},
        }
    )
    cost = price_call(sonnet, compiled)
    # 1000*3 + 2000*0.30 + 300*15 = 3000 + 600 + 4500 = 8100 per 1e6
    assert cost.total == Decimal("0.0081")
    assert cost.price_book_version.startswith("default@")


def test_book_directory_errors_say_where(tmp_path: Path) -> None:
    (tmp_path / "book.yaml").write_text("name: x\nversion: '1'\n")
    (tmp_path / "p.yaml").write_text("entries:\n  - provider: p\n    model: m\n")
    with pytest.raises(PriceBookInvalid, match=r"entries\.0"):
        load_price_book(tmp_path)
    with pytest.raises(PriceBookInvalid, match="does not exist"):
        load_price_book(tmp_path / "missing")


def tiered(**overrides: Any) -> CompiledBook:
    return book(
        entry(
            cache_read_per_mtok="0.20",
            tiers=[
                {
                    "above_prompt_tokens": 200_000,
                    "input_per_mtok": "4.00",
                    "output_per_mtok": "12.00",
                }
            ],
            **overrides,
        )
    )


def test_long_context_tier_applies_only_above_the_threshold() -> None:
    compiled = tiered()
    # Exactly at the threshold: base rates. 200,000 x 2.00 / 1e6 = 0.40; 1,000 x 8 / 1e6 = 0.008
    at = call(input_tokens=200_000, output_tokens=1_000)
    assert price_call(at, compiled).total == Decimal("0.408")
    # One token over: the whole request at the tier's rates.
    # 200,001 x 4.00 / 1e6 = 0.800004; 1,000 x 12 / 1e6 = 0.012
    over = call(input_tokens=200_001, output_tokens=1_000)
    assert price_call(over, compiled).total == Decimal("0.812004")


def test_cached_tokens_count_towards_the_threshold_and_unset_tier_rates_fall_back() -> None:
    compiled = tiered()
    # prompt = 100,000 + 100,001 cache read > 200,000: tier applies to input and output,
    # cache read keeps the base 0.20 (the tier does not set it).
    cost = price_call(call(input_tokens=100_000, cache_read_tokens=100_001), compiled)
    assert cost.input == Decimal("0.4")  # 100,000 x 4.00 / 1e6
    assert cost.cache_read == Decimal("0.0200002")  # 100,001 x 0.20 / 1e6


def service_call(tier: str, **usage: int) -> CallEvent:
    return CallEvent.model_validate(
        {
            "event_id": "e",
            "task_id": "t",
            "ts": "2026-06-01T00:00:00Z",
            "provider": "p",
            "model": "m",
            "service_tier": tier,
            "usage": usage,
        }
    )


def test_service_tier_multiplier_and_own_rates() -> None:
    tiers = [{"above_prompt_tokens": 1000, "input_per_mtok": "3.00"}]
    compiled = book(
        entry(
            tiers=tiers,
            service_tiers={
                "batch": {"multiplier": "0.5"},
                "priority": {"input_per_mtok": "3.50", "output_per_mtok": "14.00"},
            },
        )
    )
    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}
    # Standard, above the 1,000-token tier: 3.00 + 8.00
    assert price_call(service_call("standard", **usage), compiled).total == Decimal("11.00")
    # Batch: half of the tier-resolved standard rates: 1.50 + 4.00
    assert price_call(service_call("batch", **usage), compiled).total == Decimal("5.500")
    # Priority's own rates are below the threshold only: 1,000 in + 1,000 out = 0.0035 + 0.014
    small = {"input_tokens": 1000, "output_tokens": 1000}
    assert price_call(service_call("priority", **small), compiled).total == Decimal("0.0175")
    # Above it the entry has no priority price and no rule says one: an error, not a guess.
    with pytest.raises(UnitNotPriced, match="input_tokens"):
        price_call(service_call("priority", **usage), compiled)
    # Flex is not in the book and no rule: an error, never the standard rate.
    with pytest.raises(ServiceTierNotPriced, match="'flex'"):
        price_call(service_call("flex", **usage), compiled)


def test_a_tier_with_own_rates_gets_the_classes_it_omits_from_the_provider_rule() -> None:
    """Anthropic's batch list gives input, output and cache rates but not 1-hour writes:
    "50% of every class" prices those from standard, never at the full standard rate."""
    compiled = book(
        entry(
            cache_read_per_mtok="0.20",
            service_tiers={"batch": {"input_per_mtok": "1.00", "output_per_mtok": "4.00"}},
        ),
        provider_rules=[RULE],
    )
    cost = price_call(
        service_call("batch", input_tokens=1000, cache_read_tokens=1000,
                     cache_write_1h_tokens=1000, output_tokens=1000),
        compiled,
    )  # fmt: skip
    # own: 1000 x 1.00 + 1000 x 4.00; rule: 0.5 x standard cache read 0.20 = 0.10 and
    # 0.5 x standard 1-hour write (2 x 2.00 = 4.00) = 2.00; per MTok
    assert (cost.input, cost.output) == (Decimal("0.001"), Decimal("0.004"))
    assert (cost.cache_read, cost.cache_write) == (Decimal("0.0001"), Decimal("0.002"))


def test_service_tiers_combine_with_long_context_tiers() -> None:
    compiled = book(
        entry(
            tiers=[{"above_prompt_tokens": 1000, "input_per_mtok": "4", "output_per_mtok": "12"}],
            service_tiers={
                "batch": {
                    "input_per_mtok": "1.00",
                    "output_per_mtok": "4.00",
                    "tiers": [{"above_prompt_tokens": 1000, "input_per_mtok": "1.80"}],
                }
            },
        ),
        provider_rules=[RULE],
    )
    big = {"input_tokens": 2000, "output_tokens": 1000}
    # Batch above the threshold: its own long-context input 1.80; output from the
    # rule, 0.5 x the long-context standard 12 = 6 (never the flat batch 4.00).
    cost = price_call(service_call("batch", **big), compiled)
    assert (cost.input, cost.output) == (Decimal("0.0036"), Decimal("0.006"))
    # Flex (rule 0.5) above the threshold: 2000 x 2.00 + 1000 x 6 per MTok.
    assert price_call(service_call("flex", **big), compiled).total == Decimal("0.010")
    with pytest.raises(ValueError, match="threshold the entry's own tiers do not have"):
        book(entry(service_tiers={"batch": {"tiers": [{"above_prompt_tokens": 5,
                                                        "input_per_mtok": "1"}]}}))  # fmt: skip


def test_one_hour_cache_writes_are_never_billed_at_the_five_minute_rate() -> None:
    own = book(entry(cache_write_per_mtok="2.50", cache_write_1h_per_mtok="4.00"))
    five = book(entry(cache_write_per_mtok="2.50"))
    ruled = book(entry(cache_write_per_mtok="2.50"), provider_rules=[RULE])
    usage = {"cache_write_tokens": 1_000_000, "cache_write_1h_tokens": 1_000_000}
    assert price_call(call(**usage), own).cache_write == Decimal("6.50")
    with pytest.raises(UnitNotPriced, match="cache_write_1h_tokens"):
        price_call(call(**usage), five)
    # The rule's 2 x input (2.00) for the 1-hour write: 2.50 + 4.00
    assert price_call(call(**usage), ruled).cache_write == Decimal("6.5000")


def test_tier_thresholds_must_ascend() -> None:
    with pytest.raises(ValueError, match="ascending"):
        book(
            entry(
                tiers=[
                    {"above_prompt_tokens": 5, "input_per_mtok": "1"},
                    {"above_prompt_tokens": 5, "input_per_mtok": "2"},
                ]
            )
        )


def test_cache_tokens_at_the_input_rate_are_the_savings_baseline() -> None:
    # 1,000,000 cache reads at 0.20 (billed) and at 2.00 (input rate); 500,000 writes
    # at 2.50 (billed) and at 2.00; the baselines are never part of the total.
    priced = book(entry(cache_read_per_mtok="0.20", cache_write_per_mtok="2.50"))
    cost = price_call(call(cache_read_tokens=1_000_000, cache_write_tokens=500_000), priced)
    assert (cost.cache_read, cost.cache_read_uncached) == (Decimal("0.2"), Decimal("2"))
    assert (cost.cache_write, cost.cache_write_uncached) == (Decimal("1.25"), Decimal("1"))
    assert cost.total == Decimal("1.45")


def test_a_reprice_that_moves_only_the_savings_baseline_rewrites_the_call() -> None:
    from pipeline.runtime.reprice import _changed

    def stored(baseline: Decimal | None) -> dict[str, Any]:
        zero = ("input", "cache_write", "output", "reasoning", "audio", "image", "request", "units")
        parts = {f"cost_{p}": Decimal(0) for p in zero}
        return {**parts, "cost_cache_read": Decimal("0.2"), "cost_total": Decimal("0.2"),
                "cost_cache_read_uncached": baseline,
                "cost_cache_write_uncached": None if baseline is None else Decimal(0)}  # fmt: skip

    # The corrected book changes the input rate only: nothing billed moves for a call
    # of cache reads alone, but the baseline of its savings does.
    corrected = book(entry(input_per_mtok="3.00", cache_read_per_mtok="0.20"))
    cost = price_call(call(cache_read_tokens=1_000_000), corrected)
    assert _changed(stored(Decimal("2")), cost)
    assert not _changed(stored(Decimal("3")), cost)
    assert not _changed(stored(None), cost)  # priced before baselines existed: left alone


def test_time_windows_by_hand() -> None:
    from pipeline.pricing.book import TimeWindow

    weekday_evening = TimeWindow(hours_utc=("16:30-00:30",), weekdays=(1, 2, 3, 4, 5))
    # 2026-06-05 is a Friday, 06-06 a Saturday
    assert weekday_evening.contains(datetime(2026, 6, 5, 16, 30, tzinfo=UTC))
    assert not weekday_evening.contains(datetime(2026, 6, 5, 16, 29, tzinfo=UTC))
    assert weekday_evening.contains(datetime(2026, 6, 6, 0, 29, tzinfo=UTC))  # Friday's span
    assert not weekday_evening.contains(datetime(2026, 6, 6, 0, 30, tzinfo=UTC))
    assert not weekday_evening.contains(datetime(2026, 6, 6, 20, 0, tzinfo=UTC))  # Saturday
    whole_weekend = TimeWindow(hours_utc="00:00-00:00", weekdays=(6, 7))
    assert whole_weekend.contains(datetime(2026, 6, 7, 23, 59, tzinfo=UTC))
    assert not whole_weekend.contains(datetime(2026, 6, 8, 0, 0, tzinfo=UTC))  # Monday


def test_off_peak_prices_follow_the_calls_event_time_not_the_clock() -> None:
    compiled = book(
        entry(
            cache_read_per_mtok="0.20",
            off_peak={
                "input_per_mtok": "1.00",
                "output_per_mtok": "4.00",
                "windows": [{"hours_utc": ["16:30-00:30"]}],
            },
        )
    )

    def at(ts: str, tier: str = "standard") -> Decimal:
        event = CallEvent.model_validate(
            {"event_id": "e", "task_id": "t", "ts": ts, "provider": "p", "model": "m",
             "service_tier": tier,
             "usage": {"input_tokens": 1_000_000, "cache_read_tokens": 1_000_000,
                       "output_tokens": 1_000_000}}
        )  # fmt: skip
        return price_call(event, compiled).total

    # Peak: 2.00 + 0.20 + 8.00; off-peak: 1.00 + 0.20 (not set off-peak: standard) + 4.00
    assert at("2026-06-05T12:00:00Z") == Decimal("10.20")
    assert at("2026-06-05T17:00:00Z") == Decimal("5.20")
    assert at("2026-06-06T00:15:00+00:00") == Decimal("5.20")
    # A service tier the off-peak prices do not cover is refused inside the window.
    with pytest.raises(ServiceTierNotPriced):
        at("2026-06-05T17:00:00Z", "batch")
