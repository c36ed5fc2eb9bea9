"""Price books: versioned, effective-dated, validated strictly.

A book is a directory of YAML files (or one file) with one header and a list of
entries. Prices are Decimal strings with the unit in the field name; an entry's
prices apply from ``effective_from`` until the next entry for the same model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import PriceBookInvalid

_PRICE = Annotated[Decimal, Field(ge=0, max_digits=30, decimal_places=12)]


class Rates(BaseModel):
    """Token rates in USD (the book's currency) per million tokens.

    ``None`` means "not set here": a tier or service tier falls back to the rate
    it refines, cache rates fall back to the input rate, reasoning to output.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_mtok: _PRICE | None = None
    output_per_mtok: _PRICE | None = None
    cache_read_per_mtok: _PRICE | None = None
    cache_write_per_mtok: _PRICE | None = None
    cache_write_1h_per_mtok: _PRICE | None = None
    reasoning_per_mtok: _PRICE | None = None


class LongContextTier(Rates):
    """Above this many prompt tokens (input + cache read + cache writes), the whole
    request is billed at these rates, as providers do."""

    above_prompt_tokens: int = Field(gt=0)


class ServiceTierPrice(Rates):
    """batch / flex / priority: their own rates, or a multiplier of the standard ones."""

    multiplier: Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=6)] | None = None


class PriceEntry(Rates):
    """Prices for one (provider, model) from one instant on, until the next entry."""

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    effective_from: datetime
    input_per_mtok: _PRICE
    output_per_mtok: _PRICE
    per_request: _PRICE = Decimal(0)
    tiers: tuple[LongContextTier, ...] = ()
    service_tiers: dict[Literal["batch", "flex", "priority"], ServiceTierPrice] = Field(
        default_factory=dict
    )

    @field_validator("effective_from", mode="before")
    @classmethod
    def _aware(cls, value: Any) -> Any:
        if isinstance(value, str) and len(value) == 10:
            value = value + "T00:00:00+00:00"
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    @field_validator("effective_from")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @field_validator("tiers")
    @classmethod
    def _ascending(cls, tiers: tuple[LongContextTier, ...]) -> tuple[LongContextTier, ...]:
        thresholds = [t.above_prompt_tokens for t in tiers]
        if thresholds != sorted(set(thresholds)):
            raise ValueError(f"tiers must have distinct, ascending thresholds: {thresholds}")
        return tiers


class PriceBook(BaseModel):
    """A named, versioned set of price entries in one currency."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    version: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.+-]+$")
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    entries: tuple[PriceEntry, ...]

    @property
    def label(self) -> str:
        """What every priced row records: ``name@version``."""
        return f"{self.name}@{self.version}"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PriceBookInvalid(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PriceBookInvalid(f"{path}: expected a mapping at the top level")
    return data


def load_price_book(path: Path) -> PriceBook:
    """Load a book from a YAML file, or from a directory of them (one header, many entries).

    In a directory, ``book.yaml`` holds name, version and currency; every other
    ``*.yaml`` holds ``entries:`` (typically one file per provider).
    """
    path = Path(path)
    if not path.exists():
        raise PriceBookInvalid(f"price book {path} does not exist; pass --book DIR")
    if path.is_dir():
        header_path = path / "book.yaml"
        if not header_path.exists():
            raise PriceBookInvalid(f"{path}: a price book directory needs book.yaml")
        data = _read_yaml(header_path)
        entries = list(data.pop("entries", []) or [])
        for part in sorted(path.glob("*.yaml")):
            if part.name == "book.yaml" or part.name.endswith(".schema.yaml"):
                continue
            part_data = _read_yaml(part)
            unknown = set(part_data) - {"entries"}
            if unknown:
                raise PriceBookInvalid(f"{part}: only 'entries' is allowed here, found {unknown}")
            entries.extend(part_data.get("entries") or [])
        data["entries"] = entries
    else:
        data = _read_yaml(path)
    try:
        return PriceBook.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PriceBookInvalid(
            f"{path}: {exc.error_count()} problem(s); first at {where}: {first['msg']}"
        ) from None
