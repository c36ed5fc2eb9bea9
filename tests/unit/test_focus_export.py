"""FOCUS export in real chDB: hand-worked calls and book, every row and column checked.

The book prices two models; Anthropic's has a long-context tier and a negotiated
overlay (acme, 20 % off from 2026-11-15); OpenAI's a per-request fee and a unit. Every
figure below is worked by hand from those rates (tokens x rate / 1e6), independently of
the view and of the pricing engine. The FOCUS rules checked are FOCUS 1.2's (column
presence, nullability, allowed values, date/time and numeric formats, unit price x
quantity = cost); the FinOps Foundation's validator (focus-validator 2.x) needs Python
3.12 and does not install here (see docs/analytics.md).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import FocusExportError
from pipeline.pricing.book import TimeWindow, load_price_book
from pipeline.pricing.engine import CompiledBook
from pipeline.query import focus
from tests.chdb import chdb_database

D = Decimal
BOOK_YAML = """
name: focus-test
version: "1"
currency: USD
entries:
  - provider: anthropic
    model: claude-x
    effective_from: 2026-01-01
    input_per_mtok: "3"
    output_per_mtok: "15"
    cache_read_per_mtok: "0.3"
    cache_write_per_mtok: "3.75"
    cache_write_1h_per_mtok: "6"
    tiers:
      - above_prompt_tokens: 200000
        input_per_mtok: "6"
        output_per_mtok: "22.5"
  - provider: openai
    model: gpt-y
    effective_from: 2026-01-01
    input_per_mtok: "1.25"
    output_per_mtok: "10"
    reasoning_per_mtok: "10"
    per_request: "0.0005"
    per_unit:
      web_search: "0.01"
overlays:
  - name: acme-deal
    match: {owner: acme, provider: anthropic}
    effective_from: 2026-11-15
    multiplier: "0.8"
"""
LABEL = "focus-test@1"
NOVEMBER = date(2026, 11, 1)
CALL_COLUMNS = [
    "event_id", "task_id", "ts", "provider", "model", "scenario_id", "environment", "owner",
    "role", "status", "service_tier", "input_tokens", "cache_read_tokens",
    "cache_write_tokens", "cache_write_1h_tokens", "output_tokens", "reasoning_tokens",
    "units", "cost_input", "cost_cache_read", "cost_cache_write", "cost_output",
    "cost_reasoning", "cost_request", "cost_units", "cost_total", "currency",
    "price_book_version", "price_overlay",
]  # fmt: skip


def _call(
    event_id: str,
    ts: datetime,
    model: str,
    owner: str,
    tokens: tuple[int, int, int, int, int, int],
    costs: tuple[str, str, str, str, str, str, str] | None,
    units: dict[str, Decimal] | None = None,
    overlay: str = "",
) -> list[Any]:
    """A calls row: tokens (input, cache read, write 5m, write 1h, output, reasoning),
    costs (input, cache read, cache write, output, reasoning, request, units) or None."""
    provider = "anthropic" if model.startswith("claude") else "openai"
    parts = [D(c) for c in costs] if costs else [None] * 7
    total = sum(parts, D(0)) if costs else None  # type: ignore[arg-type]
    return [
        event_id, f"task-{event_id}", ts, provider, model, "support", "prod", owner,
        "generator", "ok", "standard", *tokens, units or {}, *parts, total, "USD",
        LABEL if costs else "", overlay,
    ]  # fmt: skip


def _at(day: int, hour: int, minute: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


# Worked by hand: tokens x rate / 1e6 at the book's rates.
CALLS = [
    # Before the overlay: list prices. 1000 x 3, 2000 x 0.3, 100 x 3.75, 200 x 6, 500 x 15.
    _call("e1", _at(3, 10, 5), "claude-x", "acme", (1000, 2000, 100, 200, 500, 0),
          ("0.003", "0.0006", "0.0015750", "0.0075", "0", "0", "0")),
    # Under acme-deal (0.8): input 2.4, output 12 per million.
    _call("e2", _at(20, 10, 5), "claude-x", "acme", (1000, 0, 0, 0, 500, 0),
          ("0.0024", "0", "0", "0.006", "0", "0", "0"), overlay="acme-deal"),
    _call("e5", _at(20, 10, 30), "claude-x", "acme", (3000, 0, 0, 0, 0, 0),
          ("0.0072", "0", "0", "0", "0", "0", "0"), overlay="acme-deal"),
    # beta has no deal; 250,000 prompt tokens > 200,000: input 6, output 22.5.
    _call("e4", _at(20, 11, 10), "claude-x", "beta", (250000, 0, 0, 0, 1000, 0),
          ("1.5", "0", "0", "0.0225", "0", "0", "0")),
    # 2000 x 1.25, 100 x 10, 300 x 10, one request at 0.0005, 2 web searches at 0.01.
    _call("e3", _at(20, 10, 6), "gpt-y", "beta", (2000, 0, 0, 0, 100, 300),
          ("0.0025", "0", "0", "0.001", "0.003", "0.0005", "0.02"), {"web_search": D(2)}),
    # Unpriced (no entry): not exported, counted.
    _call("e6", _at(21, 9, 0), "gpt-unknown", "beta", (10, 0, 0, 0, 10, 0), None),
    # October: not in November's export.
    _call("e7", _at(5, 0, 0, month=10), "gpt-y", "beta", (1000, 0, 0, 0, 0, 0),
          ("0.00125", "0", "0", "0", "0", "0.0005", "0")),
]  # fmt: skip
BILLED = D("0.012675") + D("0.0084") + D("0.0072") + D("1.5225") + D("0.027")
LISTED = D("0.012675") + D("0.0105") + D("0.009") + D("1.5225") + D("0.027")

# (hour, model, owner, class) -> PricingQuantity, ListUnitPrice, ContractedUnitPrice,
# ListCost, ContractedCost, calls.
EXPECTED = {
    ("2026-11-03T10", "claude-x", "acme", "input"): ("0.001", "3", "3", "0.003", "0.003", 1),
    ("2026-11-03T10", "claude-x", "acme", "cache_read"):
        ("0.002", "0.3", "0.3", "0.0006", "0.0006", 1),
    ("2026-11-03T10", "claude-x", "acme", "cache_write_5m"):
        ("0.0001", "3.75", "3.75", "0.000375", "0.000375", 1),
    ("2026-11-03T10", "claude-x", "acme", "cache_write_1h"):
        ("0.0002", "6", "6", "0.0012", "0.0012", 1),
    ("2026-11-03T10", "claude-x", "acme", "output"):
        ("0.0005", "15", "15", "0.0075", "0.0075", 1),
    # e2 and e5 in one row: 4000 tokens at 3 list, 2.4 contracted.
    ("2026-11-20T10", "claude-x", "acme", "input"): ("0.004", "3", "2.4", "0.012", "0.0096", 2),
    ("2026-11-20T10", "claude-x", "acme", "output"): ("0.0005", "15", "12", "0.0075", "0.006", 1),
    ("2026-11-20T11", "claude-x", "beta", "input"): ("0.25", "6", "6", "1.5", "1.5", 1),
    ("2026-11-20T11", "claude-x", "beta", "output"):
        ("0.001", "22.5", "22.5", "0.0225", "0.0225", 1),
    ("2026-11-20T10", "gpt-y", "beta", "input"): ("0.002", "1.25", "1.25", "0.0025", "0.0025", 1),
    ("2026-11-20T10", "gpt-y", "beta", "output"): ("0.0001", "10", "10", "0.001", "0.001", 1),
    ("2026-11-20T10", "gpt-y", "beta", "reasoning"): ("0.0003", "10", "10", "0.003", "0.003", 1),
    ("2026-11-20T10", "gpt-y", "beta", "request"): ("1", "0.0005", "0.0005", "0.0005", "0.0005", 1),
    ("2026-11-20T10", "gpt-y", "beta", "unit:web_search"): ("2", "0.01", "0.01", "0.02", "0.02", 1),
}  # fmt: skip

# FOCUS 1.2, columns/*.md: allowed values.
CHARGE_CATEGORIES = {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
CHARGE_FREQUENCIES = {"One-Time", "Recurring", "Usage-Based"}
PRICING_CATEGORIES = {"Standard", "Dynamic", "Committed", "Other"}
SERVICE_CATEGORIES = {
    "AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases",
    "Developer Tools", "Multicloud", "Identity", "Integration", "Internet of Things",
    "Management and Governance", "Media", "Migration", "Mobile", "Networking", "Security",
    "Storage", "Web", "Other",
}  # fmt: skip
AI_SUBCATEGORIES = {
    "AI Platforms", "Bots", "Generative AI", "Machine Learning", "Natural Language Processing",
    "Other (AI and Machine Learning)",
}  # fmt: skip
# Mandatory columns that allow nulls in 1.2 (ChargeClass: null unless a correction), and
# columns that must not be null on Usage rows that are not corrections.
NULLABLE = {"ChargeClass"}
NOT_NULL_FOR_USAGE = {
    "ListUnitPrice", "ContractedUnitPrice", "PricingCategory", "SkuId", "ConsumedQuantity",
    "ConsumedUnit", "ChargeFrequency", "PricingCurrency", "PricingCurrencyListUnitPrice",
    "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
}  # fmt: skip
DECIMALS = {
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice",
    "ContractedUnitPrice", "PricingQuantity", "ConsumedQuantity",
    "PricingCurrencyListUnitPrice", "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
}  # fmt: skip
DATETIMES = {"BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"}
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
NUMERIC = re.compile(r"^-?\d+(\.\d+)?$")


@pytest.fixture(scope="module")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("focus-chdb")


@pytest.fixture
def client(chdb_dir: Path) -> Iterator[Any]:
    """A database of its own in the module's chDB (one chDB directory per process)."""
    with chdb_database(chdb_dir, "focus") as db:
        db.insert("calls", CALLS, column_names=CALL_COLUMNS)
        yield db


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> CompiledBook:
    path = tmp_path_factory.mktemp("book") / "book.yaml"
    path.write_text(BOOK_YAML, encoding="utf-8")
    compiled = CompiledBook(load_price_book(path))
    assert compiled.label == LABEL
    return compiled


def _csv(client: Any, book: CompiledBook, version: focus.FocusVersion) -> list[dict[str, str]]:
    out = io.BytesIO()
    summary = focus.export_month(client, [book], NOVEMBER, "csv", out, version)
    assert summary.bytes_written == len(out.getvalue())
    assert (summary.rows, summary.calls, summary.unpriced_calls) == (len(EXPECTED), 5, 1)
    assert (summary.billed_cost, summary.list_cost) == (BILLED, LISTED)
    return list(csv.DictReader(io.StringIO(out.getvalue().decode("utf-8"))))


def _key(row: dict[str, str]) -> tuple[str, str, str, str]:
    owner = json.loads(row["Tags"])["owner"]
    return (row["ChargePeriodStart"][:13], row["x_Model"], owner, row["x_UsageClass"])


def test_every_row_carries_the_hand_worked_figures(client: Any, book: CompiledBook) -> None:
    rows = _csv(client, book, "1.2")
    got = {
        _key(r): (
            D(r["PricingQuantity"]),
            D(r["ListUnitPrice"]),
            D(r["ContractedUnitPrice"]),
            D(r["ListCost"]),
            D(r["ContractedCost"]),
            int(r["x_Calls"]),
        )
        for r in rows
    }
    assert len(got) == len(rows)  # one row per hour, model, tag set and class here
    expected = {k: (*(D(x) for x in v[:5]), v[5]) for k, v in EXPECTED.items()}
    assert got == expected
    for row in rows:
        assert D(row["BilledCost"]) == D(row["ContractedCost"]) == D(row["EffectiveCost"])
        assert row["x_PriceBookVersion"] == LABEL
        overlaid = row["x_Model"] == "claude-x" and row["ChargePeriodStart"] >= "2026-11-15"
        assert row["x_PriceOverlay"] == ("acme-deal" if overlaid and "acme" in row["Tags"] else "")
    assert sum(D(r["BilledCost"]) for r in rows) == BILLED
    assert sum(D(r["ListCost"]) for r in rows) == LISTED
    meters = {r["x_UsageClass"]: (r["SkuMeter"], r["PricingUnit"], r["ConsumedUnit"]) for r in rows}
    assert meters["cache_write_5m"] == (
        "Cache write tokens (5 minutes)",
        "1000000 Tokens",
        "Tokens",
    )
    assert meters["cache_write_1h"] == ("Cache write tokens (1 hour)", "1000000 Tokens", "Tokens")
    assert meters["request"] == ("Requests", "Requests", "Requests")
    assert meters["unit:web_search"] == ("web_search", "web_search", "web_search")
    tokens = {_key(r): D(r["ConsumedQuantity"]) for r in rows}
    assert tokens[("2026-11-20T10", "claude-x", "acme", "input")] == 4000


def test_focus_columns_values_and_formats(client: Any, book: CompiledBook) -> None:
    rows = _csv(client, book, "1.2")
    names = list(rows[0])
    assert len(focus.MANDATORY_1_2) == 21
    assert set(focus.MANDATORY_1_2) <= set(names)
    assert "ServiceProviderName" not in names and "HostProviderName" not in names
    # Our own columns carry the x_ prefix; every other is a FOCUS column we name.
    known = set(focus.MANDATORY_1_2) | set(focus.OPTIONAL_1_2)
    assert {n for n in names if not n.startswith("x_")} == known
    for row in rows:
        for name in focus.MANDATORY_1_2:
            assert (row[name] == "") == (name in NULLABLE), (name, row)
        for name in NOT_NULL_FOR_USAGE:
            assert row[name] != "", (name, row)
        assert row["ChargeCategory"] in CHARGE_CATEGORIES and row["ChargeCategory"] == "Usage"
        assert row["ChargeClass"] == ""  # no corrections
        assert row["ChargeFrequency"] in CHARGE_FREQUENCIES
        assert row["ChargeFrequency"] == "Usage-Based"
        assert row["PricingCategory"] in PRICING_CATEGORIES and row["PricingCategory"] == "Standard"
        assert row["ServiceCategory"] in SERVICE_CATEGORIES
        assert row["ServiceSubcategory"] in AI_SUBCATEGORIES
        assert re.fullmatch(r"[A-Z]{3}", row["BillingCurrency"])
        for name in DATETIMES:
            assert ISO_UTC.match(row[name]), (name, row[name])
        for name in DECIMALS:
            assert NUMERIC.match(row[name]), (name, row[name])
        start = datetime.fromisoformat(row["ChargePeriodStart"])
        assert datetime.fromisoformat(row["ChargePeriodEnd"]) - start == timedelta(hours=1)
        assert row["BillingPeriodStart"] == "2026-11-01T00:00:00Z"
        assert row["BillingPeriodEnd"] == "2026-12-01T00:00:00Z"
        # FOCUS: unit price x PricingQuantity = cost, exactly.
        quantity = D(row["PricingQuantity"])
        assert D(row["ListUnitPrice"]) * quantity == D(row["ListCost"])
        assert D(row["ContractedUnitPrice"]) * quantity == D(row["ContractedCost"])
        assert D(row["ListCost"]) >= D(row["ContractedCost"]) >= 0
        tags = json.loads(row["Tags"])
        assert isinstance(tags, dict)
        assert tags == {"scenario_id": "support", "environment": "prod",
                        "owner": tags["owner"], "role": "generator"}  # fmt: skip


def test_version_1_3_adds_the_provider_columns(client: Any, book: CompiledBook) -> None:
    rows = _csv(client, book, "1.3")
    assert all(r["ServiceProviderName"] == r["ProviderName"] != "" for r in rows)
    assert all(r["HostProviderName"] == r["ProviderName"] for r in rows)
    assert list(rows[0]) == list(focus.columns("1.3"))


def test_parquet_keeps_decimals_and_utc_timestamps(client: Any, book: CompiledBook) -> None:
    out = io.BytesIO()
    focus.export_month(client, [book], NOVEMBER, "parquet", out, "1.3")
    table = pq.read_table(io.BytesIO(out.getvalue()))
    assert table.num_rows == len(EXPECTED)
    assert table.column_names == list(focus.columns("1.3"))
    for name in ("BilledCost", "ListCost", "ListUnitPrice", "ContractedUnitPrice"):
        assert table.schema.field(name).type == pa.decimal128(38, 18), name
    assert pa.types.is_timestamp(table.schema.field("ChargePeriodStart").type)
    rows = table.to_pylist()
    assert sum(r["BilledCost"] for r in rows) == BILLED
    assert sum(r["ListCost"] for r in rows) == LISTED
    start = rows[0]["BillingPeriodStart"]
    assert start.replace(tzinfo=start.tzinfo or UTC) == datetime(2026, 11, 1, tzinfo=UTC)
    assert all(r["ChargeClass"] is None for r in rows)


@pytest.mark.parametrize("text", ["2026-13", "2026-1", "november", "2026-11-01", ""])
def test_a_bad_month_says_how_to_write_one(text: str) -> None:
    with pytest.raises(FocusExportError, match="YYYY-MM"):
        focus.parse_month(text)


def test_an_empty_month_and_a_missing_book_say_what_to_do(client: Any, book: CompiledBook) -> None:
    # An idle month is a file with the header and no row (a monthly job must not fail).
    out = io.BytesIO()
    summary = focus.export_month(client, [book], date(2026, 12, 1), "csv", out)
    assert (summary.rows, summary.calls, summary.billed_cost) == (0, 0, 0)
    [header] = out.getvalue().decode().splitlines()
    assert [name.strip('"') for name in header.split(",")] == list(focus.columns("1.2"))
    other = CompiledBook(book.book.model_copy(update={"version": "2"}))
    with pytest.raises(FocusExportError, match=r"priced by focus-test@1.*--book"):
        focus.export_month(client, [other], NOVEMBER, "csv", io.BytesIO())


def test_rates_that_do_not_reproduce_the_stored_cost_are_refused(
    client: Any, book: CompiledBook
) -> None:
    """A call stored at another price than the book's (a book edited in place): the
    export refuses rather than report list and contracted costs nobody billed."""
    wrong = _call("e9", _at(22, 8, 0), "gpt-y", "beta", (1000, 0, 0, 0, 0, 0),
                  ("0.002", "0", "0", "0", "0", "0.0005", "0"))  # fmt: skip
    client.insert("calls", [wrong], column_names=CALL_COLUMNS)
    with pytest.raises(FocusExportError, match="do not reproduce the stored prices"):
        focus.export_month(client, [book], NOVEMBER, "csv", io.BytesIO())


def test_exporting_twice_gives_the_same_rows(client: Any, book: CompiledBook) -> None:
    """Rates load again on every export; focus_rates keeps one row per key (FINAL)."""
    assert _csv(client, book, "1.2") == _csv(client, book, "1.2")


@pytest.mark.parametrize(
    "windows",
    [
        [TimeWindow(hours_utc=("16:30-00:30",), weekdays=(1, 2, 3, 4, 5))],
        [TimeWindow(hours_utc=("00:00-00:00",), weekdays=(6,))],
        [TimeWindow(hours_utc=("22:00-06:00", "12:00-13:00"), weekdays=(7, 3))],
    ],
)
def test_off_peak_spans_judge_every_minute_of_a_week_as_the_engine(
    windows: list[TimeWindow],
) -> None:
    spans = focus.off_peak_minutes(windows)
    monday = datetime(2026, 11, 2, tzinfo=UTC)
    for minute in range(7 * 24 * 60):
        at = monday + timedelta(minutes=minute)
        day, of_day = at.isoweekday(), at.hour * 60 + at.minute
        in_spans = any(d == day and lo <= of_day < hi for d, lo, hi in spans)
        assert in_spans == any(w.contains(at) for w in windows), at


def test_the_command_writes_the_file_and_refuses_a_bad_month(
    client: Any, chdb_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    book_file = tmp_path / "book.yaml"
    book_file.write_text(BOOK_YAML, encoding="utf-8")
    database = client.query("SELECT currentDatabase()").result_rows[0][0]
    where = ["--data-dir", str(tmp_path), "--clickhouse-dsn", f"chdb://{chdb_dir}"]
    where += ["--database", database]
    out = tmp_path / "focus.csv"
    code = main([*where, "focus", "export", "--month", "2026-11", "--format", "csv",
                 "--version", "1.3", "--output", str(out), "--book", str(book_file)])  # fmt: skip
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == len(EXPECTED) and "HostProviderName" in rows[0]
    assert not (tmp_path / "focus.csv.partial").exists()
    said = capsys.readouterr().err
    assert f"billed {BILLED}" in said and "1 unpriced calls left out" in said
    code = main([*where, "focus", "export", "--month", "2026-13", "--output", str(out)])
    assert code == 2
    assert "YYYY-MM" in capsys.readouterr().err
