"""costflow price / pricing: pricing files of events, writing, showing and diffing books."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.errors import PriceNotFound
from pipeline.pricing import CompiledBook, PriceBook, load_price_book
from pipeline.pricing.tools import diff, price_lines, show, write_book


def small_book(input_rate: str = "2.00") -> PriceBook:
    return PriceBook.model_validate(
        {
            "name": "small",
            "version": "1",
            "entries": [
                {
                    "provider": "p",
                    "model": "m",
                    "effective_from": "2026-01-01",
                    "input_per_mtok": input_rate,
                    "output_per_mtok": "8.00",
                    "cache_read_per_mtok": "0.50",
                    "tiers": [{"above_prompt_tokens": 1000, "input_per_mtok": "4.00"}],
                    "service_tiers": {"batch": {"multiplier": "0.5"}},
                },
                {
                    "provider": "q",
                    "model": "n",
                    "effective_from": "2026-01-01",
                    "input_per_mtok": "1",
                    "output_per_mtok": "1",
                },
            ],
        }
    )


def test_price_lines_adds_cost_per_dimension_as_decimal_strings() -> None:
    lines = [
        json.dumps(
            {
                "event_id": "a",
                "task_id": "t",
                "ts": "2026-02-01T00:00:00Z",
                "provider": "p",
                "model": "m",
                "usage": {"input_tokens": 500, "cache_read_tokens": 200, "output_tokens": 100},
            }
        ).encode(),
        json.dumps(
            {
                "event_id": "b",
                "task_id": "t",
                "ts": "2026-02-01T00:00:00Z",
                "provider": "p",
                "model": "unknown",
                "usage": {},
            }
        ).encode(),
        b"not json",
        b"",
    ]
    out = [json.loads(line) for line in price_lines(lines, CompiledBook(small_book()))]
    assert len(out) == 3
    # 500 x 2.00 + 200 x 0.50 + 100 x 8.00 = 1000 + 100 + 800 = 1900 per 1e6
    assert out[0]["cost"] == {
        "total": "0.0019",
        "input": "0.001",
        "cache_read": "0.0001",
        "cache_write": "0",
        "output": "0.0008",
        "reasoning": "0",
        "audio": "0",
        "image": "0",
        "request": "0",
        "units": "0",
        "currency": "USD",
        "price_book_version": "small@1",
        "entry_model": "m",
        "entry_effective_from": "2026-01-01T00:00:00+00:00",
    }
    assert out[0]["event_id"] == "a"
    assert out[1]["cost"] is None and out[1]["pricing_error"].startswith("price_not_found")
    assert out[2]["cost"] is None and out[2]["pricing_error"].startswith("not_json")


def test_price_lines_shows_a_partial_price_as_at_least_with_what_is_missing() -> None:
    line = {
        "event_id": "a", "task_id": "t", "ts": "2026-02-01T00:00:00Z", "provider": "p",
        "model": "m", "usage": {"input_tokens": 500, "cache_write_tokens": 40}, "units": {"s": 2},
    }  # fmt: skip
    book = CompiledBook(small_book())
    (out,) = [json.loads(x) for x in price_lines([json.dumps(line).encode()], book)]
    # m prices neither cache writes nor unit "s": known is 500 x $2.00 per MTok = $0.001
    assert out["cost"] is None and out["pricing_error"].startswith("unit_not_priced")
    assert out["cost_at_least"]["total"] == "0.001" and out["cost_at_least"]["input"] == "0.001"
    assert out["unpriced_dimensions"] == ["cache_write_tokens", "s"]
    # Plain numbers, never exponents: 1 token of input at $2.00 per MTok.
    line["usage"] = {"input_tokens": 1}
    line["units"] = {}
    (one,) = [json.loads(x) for x in price_lines([json.dumps(line).encode()], book)]
    assert one["cost"]["total"] == "0.000002" and one["cost"]["output"] == "0"


def test_price_lines_reports_units_conversion_and_overlay() -> None:
    book = PriceBook.model_validate(
        {
            "name": "eu",
            "version": "1",
            "entries": [
                {
                    "provider": "p",
                    "model": "m",
                    "effective_from": "2026-01-01",
                    "currency": "EUR",
                    "per_unit": {"query": "0.005"},
                }
            ],
            "overlays": [
                {
                    "name": "deal",
                    "match": {"environment": "prod"},
                    "effective_from": "2026-01-01",
                    "per_unit": {"query": "0.004"},
                }
            ],
            "fx_rates": [
                {"currency": "EUR", "effective_from": "2026-01-01", "rate_to_book_currency": "1.25"}
            ],
        }
    )
    line = {
        "event_id": "a", "task_id": "t", "ts": "2026-02-01T00:00:00Z", "provider": "p",
        "model": "m", "environment": "prod", "usage": {}, "units": {"query": 10},
    }  # fmt: skip
    unknown_unit = {**line, "units": {"evaluation": 1}}
    out = [
        json.loads(raw)
        for raw in price_lines(
            [json.dumps(line).encode(), json.dumps(unknown_unit).encode()], CompiledBook(book)
        )
    ]
    # 10 x 0.004 EUR (the overlay's price) x 1.25
    assert out[0]["cost"]["units"] == "0.05000"
    assert out[0]["cost"]["total"] == "0.05000"
    assert (out[0]["cost"]["list_currency"], out[0]["cost"]["fx_rate"]) == ("EUR", "1.25")
    assert out[0]["cost"]["overlay"] == "deal"
    assert out[1]["cost"] is None
    assert out[1]["pricing_error"].startswith("unit_not_priced")


def test_a_written_book_loads_back_identical(tmp_path: Path) -> None:
    book = small_book()
    write_book(book, tmp_path / "book")
    assert sorted(p.name for p in (tmp_path / "book").iterdir()) == [
        "book.yaml",
        "p.yaml",
        "q.yaml",
    ]
    assert load_price_book(tmp_path / "book") == book
    extras = PriceBook.model_validate(
        {
            "name": "x",
            "version": "1",
            "entries": [],
            "overlays": [
                {
                    "name": "o",
                    "match": {"owner": "a"},
                    "effective_from": "2026-01-01",
                    "effective_to": "2026-02-01",
                    "multiplier": "0.9",
                }
            ],
            "fx_rates": [
                {
                    "currency": "EUR",
                    "effective_from": "2026-01-01",
                    "rate_to_book_currency": "1.1",
                }
            ],
        }
    )
    with_extras = book.model_copy(update={"overlays": extras.overlays, "fx_rates": extras.fx_rates})
    write_book(with_extras, tmp_path / "extras")
    assert load_price_book(tmp_path / "extras") == with_extras


def test_show_names_the_entry_in_force() -> None:
    compiled = CompiledBook(small_book())
    shown = show(compiled, "p", "m", datetime(2026, 3, 1, tzinfo=UTC))
    assert shown["price_book_version"] == "small@1"
    assert Decimal(shown["input_per_mtok"]) == Decimal("2.00")
    with pytest.raises(PriceNotFound):
        show(compiled, "p", "m", datetime(2025, 12, 31, tzinfo=UTC))


def test_diff_lists_added_removed_and_changed_fields() -> None:
    a = small_book()
    b = PriceBook.model_validate(
        {
            **small_book("2.50").model_dump(mode="json"),
            "entries": [small_book("2.50").entries[0].model_dump(mode="json")],
        }
    )
    changes = diff(a, b)
    assert changes["added"] == []
    assert changes["removed"] == ["q/n from 2026-01-01T00:00:00+00:00"]
    assert changes["changed"] == [
        "p/m from 2026-01-01T00:00:00+00:00: input_per_mtok: 2.00 -> 2.50"
    ]
    # A provider rule prices calls too: adding a unit price is a change.
    rule = {"provider": "p", "source": "test", "per_unit": {"s": "0.03"}}
    with_rule = PriceBook.model_validate({**a.model_dump(mode="json"), "provider_rules": [rule]})
    assert diff(a, with_rule)["added"] == ["provider rule p"]
    changed_rule = {**rule, "per_unit": {"s": "0.04"}}
    b2 = PriceBook.model_validate({**a.model_dump(mode="json"), "provider_rules": [changed_rule]})
    assert diff(with_rule, b2)["changed"] == [
        "provider rule p: per_unit: {'s': '0.03'} -> {'s': '0.04'}"
    ]
