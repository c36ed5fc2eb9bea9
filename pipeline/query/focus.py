"""FinOps FOCUS export: one month of priced calls as FOCUS 1.2 or 1.3 rows, CSV or Parquet.

Rows come from ``v_focus_costs`` (sql/0018): one per hour, provider, model, service
tier, usage class (``SkuMeter``), tag set and unit price. Calls store their cost per
column after any negotiated overlay, not their list cost nor their unit prices, so the
export first resolves, from the price book that priced the month's calls, every rate
those calls could have had (entry in force, overlay in force, context tier, off-peak
window; with and without the overlay) into ``focus_rates``. The view prices each
call's quantities at those rates: ``ListCost`` before the overlay, ``ContractedCost``
and ``BilledCost`` after; then the export checks that the month's ``BilledCost`` adds
up to the stored cost of its calls (see :data:`ROUNDING_PER_CALL`) and that every
token is in a row, and only then writes the file.

The file is written by ClickHouse's own output formats (``CSVWithNames`` with ISO 8601
``...Z`` times and empty nulls; ``Parquet`` with decimal columns): money is never a
float on the way. Errors that a user can fix are :class:`FocusExportError`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import IO, TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ConfigDict

from pipeline.errors import FocusExportError, PriceNotFound
from pipeline.pricing.engine import CompiledBook, CompiledEntry, RateSet

if TYPE_CHECKING:
    from pipeline.events.lean import AnyCall
    from pipeline.pricing.book import TimeWindow

FocusFormat = Literal["csv", "parquet"]
FocusVersion = Literal["1.2", "1.3"]

# The 21 columns FOCUS 1.2 makes mandatory (Feature level "Mandatory").
MANDATORY_1_2 = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency",
    "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory", "ChargeClass",
    "ChargeDescription", "ChargePeriodEnd", "ChargePeriodStart", "ContractedCost",
    "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingQuantity", "PricingUnit",
    "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
)  # fmt: skip
# Conditional and recommended columns whose condition holds here (usage is measured,
# unit prices and negotiated prices exist, SKUs, tags, prices in another currency).
OPTIONAL_1_2 = (
    "ChargeFrequency", "PricingCategory", "ListUnitPrice", "ContractedUnitPrice",
    "ConsumedQuantity", "ConsumedUnit", "ServiceSubcategory", "SkuId", "SkuMeter", "Tags",
    "PricingCurrency", "PricingCurrencyListUnitPrice", "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
)  # fmt: skip
ADDED_1_3 = ("ServiceProviderName", "HostProviderName")
# Our own columns (FOCUS: custom columns carry the x_ prefix).
CUSTOM = (
    "x_Calls", "x_UsageClass", "x_ServiceTier", "x_Model", "x_PriceBookVersion",
    "x_PriceOverlay",
)  # fmt: skip


def columns(version: FocusVersion) -> tuple[str, ...]:
    """The exported columns of a FOCUS version, in file order."""
    added = ADDED_1_3 if version == "1.3" else ()
    return MANDATORY_1_2 + added + OPTIONAL_1_2 + CUSTOM


# Each call's costs can be rounded by the engine, per billed dimension (at most 11 token
# classes, request and units), to 1e-18; each exported row rounds once more. The month's
# BilledCost may differ from the stored cost by at most this much per call.
ROUNDING_PER_CALL = Decimal("2e-17")
# Usage classes priced per million tokens: the meter, and the RateSet field of its rate.
TOKEN_METERS = (
    ("input", "input"), ("cache_read", "cache_read"), ("cache_write_5m", "cache_write"),
    ("cache_write_1h", "cache_write_1h"), ("output", "output"), ("reasoning", "reasoning"),
    ("input_audio", "input_audio"), ("cache_audio_read", "cache_audio_read"),
    ("output_audio", "output_audio"), ("input_image", "input_image"),
    ("output_image", "output_image"),
)  # fmt: skip
_NO_UPPER = 2**63 - 1
_PLACES = Decimal("1e-18")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
RATE_COLUMNS = (
    "price_book_version", "provider", "model", "service_tier", "owner", "environment",
    "valid_from", "valid_to", "prompt_above", "prompt_upto", "off_peak", "off_peak_windows",
    "price_overlay", "meter", "pricing_currency", "list_unit_price", "contracted_unit_price",
)  # fmt: skip
_CHUNK = 1 << 20


class ExportSummary(BaseModel):
    """What an export wrote: the month, its rows and bytes, the calls in it and left out
    (unpriced or priced in part: no price to report), and the cost it billed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    month: date
    version: FocusVersion
    format: FocusFormat
    rows: int
    bytes_written: int
    calls: int
    unpriced_calls: int
    billed_cost: Decimal
    list_cost: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class _Probe:
    """Just what the book's entry and overlay lookups read of a call."""

    provider: str
    model: str
    owner: str
    environment: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class UsageKey:
    """One combination of what selects a call's rates, as calls store it."""

    price_book_version: str
    provider: str
    model: str
    service_tier: str
    owner: str
    environment: str


def parse_month(text: str) -> date:
    """``YYYY-MM`` -> the first day of that month. Raises FocusExportError otherwise."""
    found = _MONTH.match(text.strip())
    if not found:
        raise FocusExportError(
            f"--month {text!r} is not a month: give it as YYYY-MM, e.g. --month 2026-11"
        )
    return date(int(found.group(1)), int(found.group(2)), 1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """[start, end) of a UTC calendar month, as aware datetimes."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _rate(value: Decimal) -> Decimal:
    # focus_rates keeps 18 decimals; a rate only has more after a multiplier on a rule
    # ratio (the engine rounds such costs per call too).
    return value.quantize(_PLACES, rounding=ROUND_HALF_EVEN)


def off_peak_minutes(windows: Iterable[TimeWindow]) -> list[tuple[int, int, int]]:
    """Off-peak windows as (ISO weekday, first minute, minute after the last) spans that
    never cross midnight, judged as :meth:`TimeWindow.contains` judges them: a span past
    midnight belongs to the weekday it starts on, its part after midnight to the next."""
    spans: list[tuple[int, int, int]] = []
    for window in windows:
        for hours in window.hours_utc:
            start, end = (int(t[:2]) * 60 + int(t[3:]) for t in hours.split("-"))
            for day in window.weekdays:
                if start < end:
                    spans.append((day, start, end))
                    continue
                spans.append((day, start, 24 * 60))
                if end > 0:
                    spans.append((day % 7 + 1, 0, end))
    return sorted(set(spans))


def _context_ranges(thresholds: Sequence[int]) -> list[tuple[int, int]]:
    """(above, up to) prompt tokens of each context tier: the engine puts a call exactly
    at a threshold in the lower tier."""
    bounds = [-1, *thresholds, _NO_UPPER]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def _meters(
    listed: RateSet, contracted: RateSet, base: CompiledEntry, priced: CompiledEntry
) -> list[tuple[str, Decimal, Decimal]]:
    """(meter, list unit price, contracted unit price) of every class the rates price.
    A class only the overlay prices has no list price of its own: its list is the
    contracted price."""
    found: list[tuple[str, Decimal, Decimal]] = []
    for meter, field in TOKEN_METERS:
        contract = getattr(contracted, field)
        if contract is None:
            continue  # not priced: a call with such tokens is unpriced, not exported
        listed_rate = getattr(listed, field)
        found.append((meter, listed_rate if listed_rate is not None else contract, contract))
    if base.per_request or priced.per_request:
        found.append(("request", base.per_request, priced.per_request))
    for unit, price in sorted(priced.per_unit.items()):
        found.append((f"unit:{unit}", base.per_unit.get(unit, price), price))
    return found


def rate_rows(book: CompiledBook, key: UsageKey, start: datetime, end: datetime) -> list[Any]:
    """The ``focus_rates`` rows of one usage key over [start, end): one per segment in
    which one entry and one overlay are in force, context tier, off-peak or not, and
    usage class. Empty when the book prices none of it."""
    history = book.history(key.provider, key.model)
    changes = {e.effective_from for e in history}
    for overlay in book.book.overlays:
        changes.add(overlay.effective_from)
        if overlay.effective_to is not None:
            changes.add(overlay.effective_to)
    cuts = sorted({start, end} | {c for c in changes if start < c < end})
    rows: list[Any] = []
    for seg_start, seg_end in itertools.pairwise(cuts):
        probe = _Probe(key.provider, key.model, key.owner, key.environment, seg_start)
        try:
            # The lookups read only these fields of a call.
            priced = book.priced_entry(cast("AnyCall", probe))
            base = book.entry_for(key.provider, key.model, seg_start)
        except PriceNotFound:
            continue
        windows = off_peak_minutes(priced.off_peak_windows)
        currency = priced.entry.currency or book.book.currency
        for context, (above, upto) in enumerate(_context_ranges(priced.thresholds)):
            choices: list[tuple[int, RateSet | None, RateSet | None]] = []
            table, base_table = priced.rates.get(key.service_tier), base.rates.get(key.service_tier)
            if table is not None and base_table is not None:
                choices.append((0, base_table[context], table[context]))
            # Off-peak prices cover the standard tier only (others are unpriced there).
            standard = key.service_tier == "standard"
            if standard and priced.off_peak is not None and base.off_peak is not None:
                choices.append((1, base.off_peak[context], priced.off_peak[context]))
            for off_peak, listed, contracted in choices:
                if listed is None or contracted is None:
                    continue
                for meter, list_price, contract_price in _meters(listed, contracted, base, priced):
                    rows.append(
                        [
                            key.price_book_version,
                            key.provider,
                            key.model,
                            key.service_tier,
                            key.owner,
                            key.environment,
                            seg_start,
                            seg_end,
                            above,
                            upto,
                            off_peak,
                            windows,
                            priced.overlay,
                            meter,
                            currency,
                            _rate(list_price),
                            _rate(contract_price),
                        ]
                    )
    return rows


def _books_by_label(books: Sequence[CompiledBook]) -> dict[str, CompiledBook]:
    return {book.label: book for book in books}


def load_rates(client: Any, books: Sequence[CompiledBook], month: date) -> int:
    """Resolve into ``focus_rates`` the rates of every usage key of the month's priced
    calls; returns the rows written (0 for a month without priced calls). Raises
    FocusExportError when calls were priced by a book version not among ``books``."""
    start, end = month_bounds(month)
    keys = [
        UsageKey(*row)
        for row in client.query(
            "SELECT DISTINCT price_book_version, provider, model, service_tier, owner, "
            "environment FROM calls FINAL WHERE ts >= %(s)s AND ts < %(e)s "
            "AND cost_total IS NOT NULL",
            parameters={"s": start, "e": end},
        ).result_rows
    ]
    if not keys:
        return 0  # an idle month exports as a file without rows, as it should
    by_label = _books_by_label(books)
    missing = sorted({k.price_book_version for k in keys} - set(by_label))
    if missing:
        given = ", ".join(sorted(by_label)) or "none"
        raise FocusExportError(
            f"calls of {month:%Y-%m} were priced by {', '.join(missing)}, and the export was "
            f"given {given}: its list and contracted unit prices come from the book that "
            "priced the calls. Pass that book with --book DIR (repeat --book for several "
            "versions), or reprice the month with the current book (`costflow reprice`)"
        )
    rows: list[Any] = []
    for key in keys:
        rows.extend(rate_rows(by_label[key.price_book_version], key, start, end))
    if rows:
        client.insert("focus_rates", rows, column_names=list(RATE_COLUMNS))
    return len(rows)


def _in_month(month: date) -> str:
    """The month's rows: by the charge hour too, which ClickHouse can match against the
    calls' partitions (by the billing period alone it reads every month)."""
    start, end = month_bounds(month)
    first, after = (f"toDateTime('{t:%Y-%m-%d %H:%M:%S}', 'UTC')" for t in (start, end))
    return (
        f"BillingPeriodStart = {first} AND ChargePeriodStart >= {first} "
        f"AND ChargePeriodStart < {after}"
    )


def check_complete(client: Any, month: date) -> tuple[int, int, int, Decimal, Decimal, str]:
    """Compare the month's FOCUS rows with its stored calls; returns (rows, priced calls,
    unpriced calls, billed cost, list cost, currency) when they agree.

    Raises FocusExportError when a token of a priced call is in no row, or when the
    billed cost differs from the stored cost by more than rounding: the rates do not
    reproduce the prices the calls were given (a book edited without a new version).
    """
    start, end = month_bounds(month)
    stored = client.query(
        "SELECT countIf(cost_total IS NOT NULL), countIf(cost_total IS NULL), "
        "sum(ifNull(cost_total, toDecimal128(0, 18))), "
        "sumIf(toDecimal128(input_tokens + cache_read_tokens + cache_write_tokens "
        "+ cache_write_1h_tokens + output_tokens + reasoning_tokens + input_audio_tokens "
        "+ cache_audio_read_tokens + output_audio_tokens + input_image_tokens "
        "+ output_image_tokens, 9), cost_total IS NOT NULL), any(currency) "
        "FROM calls FINAL WHERE ts >= %(s)s AND ts < %(e)s",
        parameters={"s": start, "e": end},
    ).result_rows[0]
    calls, unpriced, stored_cost, stored_tokens, currency = stored
    exported = client.query(
        "SELECT count(), sum(BilledCost), sum(ListCost), "
        "sumIf(ConsumedQuantity, ConsumedUnit = 'Tokens') "
        f"FROM v_focus_costs WHERE {_in_month(month)}"
    ).result_rows[0]
    rows, billed, listed, tokens = exported
    if Decimal(tokens) != Decimal(stored_tokens):
        raise FocusExportError(
            f"{month:%Y-%m}: {stored_tokens} tokens in priced calls but {tokens} in FOCUS "
            "rows: the price book given has no rate for some of them. Pass the book that "
            "priced the calls with --book"
        )
    difference = abs(Decimal(billed) - Decimal(stored_cost))
    if difference > ROUNDING_PER_CALL * calls:
        raise FocusExportError(
            f"{month:%Y-%m}: FOCUS rows bill {billed} but the calls cost {stored_cost} "
            f"{currency}: the book's rates do not reproduce the stored prices (was the book "
            "changed without a new version?). Pass the exact book that priced the calls "
            "with --book, or reprice the month"
        )
    return int(rows), int(calls), int(unpriced), Decimal(billed), Decimal(listed), str(currency)


def export_query(month: date, version: FocusVersion) -> str:
    """The SELECT that writes the month's rows (times as DateTime64 so that Parquet
    gets timestamps, not integers)."""
    selected = []
    for name in columns(version):
        if name.startswith(("ChargePeriod", "BillingPeriod")):
            selected.append(f"toDateTime64({name}, 0, 'UTC') AS {name}")
        else:
            selected.append(name)
    return (
        f"SELECT {', '.join(selected)} FROM v_focus_costs "
        f"WHERE {_in_month(month)} "
        "ORDER BY ChargePeriodStart, ProviderName, x_Model, x_ServiceTier, x_UsageClass, "
        "Tags, x_PriceOverlay, ContractedUnitPrice"
    )


# CSV: ISO 8601 times with a Z, nulls as empty fields (FOCUS), decimals as exact text.
CSV_SETTINGS = {
    "date_time_output_format": "iso",
    "format_csv_null_representation": "",
    "output_format_decimal_trailing_zeros": 0,
}
PARQUET_SETTINGS = {
    "output_format_parquet_string_as_string": 1,
}


def export_month(
    client: Any,
    books: Sequence[CompiledBook],
    month: date,
    fmt: FocusFormat,
    out: IO[bytes],
    version: FocusVersion = "1.2",
    progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Write one month of FOCUS rows to ``out``; ``progress`` is told the bytes written
    after each chunk. A month without priced calls writes the header (CSV) or schema
    (Parquet) and no row: ``rows`` 0 in the summary. Raises FocusExportError (what to do
    next) for books that did not price the month's calls, or rows that do not add up."""
    load_rates(client, books, month)
    rows, calls, unpriced, billed, listed, currency = check_complete(client, month)
    settings = CSV_SETTINGS if fmt == "csv" else PARQUET_SETTINGS
    stream = client.raw_stream(
        export_query(month, version),
        settings=settings,
        fmt="CSVWithNames" if fmt == "csv" else "Parquet",
    )
    written = 0
    with stream:
        while True:
            chunk = stream.read(_CHUNK)
            if not chunk:
                break
            out.write(chunk)
            written += len(chunk)
            if progress is not None:
                progress(written)
    return ExportSummary(
        month=month,
        version=version,
        format=fmt,
        rows=rows,
        bytes_written=written,
        calls=calls,
        unpriced_calls=unpriced,
        billed_cost=billed,
        list_cost=listed,
        currency=currency,
    )
