"""Non-token units, FX conversion and overlays; expected values worked out by hand."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.errors import FxRateNotFound, PriceBookInvalid, UnitNotPriced
from pipeline.events.models import CallEvent
from pipeline.pricing import CompiledBook, load_price_book, price_call
from tests.unit.test_pricing import book, entry


def call(ts: str = "2026-06-01T00:00:00Z", **fields: Any) -> CallEvent:
    data: dict[str, Any] = {
        "event_id": "e",
        "task_id": "t",
        "ts": ts,
        "provider": "p",
        "model": "m",
        "usage": {"input_tokens": 1_000_000, "output_tokens": 1_000_000},
    }
    data.update(fields)
    return CallEvent.model_validate(data)


# --- non-token units -------------------------------------------------------


def test_units_are_priced_per_unit_and_added_to_the_total() -> None:
    compiled = book(entry(per_unit={"tool_call": "0.01", "gpu_second": "0.0011"}))
    cost = price_call(call(units={"tool_call": 3, "gpu_second": "12.5"}), compiled)
    # 3 x 0.01 + 12.5 x 0.0011 = 0.03 + 0.01375
    assert cost.units == Decimal("0.04375")
    # tokens: 1M x 2.00 + 1M x 8.00 = 10.00
    assert cost.total == Decimal("10.04375")


def test_a_self_hosted_model_priced_only_by_gpu_seconds() -> None:
    compiled = book(
        entry(
            provider="self-hosted",
            model="llama-3.3-70b",
            input_per_mtok=None,
            output_per_mtok=None,
            per_unit={"gpu_second": "0.00097"},
        )
    )
    cost = price_call(
        call(provider="self-hosted", model="llama-3.3-70b", usage={}, units={"gpu_second": 40}),
        compiled,
    )
    assert cost.total == Decimal("0.03880")


def test_a_unit_the_entry_does_not_price_is_a_typed_error() -> None:
    compiled = book(entry(per_unit={"query": "0.005"}))
    with pytest.raises(UnitNotPriced) as info:
        price_call(call(units={"query": 1, "evaluation": 2}), compiled)
    assert (info.value.provider, info.value.model, info.value.unit) == ("p", "m", "evaluation")
    assert "reprice" in str(info.value)


def test_tokens_of_a_class_without_a_rate_are_an_error_not_free() -> None:
    compiled = book(entry(input_per_mtok=None, output_per_mtok=None, per_unit={"query": "0.005"}))
    # Only units: fine.
    assert price_call(call(usage={}, units={"query": 2}), compiled).total == Decimal("0.010")
    with pytest.raises(UnitNotPriced) as info:
        price_call(call(usage={"output_tokens": 1}, units={"query": 2}), compiled)
    assert info.value.unit == "output_tokens"


def test_an_entry_must_price_something() -> None:
    with pytest.raises(ValueError, match="needs token rates"):
        book(entry(input_per_mtok=None, output_per_mtok=None))


def test_unit_names_and_quantities_are_validated() -> None:
    with pytest.raises(ValueError):
        call(units={"GPU-Seconds": 1})
    with pytest.raises(ValueError):
        call(units={"query": -1})
    with pytest.raises(ValueError):
        book(entry(per_unit={"Query": "0.1"}))


# --- currencies --------------------------------------------------------------


FX = [
    {"currency": "EUR", "effective_from": "2026-01-01", "rate_to_book_currency": "1.08"},
    {"currency": "EUR", "effective_from": "2026-07-01", "rate_to_book_currency": "1.1"},
]


def test_a_price_in_another_currency_is_converted_at_the_rate_in_force() -> None:
    compiled = book(entry(currency="EUR", per_request="0.01"), fx_rates=FX)
    june = price_call(call(ts="2026-06-30T23:59:59.999Z"), compiled)
    # (2.00 + 8.00 + 0.01) EUR x 1.08
    assert (june.input, june.output, june.request) == (
        Decimal("2.16"),
        Decimal("8.64"),
        Decimal("0.0108"),
    )
    assert june.total == Decimal("10.8108")
    assert (june.currency, june.list_currency, june.fx_rate) == ("USD", "EUR", Decimal("1.08"))
    july = price_call(call(ts="2026-07-01T00:00:00Z"), compiled)
    assert july.total == Decimal("11.011")
    assert july.fx_rate == Decimal("1.1")


def test_no_conversion_in_the_book_currency() -> None:
    cost = price_call(call(), book(entry(), fx_rates=FX))
    assert (cost.list_currency, cost.fx_rate) == ("USD", None)


def test_a_missing_fx_rate_is_a_typed_error() -> None:
    compiled = book(entry(currency="EUR"), fx_rates=FX)
    with pytest.raises(FxRateNotFound) as info:
        price_call(call(ts="2026-03-01T00:00:00Z"), book(entry(currency="GBP"), fx_rates=FX))
    assert (info.value.currency, info.value.book_currency) == ("GBP", "USD")
    with pytest.raises(FxRateNotFound):  # before the first EUR rate
        price_call(call(ts="2026-01-01T00:00:00Z"), book(entry(currency="EUR")))
    assert price_call(call(ts="2026-01-01T00:00:00Z"), compiled).fx_rate == Decimal("1.08")


def test_digits_past_the_18th_decimal_are_rounded_half_even_per_dimension() -> None:
    # One token at 0.000001 per Mtok is 1e-12; x 0.333333333333 adds 12 digits.
    compiled = book(
        entry(currency="EUR", input_per_mtok="0.000001", output_per_mtok="0.000003"),
        fx_rates=[
            {
                "currency": "EUR",
                "effective_from": "2026-01-01",
                "rate_to_book_currency": "0.333333333333",
            }
        ],
    )
    cost = price_call(call(usage={"input_tokens": 1, "output_tokens": 1}), compiled)
    # 1e-12 x 0.333333333333 = 3.33333333333e-13 -> 0.000000000000333333
    assert cost.input == Decimal("0.000000000000333333")
    # 3e-12 x 0.333333333333 = 9.99999999999e-13 -> 0.000000000001000000 (half-even up)
    assert cost.output == Decimal("0.000000000001000000")
    assert cost.total == cost.input + cost.output


# --- overlays ------------------------------------------------------------------


def test_a_discount_overlay_scales_every_dimension_for_its_owner_only() -> None:
    compiled = book(
        entry(per_request="0.02", per_unit={"query": "0.10"}),
        overlays=[
            {
                "name": "search-team-discount",
                "match": {"owner": "search", "provider": "p"},
                "effective_from": "2026-05-01",
                "multiplier": "0.85",
            }
        ],
    )
    discounted = price_call(call(owner="search", units={"query": 2}), compiled)
    # (2.00 + 8.00 + 0.02 + 0.20) x 0.85 = 8.687
    assert discounted.total == Decimal("8.687")
    assert discounted.request == Decimal("0.017")
    assert discounted.overlay == "search-team-discount"
    other = price_call(call(owner="ads", units={"query": 2}), compiled)
    assert (other.total, other.overlay) == (Decimal("10.22"), "")
    nobody = price_call(call(units={"query": 2}), compiled)
    assert nobody.total == Decimal("10.22")


def test_an_overlay_applies_only_inside_its_dates() -> None:
    compiled = book(
        entry(),
        overlays=[
            {
                "name": "q2-promo",
                "match": {"environment": "prod"},
                "effective_from": "2026-04-01",
                "effective_to": "2026-07-01",
                "multiplier": "0.5",
            }
        ],
    )
    cases = [
        ("2026-03-31T23:59:59.999Z", "prod", "10.00"),
        ("2026-04-01T00:00:00Z", "prod", "5.000"),
        ("2026-06-30T23:59:59.999Z", "prod", "5.000"),
        ("2026-07-01T00:00:00Z", "prod", "10.00"),  # effective_to is exclusive
        ("2026-05-01T00:00:00Z", "dev", "10.00"),
    ]
    for ts, environment, total in cases:
        assert price_call(call(ts=ts, environment=environment), compiled).total == Decimal(total)


def test_custom_prices_replace_list_prices_in_every_tier_and_the_first_match_wins() -> None:
    compiled = book(
        entry(
            tiers=[
                {
                    "above_prompt_tokens": 200_000,
                    "input_per_mtok": "4.00",
                    "output_per_mtok": "16.00",
                }
            ],
            service_tiers={"batch": {"multiplier": "0.5"}},
        ),
        overlays=[
            {
                "name": "acme-contract",
                "match": {"owner": "acme", "model": "m*"},
                "effective_from": "2026-01-01",
                "input_per_mtok": "1.00",
            },
            {
                "name": "never-reached-for-acme",
                "match": {"owner": "acme"},
                "effective_from": "2026-01-01",
                "multiplier": "0.1",
            },
        ],
    )
    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}
    # Above the tier: contract input 1.00 wins over the tier's 4.00; output stays the tier's 16.00.
    cost = price_call(call(owner="acme", usage=usage), compiled)
    assert (cost.input, cost.output, cost.overlay) == (
        Decimal("1.00"),
        Decimal("16.00"),
        "acme-contract",
    )
    # Batch halves the contract rates too.
    batch = price_call(call(owner="acme", usage=usage, service_tier="batch"), compiled)
    assert batch.total == Decimal("8.500")
    small = price_call(
        call(owner="acme", usage={"input_tokens": 1000, "output_tokens": 1000}), compiled
    )
    # 1000 x 1.00 / 1e6 + 1000 x 8.00 / 1e6
    assert small.total == Decimal("0.009")


def test_an_overlay_needs_exactly_one_kind_of_change() -> None:
    base = {"name": "o", "match": {"owner": "x"}, "effective_from": "2026-01-01"}
    with pytest.raises(ValueError, match="either multiplier or prices"):
        book(entry(), overlays=[base])
    with pytest.raises(ValueError, match="either multiplier or prices"):
        book(entry(), overlays=[{**base, "multiplier": "0.9", "input_per_mtok": "1"}])
    with pytest.raises(ValueError, match="effective_to"):
        book(entry(), overlays=[{**base, "multiplier": "0.9", "effective_to": "2025-01-01"}])
    with pytest.raises(ValueError, match="unique"):
        book(entry(), overlays=[{**base, "multiplier": "0.9"}, {**base, "multiplier": "0.8"}])


def test_a_book_directory_collects_overlays_and_fx_rates_from_any_file(tmp_path: Path) -> None:
    (tmp_path / "book.yaml").write_text(
        yaml.safe_dump({"name": "b", "version": "2", "currency": "USD"})
    )
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"entries": [entry(currency="EUR")]}))
    (tmp_path / "contracts.yaml").write_text(
        yaml.safe_dump(
            {
                "overlays": [
                    {
                        "name": "o",
                        "match": {"owner": "x"},
                        "effective_from": "2026-01-01",
                        "multiplier": "0.9",
                    }
                ],
                "fx_rates": FX,
            }
        )
    )
    loaded = load_price_book(tmp_path)
    assert [o.name for o in loaded.overlays] == ["o"]
    assert len(loaded.fx_rates) == 2
    # 10 EUR x 1.08 x 0.9
    assert price_call(call(owner="x"), CompiledBook(loaded)).total == Decimal("9.720")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"prices": []}))
    with pytest.raises(PriceBookInvalid, match="only entries, overlays, fx_rates"):
        load_price_book(tmp_path)


def test_a_service_tier_multiplier_is_rounded_too_and_only_where_it_applies() -> None:
    compiled = book(
        entry(input_per_mtok="0.000000000001", service_tiers={"batch": {"multiplier": "0.5"}})
    )
    usage = {"input_tokens": 3}
    # Standard: 3 x 1e-12 / 1e6 = 3e-18, exact.
    assert price_call(call(usage=usage), compiled).input == Decimal("3E-18")
    # Batch: 1.5e-18 -> 2e-18 (half-even), and the total is the rounded part.
    batch = price_call(call(usage=usage, service_tier="batch"), compiled)
    assert (batch.input, batch.total) == (Decimal("2E-18"), Decimal("2E-18"))
