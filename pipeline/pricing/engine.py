"""The pricing engine: exact Decimal arithmetic, lookups compiled once per book.

Costs are kept exact (token count x rate / 1e6 has at most 6 more fractional
digits than the rate); sums stay exact in a 50-digit context, so the order in
which calls are added never changes a task's total.
"""

from __future__ import annotations

import bisect
import fnmatch
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal

from pipeline.errors import PriceBookInvalid, PriceNotFound
from pipeline.events.models import CallEvent
from pipeline.pricing.book import PriceBook, PriceEntry, Rates

MONEY = Context(prec=50)
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
    total: Decimal
    currency: str
    price_book_version: str
    entry_model: str
    entry_effective_from: datetime


@dataclass(frozen=True, slots=True)
class RateSet:
    """Fully resolved per-million-token rates for one (service tier, context tier)."""

    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    cache_write_1h: Decimal
    output: Decimal
    reasoning: Decimal


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
    assert input_rate is not None and output_rate is not None  # PriceEntry requires both
    cache_write = pick("cache_write_per_mtok")
    return RateSet(
        input=input_rate,
        cache_read=_or(pick("cache_read_per_mtok"), input_rate),
        cache_write=_or(cache_write, input_rate),
        cache_write_1h=_or(pick("cache_write_1h_per_mtok"), _or(cache_write, input_rate)),
        output=output_rate,
        reasoning=_or(pick("reasoning_per_mtok"), output_rate),
    )


def _or(value: Decimal | None, default: Decimal) -> Decimal:
    return default if value is None else value


def _scaled(rates: RateSet, multiplier: Decimal) -> RateSet:
    return RateSet(*(MONEY.multiply(getattr(rates, f), multiplier) for f in RateSet.__slots__))


@dataclass(frozen=True, slots=True)
class CompiledEntry:
    """An entry with every rate combination resolved once, at compile time."""

    entry: PriceEntry
    thresholds: list[int]
    # service tier -> rates for [standard context, tier 1, tier 2, ...]
    rates: dict[str, list[RateSet]]

    @classmethod
    def build(cls, entry: PriceEntry) -> CompiledEntry:
        thresholds = [t.above_prompt_tokens for t in entry.tiers]
        standard = [_resolve([entry])] + [_resolve([t, entry]) for t in entry.tiers]
        rates = {"standard": standard}
        for name, service in entry.service_tiers.items():
            if service.multiplier is not None:
                rates[name] = [_scaled(r, service.multiplier) for r in standard]
            else:
                # The service tier's own rates, then the standard rates of the same context.
                rates[name] = [_resolve([service, entry])] + [
                    _resolve([service, t, entry]) for t in entry.tiers
                ]
        return cls(entry, thresholds, rates)

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


def _per_mtok(tokens: int, rate: Decimal) -> Decimal:
    if tokens == 0:
        return _ZERO
    return MONEY.divide(MONEY.multiply(Decimal(tokens), rate), _MTOK)


def price_call(call: CallEvent, book: CompiledBook) -> CallCost:
    """Price one call with the prices in force at its event time.

    Raises :class:`PriceNotFound` when no entry covers the model at that time.
    """
    compiled = book.entry_for(call.provider, call.model, call.ts)
    usage = call.usage
    rates = compiled.rates_for(call.service_tier.value, usage.prompt_tokens)
    input_cost = _per_mtok(usage.input_tokens, rates.input)
    cache_read = _per_mtok(usage.cache_read_tokens, rates.cache_read)
    cache_write = MONEY.add(
        _per_mtok(usage.cache_write_tokens, rates.cache_write),
        _per_mtok(usage.cache_write_1h_tokens, rates.cache_write_1h),
    )
    output = _per_mtok(usage.output_tokens, rates.output)
    reasoning = _per_mtok(usage.reasoning_tokens, rates.reasoning)
    request = compiled.entry.per_request
    total = _ZERO
    for part in (input_cost, cache_read, cache_write, output, reasoning, request):
        total = MONEY.add(total, part)
    return CallCost(
        input=input_cost,
        cache_read=cache_read,
        cache_write=cache_write,
        output=output,
        reasoning=reasoning,
        request=request,
        total=total,
        currency=book.book.currency,
        price_book_version=book.label,
        entry_model=compiled.entry.model,
        entry_effective_from=compiled.entry.effective_from,
    )
