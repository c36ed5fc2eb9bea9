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

from pipeline.errors import (
    FxRateNotFound,
    PriceBookInvalid,
    PriceNotFound,
    ServiceTierNotPriced,
    UnitNotPriced,
)
from pipeline.events.lean import AnyCall
from pipeline.pricing.book import (
    PriceBook,
    PriceEntry,
    PriceOverlay,
    ProviderRule,
    Rates,
    TimeWindow,
)
from pipeline.pricing.names import candidates, canonical_provider

MONEY = Context(prec=50)
QUANTUM = Decimal("1e-18")
_MTOK = Decimal(1_000_000)
_ZERO = Decimal(0)


@dataclass(slots=True)
class CallCost:
    """Cost of one call per billing dimension, in the book's currency.

    Treat it as immutable. It is not declared frozen because a frozen dataclass
    builds itself with one ``object.__setattr__`` per field: about 2 µs more per
    priced call on stage 1's path (19 fields)."""

    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal
    # Audio input, cached audio input and audio output; image input and output.
    audio: Decimal
    image: Decimal
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
    input_audio: Decimal | None
    cache_audio_read: Decimal | None
    output_audio: Decimal | None
    input_image: Decimal | None
    output_image: Decimal | None


_CLASSES = (
    "input", "cache_read", "cache_write", "cache_write_1h", "output", "reasoning",
    "input_audio", "cache_audio_read", "output_audio", "input_image", "output_image",
)  # fmt: skip
_NO_RULE = ProviderRule(provider="*", source="none: nothing the entry leaves out is priced")


def _pick(layers: list[Rates | None], name: str) -> Decimal | None:
    """The first layer that sets ``name``."""
    for layer in layers:
        if layer is not None:
            value = getattr(layer, f"{name}_per_mtok")
            if value is not None:
                return value  # type: ignore[no-any-return]
    return None


def _times(value: Decimal | None, multiplier: Decimal | None) -> Decimal | None:
    if value is None or multiplier is None:
        return None
    return MONEY.multiply(value, multiplier)


def _completed(found: dict[str, Decimal | None], rule: ProviderRule) -> RateSet:
    """Cache classes still unset from the rule's ratios to the same input rate;
    reasoning, unset, at the output rate."""
    given = found["input"]
    for name, ratio in (
        ("cache_read", rule.cache_read_per_input),
        ("cache_write", rule.cache_write_per_input),
        ("cache_write_1h", rule.cache_write_1h_per_input),
    ):
        found[name] = _or(found[name], _times(given, ratio))
    found["reasoning"] = _or(found["reasoning"], found["output"])
    return RateSet(**found)


def _resolve(layers: list[Rates | None], rule: ProviderRule) -> RateSet:
    """Standard rates: the first layer that sets a class wins; a cache class none sets
    comes from the provider rule's ratio to the input rate, or stays unpriced;
    reasoning is billed as output unless priced on its own."""
    found = {name: _pick(layers, name) for name in _CLASSES}
    return _completed(found, rule)


def _service_rates(
    own: list[Rates | None], multiplier: Decimal | None, standard: RateSet, rule: ProviderRule
) -> RateSet:
    """One service tier in one context tier: its own rates (``own``: an overlay's
    prices, then the tier's own for this context), else ``multiplier`` times the
    standard rate of the same context; a cache class still missing comes from the
    rule's ratio to the tier's input rate; reasoning from the tier's output rate."""
    found: dict[str, Decimal | None] = {}
    for name in _CLASSES:
        found[name] = _or(_pick(own, name), _times(getattr(standard, name), multiplier))
    return _completed(found, rule)


def _sets_rates(layer: Rates) -> bool:
    return any(getattr(layer, f"{name}_per_mtok") is not None for name in _CLASSES)


def _or(value: Decimal | None, default: Decimal | None) -> Decimal | None:
    return default if value is None else value


def _scaled(rates: RateSet, multiplier: Decimal) -> RateSet:
    return RateSet(*(_times(getattr(rates, f), multiplier) for f in RateSet.__slots__))


def _beyond_list_precision(values: list[Decimal | None]) -> bool:
    """True if a rate has more than 12 decimals (then costs can have more than 18)."""
    for value in values:
        if value is not None:
            exponent = value.as_tuple().exponent
            if isinstance(exponent, int) and exponent < -12:
                return True
    return False


@dataclass(frozen=True, slots=True)
class CompiledEntry:
    """An entry with every (service tier x context tier) rate combination resolved
    once, at compile time, with its provider's rule applied."""

    entry: PriceEntry
    thresholds: list[int]
    # service tier -> rates for [standard context, tier 1, tier 2, ...]; a service
    # tier absent here is not priced (neither the entry nor the rule prices it).
    rates: dict[str, list[RateSet]]
    per_request: Decimal
    per_unit: dict[str, Decimal]
    overlay: str = ""
    # Service tiers whose rates have more than 12 decimals (a multiplier or a rule
    # ratio added digits): only their costs can need rounding to 18 decimals.
    rounds: frozenset[str] = frozenset()
    # Time-of-day prices: the standard tier's rates inside the entry's windows.
    off_peak: list[RateSet] | None = None
    off_peak_windows: tuple[TimeWindow, ...] = ()

    @classmethod
    def build(
        cls,
        entry: PriceEntry,
        overlay: PriceOverlay | None = None,
        rule: ProviderRule | None = None,
    ) -> CompiledEntry:
        rule = rule or _NO_RULE
        # An overlay with prices is the top layer everywhere: a negotiated price
        # replaces the list price in every context and service tier.
        top: Rates | None = overlay if overlay is not None and overlay.multiplier is None else None
        thresholds = [t.above_prompt_tokens for t in entry.tiers]
        standard = [_resolve([top, entry], rule)] + [
            _resolve([top, t, entry], rule) for t in entry.tiers
        ]
        rates = {"standard": standard}
        for name in ("batch", "flex", "priority"):
            service = entry.service_tiers.get(name)  # type: ignore[call-overload]
            multiplier = service.multiplier if service and service.multiplier else None
            multiplier = multiplier or rule.service_tiers.get(name)  # type: ignore[call-overload]
            if service is None and multiplier is None:
                continue
            own_tiers = {t.above_prompt_tokens: t for t in service.tiers} if service else {}
            # A negotiated price replaces the tier's own list prices; a tier priced
            # as a multiple of standard takes the multiple of the negotiated price.
            over = top if service is not None and _sets_rates(service) else None
            rates[name] = [_service_rates([over, service], multiplier, standard[0], rule)] + [
                _service_rates([over, own_tiers.get(threshold)], multiplier, standard[i + 1], rule)
                for i, threshold in enumerate(thresholds)
            ]
        if entry.off_peak is not None:
            peak = entry.off_peak
            rates["off_peak"] = [_resolve([top, peak, entry], rule)] + [
                _resolve([top, peak, t, entry], rule) for t in entry.tiers
            ]
        per_request = entry.per_request
        per_unit = {**rule.per_unit, **entry.per_unit}
        if overlay is not None and overlay.multiplier is not None:
            m = overlay.multiplier
            rates = {k: [_scaled(r, m) for r in v] for k, v in rates.items()}
            per_request = MONEY.multiply(per_request, m)
            per_unit = {u: MONEY.multiply(p, m) for u, p in per_unit.items()}
        elif overlay is not None:
            if overlay.per_request is not None:
                per_request = overlay.per_request
            per_unit.update(overlay.per_unit)
        rounds = {
            name
            for name, table in rates.items()
            if _beyond_list_precision(
                [getattr(r, f) for r in table for f in RateSet.__slots__] + [per_request]
            )
        }
        overlay_name = overlay.name if overlay else ""
        off_peak = rates.pop("off_peak", None)
        windows = entry.off_peak.windows if entry.off_peak is not None else ()
        return cls(
            entry, thresholds, rates, per_request, per_unit, overlay_name, frozenset(rounds),
            off_peak, windows,
        )  # fmt: skip

    def rates_for(self, service_tier: str, prompt_tokens: int, at: datetime) -> RateSet:
        """Rates for the call's service tier, prompt size and event time (``at``, for
        time-of-day prices). Raises ServiceTierNotPriced for a service tier neither
        the entry nor its provider's rule prices (or, inside an off-peak window, one
        the off-peak prices do not cover)."""
        # "Exceeds the threshold": exactly at the threshold is still the lower tier.
        context = bisect.bisect_left(self.thresholds, prompt_tokens)
        if self.off_peak is not None and any(w.contains(at) for w in self.off_peak_windows):
            if service_tier != "standard":
                raise ServiceTierNotPriced(self.entry.provider, self.entry.model, service_tier)
            return self.off_peak[context]
        table = self.rates.get(service_tier)
        if table is None:
            raise ServiceTierNotPriced(self.entry.provider, self.entry.model, service_tier)
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
        self._label = book.label
        # Entries and rules are keyed by costflow's provider names (names.py), so an
        # entry written as ``gemini`` prices calls sent as ``google`` and vice versa.
        grouped: dict[tuple[str, str], list[PriceEntry]] = {}
        for entry in book.entries:
            grouped.setdefault((canonical_provider(entry.provider), entry.model), []).append(entry)
        self.rules = {canonical_provider(rule.provider): rule for rule in book.provider_rules}
        self._timelines: dict[tuple[str, str], _Timeline] = {}
        for key, entries in grouped.items():
            entries.sort(key=lambda e: e.effective_from)
            starts = [e.effective_from for e in entries]
            if len(set(starts)) != len(starts):
                raise PriceBookInvalid(
                    f"{key[0]}/{key[1]} has two entries with the same effective_from"
                )
            rule = self.rules.get(key[0])  # key[0] is canonical
            self._timelines[key] = _Timeline(
                starts, [CompiledEntry.build(e, rule=rule) for e in entries]
            )
        self._exact_aliases: dict[tuple[str, str], tuple[str, str]] = {}
        self._patterns: list[tuple[str, str, tuple[str, str]]] = []
        for entry in book.entries:
            provider = canonical_provider(entry.provider)
            for alias in entry.aliases:
                target = (provider, entry.model)
                if any(ch in alias for ch in "*?["):
                    self._patterns.append((provider, alias, target))
                else:
                    self._exact_aliases[(provider, alias)] = target
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
        """The book's ``name@version`` (computed once: every priced call records it)."""
        return self._label

    def _resolve(self, provider: str, model: str) -> tuple[str, str] | None:
        """The book's (provider, model) for a call's: as sent, then as normalised
        (:mod:`pipeline.pricing.names`); each by id, exact alias, alias pattern."""
        key = (provider, model)
        if key in self._resolved:
            return self._resolved[key]
        target = self._lookup(provider, model)
        if target is None:
            for candidate in candidates(provider, model):
                target = self._lookup(*candidate)
                if target is not None:
                    break
        # Memoised, bounded by the number of distinct model ids seen.
        if len(self._resolved) < 100_000:
            self._resolved[key] = target
        return target

    def _lookup(self, provider: str, model: str) -> tuple[str, str] | None:
        key = (provider, model)
        if key in self._timelines:
            return key
        if key in self._exact_aliases:
            return self._exact_aliases[key]
        for pattern_provider, pattern, candidate in self._patterns:
            if pattern_provider == provider and fnmatch.fnmatchcase(model, pattern):
                return candidate
        return None

    def entry_for(self, provider: str, model: str, at: datetime) -> CompiledEntry:
        target = self._resolve(provider, model)
        entry = self._timelines[target].at(at) if target else None
        if entry is None:
            raise PriceNotFound(provider, model, at.isoformat())
        return entry

    def history(self, provider: str, model: str) -> list[PriceEntry]:
        """Every entry for the model a call's (provider, model) resolves to, oldest
        first; empty if the book does not price it."""
        target = self._resolve(provider, model)
        return [c.entry for c in self._timelines[target].entries] if target else []

    def priced_entry(self, call: AnyCall) -> CompiledEntry:
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
                    rule = self.rules.get(canonical_provider(compiled.entry.provider))
                    found = CompiledEntry.build(compiled.entry, overlay, rule)
                    self._with_overlay[key] = found
                return found
        return compiled

    def _candidates(self, call: AnyCall, entry_model: str) -> tuple[PriceOverlay, ...]:
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


def _matches(overlay: PriceOverlay, call: AnyCall, entry_model: str) -> bool:
    match = overlay.match
    if match.owner is not None and match.owner != call.owner:
        return False
    if match.environment is not None and match.environment != call.environment:
        return False
    if match.provider is not None and canonical_provider(match.provider) != canonical_provider(
        call.provider
    ):
        return False
    return match.model is None or (
        fnmatch.fnmatchcase(call.model, match.model)
        or fnmatch.fnmatchcase(entry_model, match.model)
    )


def _per_mtok(
    tokens: int,
    rate: Decimal | None,
    call: AnyCall,
    token_class: str,
    missing: list[str] | None = None,
) -> Decimal:
    """Cost of ``tokens`` at ``rate`` per million. A class without a rate raises
    UnitNotPriced, or, when collecting (``missing`` given), is noted there and costs 0."""
    if tokens == 0:
        return _ZERO
    if rate is None:
        if missing is None:
            raise UnitNotPriced(call.provider, call.model, token_class)
        missing.append(token_class)
        return _ZERO
    return MONEY.divide(MONEY.multiply(Decimal(tokens), rate), _MTOK)


def _round(value: Decimal) -> Decimal:
    # Only values with more than 18 decimals change; exact ones keep their digits.
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -18:
        return value.quantize(QUANTUM, rounding=ROUND_HALF_EVEN, context=MONEY)
    return value


def price_call(call: AnyCall, book: CompiledBook) -> CallCost:
    """Price one call with the prices in force at its event time.

    Raises :class:`PriceNotFound` when no entry covers the model at that time,
    :class:`ServiceTierNotPriced` for a service tier neither the entry nor its
    provider's rule prices, :class:`FxRateNotFound` when a conversion has no rate in
    force, and :class:`UnitNotPriced` when the call consumed token classes or units
    the entry does not price. That last error is a partial price, not a loss: its
    ``dimensions`` name everything unpriced and its ``known`` is the CallCost of the
    rest (unpriced dimensions at 0; ``known.total`` is a lower bound of the cost).
    """
    compiled = book.priced_entry(call)
    usage = call.usage
    rates = compiled.rates_for(call.service_tier.value, usage.prompt_tokens, call.ts)
    try:
        return _priced(call, book, compiled, rates)
    except UnitNotPriced:
        # Off the hot path: price again, collecting every dimension without a price.
        missing: list[str] = []
        known = _priced(call, book, compiled, rates, missing)
        within = _within(compiled, call) if any(m.endswith("_tokens") for m in missing) else ""
        raise UnitNotPriced(
            call.provider, call.model, ", ".join(missing), within, known, tuple(missing)
        ) from None


def _media_cost(
    call: AnyCall, rates: RateSet, missing: list[str] | None
) -> tuple[Decimal, Decimal]:
    """(audio, image) cost of a call's audio and image tokens."""
    usage = call.usage
    audio = _ZERO
    for tokens, rate, name in (
        (usage.input_audio_tokens, rates.input_audio, "input_audio_tokens"),
        (usage.cache_audio_read_tokens, rates.cache_audio_read, "cache_audio_read_tokens"),
        (usage.output_audio_tokens, rates.output_audio, "output_audio_tokens"),
    ):
        if tokens:
            audio = MONEY.add(audio, _per_mtok(tokens, rate, call, name, missing))
    image = _ZERO
    for tokens, rate, name in (
        (usage.input_image_tokens, rates.input_image, "input_image_tokens"),
        (usage.output_image_tokens, rates.output_image, "output_image_tokens"),
    ):
        if tokens:
            image = MONEY.add(image, _per_mtok(tokens, rate, call, name, missing))
    return audio, image


def _within(compiled: CompiledEntry, call: AnyCall) -> str:
    """Which rates were missing the class: the service tier and the context tier."""
    parts = []
    if call.service_tier.value != "standard":
        parts.append(f"on the {call.service_tier.value!r} service tier")
    above = [t for t in compiled.thresholds if call.usage.prompt_tokens > t]
    if above:
        parts.append(f"above {above[-1]:,} prompt tokens")
    return " ".join(parts)


def _priced(
    call: AnyCall,
    book: CompiledBook,
    compiled: CompiledEntry,
    rates: RateSet,
    missing: list[str] | None = None,
) -> CallCost:
    """The call's cost. A dimension without a price raises UnitNotPriced, unless
    ``missing`` is given: then it is noted there and costs 0 (a partial price)."""
    usage = call.usage
    m = missing
    # Classes without tokens cost 0 whatever their rate: no call for them (most calls
    # use two or three of the eleven classes).
    input_cost = cache_read = cache_write = output = reasoning = _ZERO
    if usage.input_tokens:
        input_cost = _per_mtok(usage.input_tokens, rates.input, call, "input_tokens", m)
    if usage.cache_read_tokens:
        cache_read = _per_mtok(
            usage.cache_read_tokens, rates.cache_read, call, "cache_read_tokens", m
        )
    if usage.cache_write_tokens or usage.cache_write_1h_tokens:
        cache_write = MONEY.add(
            _per_mtok(usage.cache_write_tokens, rates.cache_write, call, "cache_write_tokens", m),
            _per_mtok(
                usage.cache_write_1h_tokens, rates.cache_write_1h, call, "cache_write_1h_tokens", m
            ),
        )
    if usage.output_tokens:
        output = _per_mtok(usage.output_tokens, rates.output, call, "output_tokens", m)
    if usage.reasoning_tokens:
        reasoning = _per_mtok(usage.reasoning_tokens, rates.reasoning, call, "reasoning_tokens", m)
    audio = image = _ZERO
    # Most calls have no audio or image tokens: one test instead of five lookups each.
    if (
        usage.input_audio_tokens
        or usage.cache_audio_read_tokens
        or usage.output_audio_tokens
        or usage.input_image_tokens
        or usage.output_image_tokens
    ):
        audio, image = _media_cost(call, rates, m)
    units = _ZERO
    for unit, quantity in call.units.items():
        price = compiled.per_unit.get(unit)
        if price is None:
            if m is None:
                raise UnitNotPriced(call.provider, call.model, unit)
            m.append(unit)
            continue
        units = MONEY.add(units, MONEY.multiply(quantity, price))
    # A token class without an input rate has no uncached baseline: its own rate is it.
    read_rate = rates.input if rates.input is not None else rates.cache_read
    # A baseline is not billed: a class without any rate has none (0), noted once.
    read_uncached = (
        _per_mtok(usage.cache_read_tokens, read_rate, call, "cache_read_tokens")
        if read_rate is not None and usage.cache_read_tokens
        else _ZERO
    )
    written = usage.cache_write_tokens + usage.cache_write_1h_tokens
    write_uncached = (
        (_per_mtok(written, rates.input, call, "cache_write_tokens") if written else _ZERO)
        if rates.input is not None
        else cache_write
    )
    request = compiled.per_request
    list_currency = compiled.entry.currency or book.book.currency
    fx: Decimal | None = None
    # List prices have at most 12 decimals, so token costs have at most 18 unless a
    # multiplier, a rule ratio or an FX rate added digits; unit quantities have up
    # to 9 decimals of their own. Only then is there anything to round.
    if list_currency != book.book.currency or call.units or compiled.rounds or compiled.off_peak:
        parts = [
            input_cost, cache_read, cache_write, output, reasoning, audio, image, request, units,
            read_uncached, write_uncached,
        ]  # fmt: skip
        if list_currency != book.book.currency:
            fx = book.fx_rate(list_currency, call.ts)
            parts = [MONEY.multiply(part, fx) for part in parts]
        (
            input_cost, cache_read, cache_write, output, reasoning, audio, image, request, units,
            read_uncached, write_uncached,
        ) = (_round(part) for part in parts)  # fmt: skip
    total = MONEY.add(MONEY.add(MONEY.add(input_cost, cache_read), cache_write), output)
    total = MONEY.add(MONEY.add(MONEY.add(total, reasoning), audio), image)
    total = MONEY.add(MONEY.add(total, request), units)
    return CallCost(
        input=input_cost,
        cache_read=cache_read,
        cache_write=cache_write,
        output=output,
        reasoning=reasoning,
        audio=audio,
        image=image,
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
