"""Fixed costs: what serves no single request, declared per period in YAML.

Staging and test capacity, eval runs, reserved throughput, self-hosted GPU
hours, engineering time: a scenario's full cost includes its share of these.
A declaration lists cost items, each with a period and an allocation rule; the
allocation itself runs in ClickHouse (``v_fixed_cost_allocation_daily``) so
that it follows late usage. This module only validates and normalises.

An item's amount is either ``amount`` or ``quantity * price_per_unit`` (GPU
hours, engineer hours), exact in Decimal; its period is a ``month`` or
``period_start`` / ``period_end`` (end exclusive, whole UTC days).
"""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import FixedCostsInvalid

_MONEY = Annotated[Decimal, Field(ge=0, max_digits=24, decimal_places=12)]
# quantity * price_per_unit then has at most 18 decimal places: stored exactly.
_QUANTITY = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6)]
# An item above this is a typo, and would not fit Decimal(38, 18) sums.
MAX_ITEM_AMOUNT = Decimal(10) ** 15
_WEIGHT = Annotated[Decimal, Field(gt=0, max_digits=20, decimal_places=12)]
_NAME = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][\w.:/@+-]*$")]
_CURRENCY = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
_MONTH = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
# Longer than any budgeting period; guards against a mistyped year.
MAX_PERIOD_DAYS = 400


class Category(StrEnum):
    staging = "staging"
    test = "test"
    eval = "eval"
    reserve = "reserve"
    gpu = "gpu"
    engineering = "engineering"
    other = "other"


class Rule(StrEnum):
    # By each scenario's variable (call) cost per day within the period.
    usage_share = "usage_share"
    # By declared weights, spread evenly over the days of the period.
    weights = "weights"


class FixedCostItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    item: _NAME
    category: Category
    month: _MONTH | None = None
    period_start: date | None = None
    period_end: date | None = None
    amount: _MONEY | None = None
    quantity: _QUANTITY | None = None
    quantity_unit: _NAME | None = None
    price_per_unit: _MONEY | None = None
    rule: Rule = Rule.usage_share
    scenarios: list[_NAME] = Field(default_factory=list)
    weights: dict[_NAME, _WEIGHT] = Field(default_factory=dict)
    note: str = Field(default="", max_length=1000)

    @model_validator(mode="after")
    def _consistent(self) -> FixedCostItem:
        if self.month is not None:
            if self.period_start is not None or self.period_end is not None:
                raise ValueError("give either month or period_start/period_end, not both")
        elif self.period_start is None or self.period_end is None:
            raise ValueError("give a month (YYYY-MM) or both period_start and period_end")
        start, end = self.period
        if not start < end:
            raise ValueError(
                f"period_end {end} must be after period_start {start} (end is exclusive)"
            )
        if (end - start).days > MAX_PERIOD_DAYS:
            raise ValueError(
                f"a period of {(end - start).days} days; split it (at most {MAX_PERIOD_DAYS})"
            )
        priced = (self.quantity, self.price_per_unit, self.quantity_unit)
        if self.amount is not None:
            if any(p is not None for p in priced):
                raise ValueError("give either amount or quantity/quantity_unit/price_per_unit")
        elif any(p is None for p in priced):
            raise ValueError("give amount, or quantity, quantity_unit and price_per_unit")
        if self.total > MAX_ITEM_AMOUNT:
            raise ValueError(f"{self.total} is above {MAX_ITEM_AMOUNT}; check the figures")
        if self.rule is Rule.weights:
            if not self.weights:
                raise ValueError("rule weights needs weights: {scenario: weight, ...}")
            if self.scenarios:
                raise ValueError("rule weights takes its scenarios from weights; drop scenarios")
        elif self.weights:
            raise ValueError("weights are only for rule: weights")
        return self

    @property
    def period(self) -> tuple[date, date]:
        if self.month is not None:
            year, month = (int(part) for part in self.month.split("-"))
            start = date(year, month, 1)
            return start, date(year + month // 12, month % 12 + 1, 1)
        assert self.period_start is not None and self.period_end is not None
        return self.period_start, self.period_end

    @property
    def total(self) -> Decimal:
        """The item's cost over its whole period (exact)."""
        if self.amount is not None:
            return self.amount
        assert self.quantity is not None and self.price_per_unit is not None
        return self.quantity * self.price_per_unit


class FixedCosts(BaseModel):
    """A declaration file: one currency, a list of items with unique names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: _CURRENCY = "USD"
    items: list[FixedCostItem] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_items(self) -> FixedCosts:
        names = [i.item for i in self.items]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"item names must be unique; repeated: {', '.join(repeated)}")
        return self


def load_fixed_costs(path: Path) -> tuple[FixedCosts, str]:
    """The declaration and its source label (file name and SHA-256 of its bytes)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FixedCostsInvalid(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise FixedCostsInvalid(f"{path}: not valid YAML: {exc}") from None
    try:
        declaration = FixedCosts.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "top level"
        raise FixedCostsInvalid(
            f"{path}: {exc.error_count()} problem(s); first at {where}: {first['msg']}"
        ) from None
    return declaration, f"{path.name} sha256:{hashlib.sha256(raw).hexdigest()}"
