"""The pricing engine: exact Decimal arithmetic, lookups compiled once per book.

Token count x rate / 1e6 has at most 6 more fractional digits than the rate, so
list prices (at most 12 decimals per million tokens) give costs with at most 18
decimals: exact. A multiplier (service tier, overlay) or an FX rate can add
digits; every dimension is then rounded half-even to 18 decimals (1e-18 of the
currency), the scale of the ClickHouse columns, and the total is the sum of the
rounded dimensions, so a row's parts always add up to its total. Sums stay exact
in a 50-digit context, so the order in which calls are added never changes a
task's total.
"""

from __future__ import annotations

import bisect
import fnmatch
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal

from pipeline.errors import FxRateNotFound, PriceBookInvalid, PriceNotFound, UnitNotPriced
from pipeline.events.models import CallEvent
from pipeline.pricing.book import PriceBook, PriceEntry, PriceOverlay, Rates

MONEY = Context(prec=50)
QUANTUM = Decimal("1e-18")
_MTOK = Decimal(1_000_000)
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class CallCost:
    """Cost of one call per billing dimension, in the book's currency."""

    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal
    request: Decimal
    units: Decimal
    total: Decimal
    # What the cache-read and cache-write tokens would have cost at the input rate
    # of the same call (same tier, overlay and FX): not billed, the baseline for
    # cache savings and the cache-write premium.
    cache_read_uncached: Decimal
    cache_write_uncached: Decimal
    # The book's (reporting) currency; list_currency is the entry's own.
    currency: str
    price_book_version: str
    entry_model: str
    entry_effective_from: datetime
    list_currency: str = ""
    # list_currency -> currency rate used; None when no conversion was needed.
    fx_rate: Decimal | None = None
    # Name of the overlay that applied; "" when the base prices did.
    overlay: str = ""


@dataclass(frozen=True, slots=True)
class RateSet:
    """Fully resolved per-million-token rates for one (service tier, context tier).

    ``None``: the entry does not price this token class at all.
    """

    input: Decimal | None
    cache_read: Decimal | None
    cache_write: Decimal | None
    cache_write_1h: Decimal | None
    output: Decimal | None
    reasoning: Decimal | None


def _resolve(layers: list[Rates]) -> RateSet:
    """First layer that sets a field wins; then the documented fallbacks."""

    def pick(name: str) -> Decimal | None:
        for layer in layers:
            value = getattr(layer, name)
            if value is not None:
                return value  # type: ignore[no-any-return]
        return None

    input_rate = pick("input_per_mtok")
    output_rate = pick("output_per_mtok")
    cache_write = pick("cache_write_per_mtok")
    return RateSet(
        input=input_rate,
        cache_read=_or(pick("cache_read_per_mtok"), input_rate),
        cache_write=_or(cache_write, input_rate),
        cache_write_1h=_or(pick("cache_write_1h_per_mtok"), _or(cache_write, input_rate)),
        output=output_rate,
        reasoning=_or(pick("reasoning_per_mtok"), output_rate),
    )


def _or(value: Decimal | None, default: Decimal | None) -> Decimal | None:
    return default if value is None else value


def _times(value: Decimal | None, multiplier: Decimal) -> Decimal | None:
    return None if value is None else MONEY.multiply(value, multiplier)


def _scaled(rates: RateSet, multiplier: Decimal) -> RateSet:
    return RateSet(*(_times(getattr(rates, f), multiplier) for f in RateSet.__slots__))


@dataclass(frozen=True, slots=True)
class CompiledEntry:
    """An entry with every rate combination resolved once, at compile time."""

    entry: PriceEntry
    thresholds: list[int]
    # service tier -> rates for [standard context, tier 1, tier 2, ...]
    rates: dict[str, list[RateSet]]
    per_request: Decimal
    per_unit: dict[str, Decimal]
    overlay: str = ""
    # Service tiers whose prices went through a multiplier: only their costs can
    # have more than 18 decimals ("*" = all, an overlay's multiplier).
    scaled: frozenset[str] = frozenset()

    @classmethod
    def build(cls, entry: PriceEntry, overlay: PriceOverlay | None = None) -> CompiledEntry:
        # An overlay with prices is the top layer everywhere: a negotiated price
        # replaces the list price in every context and service tier.
        top: list[Rates] = [overlay] if overlay is not None and overlay.multiplier is None else []
        thresholds = [t.above_prompt_tokens for t in entry.tiers]
        standard = [_resolve([*top, entry])] + [_resolve([*top, t, entry]) for t in entry.tiers]
        rates = {"standard": standard}
        for name, service in entry.service_tiers.items():
            if service.multiplier is not None:
                rates[name] = [_scaled(r, service.multiplier) for r in standard]
            else:
                # The service tier's own rates, then the standard rates of the same context.
                rates[name] = [_resolve([*top, service, entry])] + [
                    _resolve([*top, service, t, entry]) for t in entry.tiers
                ]
        per_request = entry.per_request
        per_unit = dict(entry.per_unit)
        scaled: set[str] = {n for n, t in entry.service_tiers.items() if t.multiplier is not None}
        if overlay is not None and overlay.multiplier is not None:
            scaled.add("*")
            m = overlay.multiplier
            rates = {k: [_scaled(r, m) for r in v] for k, v in rates.items()}
            per_request = MONEY.multiply(per_request, m)
            per_unit = {u: MONEY.multiply(p, m) for u, p in per_unit.items()}
        elif overlay is not None:
            if overlay.per_request is not None:
                per_request = overlay.per_request
            per_unit.update(overlay.per_unit)
        overlay_name = overlay.name if overlay else ""
        return cls(entry, thresholds, rates, per_request, per_unit, overlay_name, frozenset(scaled))

    def may_round(self, service_tier: str) -> bool:
        return bool(self.scaled) and (service_tier in self.scaled or "*" in self.scaled)

    def rates_for(self, service_tier: str, prompt_tokens: int) -> RateSet:
        # "Exceeds the threshold": exactly at the threshold is still the lower tier.
        context = bisect.bisect_left(self.thresholds, prompt_tokens)
        table = self.rates.get(service_tier) or self.rates["standard"]
        return table[context]


@dataclass(frozen=True, slots=True)
class _Timeline:
    starts: list[datetime]
    entries: list[CompiledEntry]

    def at(self, ts: datetime) -> CompiledEntry | None:
        i = bisect.bisect_right(self.starts, ts) - 1
        return self.entries[i] if i >= 0 else None


class CompiledBook:
    """A book indexed for lookup: exact ids first, then alias patterns in file order."""

    def __init__(self, book: PriceBook) -> None:
        self.book = book
        grouped: dict[tuple[str, str], list[PriceEntry]] = {}
        for entry in book.entries:
            grouped.setdefault((entry.provider, entry.model), []).append(entry)
        self._timelines: dict[tuple[str, str], _Timeline] = {}
        for key, entries in grouped.items():
            entries.sort(key=lambda e: e.effective_from)
            starts = [e.effective_from for e in entries]
            if len(set(starts)) != len(starts):
                raise PriceBookInvalid(
                    f"{key[0]}/{key[1]} has two entries with the same effective_from"
                )
            self._timelines[key] = _Timeline(starts, [CompiledEntry.build(e) for e in entries])
        self._exact_aliases: dict[tuple[str, str], tuple[str, str]] = {}
        self._patterns: list[tuple[str, str, tuple[str, str]]] = []
        for entry in book.entries:
            for alias in entry.aliases:
                target = (entry.provider, entry.model)
                if any(ch in alias for ch in "*?["):
                    self._patterns.append((entry.provider, alias, target))
                else:
                    self._exact_aliases[(entry.provider, alias)] = target
        self._resolved: dict[tuple[str, str], tuple[str, str] | None] = {}
        self._fx: dict[str, tuple[list[datetime], list[Decimal]]] = {}
        for currency in sorted({r.currency for r in book.fx_rates}):
            rates = sorted(
                (r.effective_from, r.rate_to_book_currency)
                for r in book.fx_rates
                if r.currency == currency
            )
            if len({start for start, _ in rates}) != len(rates):
                raise PriceBookInvalid(f"FX rates for {currency} repeat an effective_from")
            self._fx[currency] = ([start for start, _ in rates], [rate for _, rate in rates])
        self._overlays = book.overlays
        # (owner, environment, provider, model) -> overlays whose match fits, in file order.
        self._overlay_candidates: dict[tuple[str, str, str, str], tuple[PriceOverlay, ...]] = {}
        self._with_overlay: dict[tuple[str, int], CompiledEntry] = {}

    @property
    def label(self) -> str:
        return self.book.label

    def _resolve(self, provider: str, model: str) -> tuple[str, str] | None:
        key = (provider, model)
        if key in self._resolved:
            return self._resolved[key]
        target: tuple[str, str] | None = None
        if key in self._timelines:
            target = key
        elif key in self._exact_aliases:
            target = self._exact_aliases[key]
        else:
            for pattern_provider, pattern, candidate in self._patterns:
                if pattern_provider == provider and fnmatch.fnmatchcase(model, pattern):
                    target = candidate
                    break
        # Memoised, bounded by the number of distinct model ids seen.
        if len(self._resolved) < 100_000:
            self._resolved[key] = target
        return target

    def entry_for(self, provider: str, model: str, at: datetime) -> CompiledEntry:
        target = self._resolve(provider, model)
        entry = self._timelines[target].at(at) if target else None
        if entry is None:
            raise PriceNotFound(provider, model, at.isoformat())
        return entry

    def priced_entry(self, call: CallEvent) -> CompiledEntry:
        """The entry in force for the call, with the overlay that applies to it, if any."""
        compiled = self.entry_for(call.provider, call.model, call.ts)
        if not self._overlays:
            return compiled
        for overlay in self._candidates(call, compiled.entry.model):
            if overlay.effective_from <= call.ts and (
                overlay.effective_to is None or call.ts < overlay.effective_to
            ):
                key = (overlay.name, id(compiled))
                found = self._with_overlay.get(key)
                if found is None:  # compiled once per (overlay, entry)
                    found = CompiledEntry.build(compiled.entry, overlay)
                    self._with_overlay[key] = found
                return found
        return compiled

    def _candidates(self, call: CallEvent, entry_model: str) -> tuple[PriceOverlay, ...]:
        key = (call.owner or "", call.environment or "", call.provider, call.model)
        found = self._overlay_candidates.get(key)
        if found is None:
            found = tuple(o for o in self._overlays if _matches(o, call, entry_model))
            if len(self._overlay_candidates) < 100_000:
                self._overlay_candidates[key] = found
        return found

    def fx_rate(self, currency: str, at: datetime) -> Decimal:
        timeline = self._fx.get(currency)
        i = bisect.bisect_right(timeline[0], at) - 1 if timeline else -1
        if timeline is None or i < 0:
            raise FxRateNotFound(currency, self.book.currency, at.isoformat())
        return timeline[1][i]


def _matches(overlay: PriceOverlay, call: CallEvent, entry_model: str) -> bool:
    match = overlay.match
    if match.owner is not None and match.owner != call.owner:
        return False
    if match.environment is not None and match.environment != call.environment:
        return False
    if match.provider is not None and match.provider != call.provider:
        return False
    return match.model is None or (
        fnmatch.fnmatchcase(call.model, match.model)
        or fnmatch.fnmatchcase(entry_model, match.model)
    )


def _per_mtok(tokens: int, rate: Decimal | None, call: CallEvent, token_class: str) -> Decimal:
    if tokens == 0:
        return _ZERO
    if rate is None:
        raise UnitNotPriced(call.provider, call.model, token_class)
    return MONEY.divide(MONEY.multiply(Decimal(tokens), rate), _MTOK)


def _round(value: Decimal) -> Decimal:
    # Only values with more than 18 decimals change; exact ones keep their digits.
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -18:
        return value.quantize(QUANTUM, rounding=ROUND_HALF_EVEN, context=MONEY)
    return value


def _same(value: Decimal) -> Decimal:
    return value


def price_call(call: CallEvent, book: CompiledBook) -> CallCost:
    """Price one call with the prices in force at its event time.

    Raises :class:`PriceNotFound` when no entry covers the model at that time,
    :class:`UnitNotPriced` when the call consumed something the entry does not
    price, :class:`FxRateNotFound` when a conversion has no rate in force.
    """
    compiled = book.priced_entry(call)
    usage = call.usage
    rates = compiled.rates_for(call.service_tier.value, usage.prompt_tokens)
    input_cost = _per_mtok(usage.input_tokens, rates.input, call, "input_tokens")
    cache_read = _per_mtok(usage.cache_read_tokens, rates.cache_read, call, "cache_read_tokens")
    cache_write = MONEY.add(
        _per_mtok(usage.cache_write_tokens, rates.cache_write, call, "cache_write_tokens"),
        _per_mtok(usage.cache_write_1h_tokens, rates.cache_write_1h, call, "cache_write_1h_tokens"),
    )
    output = _per_mtok(usage.output_tokens, rates.output, call, "output_tokens")
    reasoning = _per_mtok(usage.reasoning_tokens, rates.reasoning, call, "reasoning_tokens")
    units = _ZERO
    for unit, quantity in call.units.items():
        price = compiled.per_unit.get(unit)
        if price is None:
            raise UnitNotPriced(call.provider, call.model, unit)
        units = MONEY.add(units, MONEY.multiply(quantity, price))
    # A token class without an input rate has no uncached baseline: its own rate is it.
    read_rate = rates.input if rates.input is not None else rates.cache_read
    read_uncached = _per_mtok(usage.cache_read_tokens, read_rate, call, "cache_read_tokens")
    write_uncached = (
        _per_mtok(
            usage.cache_write_tokens + usage.cache_write_1h_tokens,
            rates.input,
            call,
            "cache_write_tokens",
        )
        if rates.input is not None
        else cache_write
    )
    parts = [
        input_cost, cache_read, cache_write, output, reasoning, compiled.per_request, units,
        read_uncached, write_uncached,
    ]  # fmt: skip
    list_currency = compiled.entry.currency or book.book.currency
    fx: Decimal | None = None
    if list_currency != book.book.currency:
        fx = book.fx_rate(list_currency, call.ts)
        parts = [MONEY.multiply(part, fx) for part in parts]
    # List prices have at most 12 decimals, so costs have at most 18 unless a
    # multiplier or an FX rate was applied: only then is there anything to round.
    rounded = _round if fx is not None or compiled.may_round(call.service_tier.value) else _same
    (
        input_cost, cache_read, cache_write, output, reasoning, request, units,
        read_uncached, write_uncached,
    ) = (rounded(part) for part in parts)  # fmt: skip
    total = _ZERO
    for part in (input_cost, cache_read, cache_write, output, reasoning, request, units):
        total = MONEY.add(total, part)
    return CallCost(
        input=input_cost,
        cache_read=cache_read,
        cache_write=cache_write,
        output=output,
        reasoning=reasoning,
        request=request,
        units=units,
        total=total,
        cache_read_uncached=read_uncached,
        cache_write_uncached=write_uncached,
        currency=book.book.currency,
        price_book_version=book.label,
        entry_model=compiled.entry.model,
        entry_effective_from=compiled.entry.effective_from,
        list_currency=list_currency,
        fx_rate=fx,
        overlay=compiled.overlay,
    )
