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
from pipeline.pricing.book import PriceBook, PriceEntry

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
class _Timeline:
    starts: list[datetime]
    entries: list[PriceEntry]

    def at(self, ts: datetime) -> PriceEntry | None:
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
            self._timelines[key] = _Timeline(starts, entries)
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

    def entry_for(self, provider: str, model: str, at: datetime) -> PriceEntry:
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
    entry = book.entry_for(call.provider, call.model, call.ts)
    usage = call.usage
    input_cost = _per_mtok(usage.input_tokens, entry.input_per_mtok)
    cache_read = _per_mtok(
        usage.cache_read_tokens,
        entry.cache_read_per_mtok
        if entry.cache_read_per_mtok is not None
        else entry.input_per_mtok,
    )
    cache_write = _per_mtok(
        usage.cache_write_tokens,
        entry.cache_write_per_mtok
        if entry.cache_write_per_mtok is not None
        else entry.input_per_mtok,
    )
    output = _per_mtok(usage.output_tokens, entry.output_per_mtok)
    reasoning = _per_mtok(
        usage.reasoning_tokens,
        entry.reasoning_per_mtok if entry.reasoning_per_mtok is not None else entry.output_per_mtok,
    )
    request = entry.per_request
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
        entry_model=entry.model,
        entry_effective_from=entry.effective_from,
    )
