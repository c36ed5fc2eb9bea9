"""Price books: versioned, effective-dated, validated strictly.

A book is a directory of YAML files (or one file) with one header, a list of
entries and optionally overlays (negotiated prices per owner or environment) and
dated FX rates. Prices are Decimal strings with the unit in the field name; an
entry's prices apply from ``effective_from`` until the next entry for the same model.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.errors import PriceBookInvalid
from pipeline.events.models import UnitName

# A book keeps prices to 12 decimals (per million tokens: 1e-18 per token).
RATE_PLACES = Decimal("1e-12")
_PRICE = Annotated[Decimal, Field(ge=0, max_digits=30, decimal_places=12)]
# Entry fields that name the model and say since when and from where, not what it costs.
ENTRY_IDENTITY = frozenset(
    {"provider", "model", "aliases", "effective_from", "effective_from_assumed", "source"}
)


def prices_of(entry: dict[str, Any]) -> dict[str, Any]:
    """The fields of an entry's data that are prices (what a price change is judged on)."""
    return {k: v for k, v in entry.items() if k not in ENTRY_IDENTITY}


_MULTIPLIER = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=6)]
_CURRENCY = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
ServiceTierName = Literal["batch", "flex", "priority"]


def _aware_utc(value: Any) -> Any:
    """Dates mean midnight UTC; naive times are UTC."""
    if isinstance(value, str) and len(value) == 10:
        value = value + "T00:00:00+00:00"
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


class Rates(BaseModel):
    """Token rates in USD (the book's currency) per million tokens.

    ``None`` means "not set here": a long-context tier falls back to the entry's
    rate, reasoning to the output rate (every provider bills reasoning tokens as
    output). Cache and service-tier rates an entry leaves out come only from its
    provider's declared rule (:class:`ProviderRule`); without one, a call with such
    tokens is an error, never a guess.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_mtok: _PRICE | None = None
    output_per_mtok: _PRICE | None = None
    cache_read_per_mtok: _PRICE | None = None
    cache_write_per_mtok: _PRICE | None = None
    cache_write_1h_per_mtok: _PRICE | None = None
    reasoning_per_mtok: _PRICE | None = None
    input_audio_per_mtok: _PRICE | None = None
    cache_audio_read_per_mtok: _PRICE | None = None
    output_audio_per_mtok: _PRICE | None = None
    input_image_per_mtok: _PRICE | None = None
    output_image_per_mtok: _PRICE | None = None


class LongContextTier(Rates):
    """Above this many prompt tokens (input + cache read + cache writes), the whole
    request is billed at these rates, as providers do."""

    above_prompt_tokens: int = Field(gt=0)


class ServiceTierPrice(Rates):
    """batch / flex / priority: their own rates, or a multiplier of the standard ones.

    Own rates apply below the entry's first long-context threshold; above it, the
    service tier's own ``tiers`` (same thresholds as the entry's), else the
    multiplier (or the provider rule's) times the long-context standard rates.
    Classes the own rates leave out come from the multiplier or the provider rule.
    """

    multiplier: _MULTIPLIER | None = None
    tiers: tuple[LongContextTier, ...] = ()


_HOURS = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")]


class TimeWindow(BaseModel):
    """Hours of the day (UTC, ``HH:MM-HH:MM``, end exclusive; an end at or before the
    start runs past midnight, ``00:00-00:00`` is the whole day) on ISO weekdays
    (1 = Monday ... 7 = Sunday), judged by the call's event time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hours_utc: tuple[_HOURS, ...] = Field(min_length=1)
    weekdays: tuple[Annotated[int, Field(ge=1, le=7)], ...] = (1, 2, 3, 4, 5, 6, 7)

    @field_validator("hours_utc", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    def contains(self, at: datetime) -> bool:
        """Whether ``at`` (aware) falls in the window; a span past midnight belongs to
        the weekday it starts on."""
        at = at.astimezone(UTC)
        minute = at.hour * 60 + at.minute
        today, yesterday = at.isoweekday(), (at.isoweekday() - 2) % 7 + 1
        for span in self.hours_utc:
            start, end = (int(t[:2]) * 60 + int(t[3:]) for t in span.split("-"))
            if start < end:
                inside, day = start <= minute < end, today
            elif minute >= start:  # the part before midnight: today's weekday
                inside, day = True, today
            else:  # the part after midnight (if any) started yesterday
                inside, day = minute < end, yesterday
            if inside and day in self.weekdays:
                return True
        return False


class OffPeakPrice(Rates):
    """Time-of-day prices (DeepSeek's off-peak discount): in these windows the call is
    billed at these rates (classes not set keep the standard ones)."""

    windows: tuple[TimeWindow, ...] = Field(min_length=1)


class PriceEntry(Rates):
    """Prices for one (provider, model) from one instant on, until the next entry.

    Token rates are optional for models billed by other units (a search API per
    query, a self-hosted model per GPU-second); a call that has tokens of a class
    the entry does not price is an error, never free.
    """

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    effective_from: datetime
    # True when the source gave no date and this is the first price imported for the
    # model: assumed in force since effective_from (the beginning of time), not known.
    effective_from_assumed: bool = False
    # Where the price comes from: None for the book's own entries, else the imported
    # list and its version (``litellm 1.110.2``), set when an underlay is loaded.
    source: str | None = None
    # The currency the provider bills this model in; the book's when absent.
    currency: _CURRENCY | None = None
    per_request: _PRICE = Decimal(0)
    # Price per one unit, by unit name: {"gpu_second": "0.0011", "query": "0.005"}.
    per_unit: dict[UnitName, _PRICE] = Field(default_factory=dict)
    tiers: tuple[LongContextTier, ...] = ()
    service_tiers: dict[ServiceTierName, ServiceTierPrice] = Field(default_factory=dict)
    off_peak: OffPeakPrice | None = None

    _aware = field_validator("effective_from", mode="before")(_aware_utc)

    @field_validator("effective_from")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _prices_something(self) -> PriceEntry:
        if (
            self.input_per_mtok is None
            and self.output_per_mtok is None
            and not self.per_unit
            and not self.per_request
        ):
            raise ValueError(
                f"{self.provider}/{self.model}: an entry needs token rates "
                "(input_per_mtok, output_per_mtok), per_unit prices or per_request"
            )
        return self

    @field_validator("tiers")
    @classmethod
    def _ascending(cls, tiers: tuple[LongContextTier, ...]) -> tuple[LongContextTier, ...]:
        thresholds = [t.above_prompt_tokens for t in tiers]
        if thresholds != sorted(set(thresholds)):
            raise ValueError(f"tiers must have distinct, ascending thresholds: {thresholds}")
        return tiers

    @model_validator(mode="after")
    def _service_thresholds_exist(self) -> PriceEntry:
        own = {t.above_prompt_tokens for t in self.tiers}
        for name, service in self.service_tiers.items():
            extra = {t.above_prompt_tokens for t in service.tiers} - own
            if extra:
                raise ValueError(
                    f"{self.provider}/{self.model}: service tier {name!r} has long-context "
                    f"rates above {sorted(extra)} prompt tokens, a threshold the entry's "
                    f"own tiers do not have ({sorted(own)})"
                )
        return self


class ProviderRule(BaseModel):
    """How a provider bills what an entry leaves out, as the provider publishes it.

    Ratios are of the same call's input rate (in the same context tier); service-tier
    multipliers are of the standard rates in the same context tier; ``per_unit``
    prices apply to every model of the provider that does not price the unit itself.
    ``source`` says where the provider publishes the rule. A rule is never inferred:
    without one, what the entry does not price is an error on the call.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(min_length=1)
    source: str = Field(min_length=1)
    cache_read_per_input: _MULTIPLIER | None = None
    cache_write_per_input: _MULTIPLIER | None = None
    cache_write_1h_per_input: _MULTIPLIER | None = None
    service_tiers: dict[ServiceTierName, _MULTIPLIER] = Field(default_factory=dict)
    per_unit: dict[UnitName, _PRICE] = Field(default_factory=dict)


class OverlayMatch(BaseModel):
    """Which calls an overlay applies to; every field set must match (model: a pattern)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: str | None = None
    environment: str | None = None
    provider: str | None = None
    model: str | None = None


class PriceOverlay(Rates):
    """A negotiated discount or custom price on top of the base entries.

    Either ``multiplier`` (0.85 = 15 % off every dimension, including per-request
    and per-unit prices), or prices that replace the base entry's prices of the
    same name in every context and service tier. In force from ``effective_from``
    until ``effective_to`` (exclusive, open when absent). The first overlay in file
    order that matches a call and is in force at its event time applies.
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    match: OverlayMatch
    effective_from: datetime
    effective_to: datetime | None = None
    multiplier: _MULTIPLIER | None = None
    per_request: _PRICE | None = None
    per_unit: dict[UnitName, _PRICE] = Field(default_factory=dict)

    _aware = field_validator("effective_from", "effective_to", mode="before")(_aware_utc)

    @field_validator("effective_from", "effective_to")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    @model_validator(mode="after")
    def _one_kind(self) -> PriceOverlay:
        prices = [f for f in Rates.model_fields if getattr(self, f) is not None]
        if self.per_request is not None:
            prices.append("per_request")
        if self.per_unit:
            prices.append("per_unit")
        if (self.multiplier is None) == (not prices):
            raise ValueError(
                f"overlay {self.name!r}: set either multiplier or prices, not both or neither"
            )
        if self.effective_to is not None and self.effective_to <= self.effective_from:
            raise ValueError(f"overlay {self.name!r}: effective_to must be after effective_from")
        return self


class FxRate(BaseModel):
    """From ``effective_from`` on, one unit of ``currency`` is worth this many of the book's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: _CURRENCY
    effective_from: datetime
    rate_to_book_currency: Annotated[Decimal, Field(gt=0, max_digits=24, decimal_places=12)]

    _aware = field_validator("effective_from", mode="before")(_aware_utc)

    @field_validator("effective_from")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class PriceBook(BaseModel):
    """A named, versioned set of price entries, reported in one currency."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    version: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.+-]+$")
    currency: _CURRENCY = "USD"
    entries: tuple[PriceEntry, ...]
    overlays: tuple[PriceOverlay, ...] = ()
    fx_rates: tuple[FxRate, ...] = ()
    provider_rules: tuple[ProviderRule, ...] = ()
    # Imported price lists under the book's own entries (paths relative to the book
    # directory, e.g. ``community/litellm.json``): an entry of an underlay prices a
    # model only when the book's own entries neither list it nor alias it.
    underlays: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> PriceBook:
        names = [o.name for o in self.overlays]
        if len(names) != len(set(names)):
            raise ValueError(f"overlay names must be unique: {sorted(names)}")
        providers = [r.provider for r in self.provider_rules]
        if len(providers) != len(set(providers)):
            raise ValueError(f"one provider rule per provider: {sorted(providers)}")
        return self

    @property
    def label(self) -> str:
        """What every priced row records: ``name@version``."""
        return f"{self.name}@{self.version}"


# Keys a book directory's files may contribute to; book.yaml holds the header.
_LISTS = ("entries", "overlays", "fx_rates", "provider_rules")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PriceBookInvalid(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PriceBookInvalid(f"{path}: expected a mapping at the top level")
    return data


class Underlay(BaseModel):
    """An imported price list kept under a book (``pricing update`` writes it).

    ``entries`` hold book entries as data (validated once, with the book).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1)
    source_version: str = Field(min_length=1)
    entries: list[dict[str, Any]]

    @property
    def label(self) -> str:
        return f"{self.source} {self.source_version}"


def read_underlay(path: Path) -> Underlay:
    """Read an underlay file (JSON). Raises PriceBookInvalid if it is not one."""
    try:
        return Underlay.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        raise PriceBookInvalid(f"{path}: not a readable price-list underlay: {exc}") from None


class _Listed:
    """The (provider, model) ids and alias patterns of the entries seen so far."""

    def __init__(self) -> None:
        self.exact: set[tuple[str, str]] = set()
        self.patterns: dict[str, list[str]] = {}
        self._compiled: dict[str, re.Pattern[str]] = {}

    def add(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            provider = str(entry.get("provider"))
            self.exact.add((provider, str(entry.get("model"))))
            for alias in entry.get("aliases") or ():
                if any(ch in alias for ch in "*?["):
                    self.patterns.setdefault(provider, []).append(fnmatch.translate(alias))
                else:
                    self.exact.add((provider, alias))
        self._compiled = {p: re.compile("|".join(ps)) for p, ps in self.patterns.items()}

    def __contains__(self, key: tuple[str, str]) -> bool:
        if key in self.exact:
            return True
        pattern = self._compiled.get(key[0])
        return pattern is not None and pattern.match(key[1]) is not None


def _with_underlays(directory: Path, data: dict[str, Any]) -> dict[str, Any]:
    """The book's own entries, then each underlay's for the models none before it
    lists or aliases (the first source that prices a model wins)."""
    merged = list(data.get("entries") or [])
    listed = _Listed()
    listed.add(merged)
    for relative in data.get("underlays") or ():
        underlay = read_underlay(directory / relative)
        kept = [
            {"source": underlay.label, **entry}  # an entry's own source (its import) wins
            for entry in underlay.entries
            if (str(entry.get("provider")), str(entry.get("model"))) not in listed
        ]
        listed.add(kept)
        merged += kept
    return {**data, "entries": merged}


def load_price_book(path: Path) -> PriceBook:
    """Load a book from a YAML file, or from a directory of them (one header, many entries).

    In a directory, ``book.yaml`` holds name, version and currency; every other
    ``*.yaml`` holds ``entries:`` (typically one file per provider), ``overlays``,
    ``fx_rates`` or ``provider_rules``; ``underlays`` in the header name imported lists
    kept under the book's own entries. Raises PriceBookInvalid with the first problem.
    """
    path = Path(path)
    if not path.exists():
        raise PriceBookInvalid(f"price book {path} does not exist; pass --book DIR")
    if path.is_dir():
        header_path = path / "book.yaml"
        if not header_path.exists():
            raise PriceBookInvalid(f"{path}: a price book directory needs book.yaml")
        data = _read_yaml(header_path)
        lists = {key: list(data.pop(key, []) or []) for key in _LISTS}
        for part in sorted(path.glob("*.yaml")):
            if part.name == "book.yaml" or part.name.endswith(".schema.yaml"):
                continue
            part_data = _read_yaml(part)
            unknown = set(part_data) - set(_LISTS)
            if unknown:
                raise PriceBookInvalid(
                    f"{part}: only {', '.join(_LISTS)} are allowed here, found {sorted(unknown)}"
                )
            for key in _LISTS:
                lists[key].extend(part_data.get(key) or [])
        data.update(lists)
        data = _with_underlays(path, data)
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
