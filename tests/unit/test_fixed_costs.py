"""Fixed-cost declarations: validation, periods, amounts, and loads in chDB."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pipeline.clickhouse.migrate import migrate
from pipeline.errors import FixedCostsInvalid
from pipeline.pricing.fixed_costs import FixedCostItem, FixedCosts, load_fixed_costs
from pipeline.query import fixed_costs

ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = {"item": "x", "category": "gpu", "month": "2026-11", "amount": "10"}


def test_months_and_amounts() -> None:
    assert FixedCostItem.model_validate(BASE).period == (date(2026, 11, 1), date(2026, 12, 1))
    december = FixedCostItem.model_validate({**BASE, "month": "2026-12"})
    assert december.period == (date(2026, 12, 1), date(2027, 1, 1))
    priced = FixedCostItem.model_validate(
        {
            **BASE,
            "amount": None,
            "quantity": "0.25",
            "quantity_unit": "engineer_hour",
            "price_per_unit": "95.123456789012",
        }
    )
    assert priced.total == Decimal("23.780864197253")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"month": None}, "give a month"),
        ({"period_start": "2026-11-01"}, "either month or period_start"),
        (
            {"month": None, "period_start": "2026-11-05", "period_end": "2026-11-05"},
            "must be after",
        ),
        ({"month": None, "period_start": "2026-01-01", "period_end": "2027-06-01"}, "split it"),
        ({"quantity": "3"}, "either amount or quantity"),
        ({"amount": None, "quantity": "3"}, "give amount, or quantity"),
        ({"rule": "weights"}, "needs weights"),
        ({"rule": "weights", "weights": {"a": 1}, "scenarios": ["a"]}, "drop scenarios"),
        ({"weights": {"a": 1}}, "only for rule: weights"),
        ({"amount": "-1"}, "greater than or equal to 0"),
        (
            {
                "amount": None,
                "quantity": "999999999999",
                "quantity_unit": "h",
                "price_per_unit": "999999999999",
            },
            "check the figures",
        ),
        ({"owner": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_items_say_what_is_wrong(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FixedCostItem.model_validate({**BASE, **change})


def test_item_names_are_unique() -> None:
    with pytest.raises(ValidationError, match="repeated: x"):
        FixedCosts.model_validate({"items": [BASE, BASE]})


def test_a_bad_file_names_the_file_and_the_place(tmp_path: Path) -> None:
    path = tmp_path / "costs.yaml"
    path.write_text("items:\n  - item: x\n    category: gpu\n    month: 2026-13\n    amount: 1\n")
    with pytest.raises(
        FixedCostsInvalid, match=r"costs.yaml: 1 problem\(s\); first at items.0.month"
    ):
        load_fixed_costs(path)
    path.write_text("items: [")
    with pytest.raises(FixedCostsInvalid, match="not valid YAML"):
        load_fixed_costs(path)
    with pytest.raises(FixedCostsInvalid, match="cannot read it"):
        load_fixed_costs(tmp_path / "missing.yaml")


def test_the_shipped_declaration_loads() -> None:
    declaration, source = load_fixed_costs(ROOT / "pricing" / "fixed-costs" / "2026-11.yaml")
    assert [i.item for i in declaration.items] == [
        "staging-capacity", "eval-gpu-hours", "prompt-engineering",
    ]  # fmt: skip
    assert source.startswith("2026-11.yaml sha256:")


def test_loads_replace_each_other_and_refuse_another_currency(chdb_client: Any) -> None:
    migrate(chdb_client)
    one = FixedCosts.model_validate({"items": [BASE, {**BASE, "item": "y"}]})
    first = fixed_costs.load(chdb_client, one, "one")
    second = fixed_costs.load(chdb_client, FixedCosts.model_validate({"items": [BASE]}), "two")
    assert second > first  # ordered even within one millisecond
    current = chdb_client.query("SELECT item, source FROM v_fixed_costs").result_rows
    assert current == [("x", "two")]
    assert chdb_client.query("SELECT count() FROM fixed_costs").result_rows[0][0] == 3
    chdb_client.command(
        "INSERT INTO calls (event_id, task_id, ts, currency) VALUES ('c', 't', now64(3), 'EUR')"
    )
    with pytest.raises(FixedCostsInvalid, match="calls are billed in EUR"):
        fixed_costs.load(chdb_client, one, "three")
