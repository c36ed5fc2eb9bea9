"""Convert pydantic's genai-prices data (the ``genai_prices`` package) into book entries.

Pure: the package's provider objects in, entry data and a report out. Unlike
LiteLLM's list, genai-prices dates its price changes (``StartDateConstraint``), so a
model's entries here are real history: the first, undated price is assumed in force
since the beginning (``effective_from_assumed``), each dated one from its date.

Mapping:
- provider: genai-prices' id in costflow's name (``x-ai`` -> ``xai``, ``aws`` ->
  ``bedrock``, then :func:`pipeline.pricing.names.canonical_provider`);
- model: the model's ``id``; its match clauses become aliases (``equals`` exact,
  ``starts_with`` ``X*``, ``contains`` ``*X*``); a regex or an ``and`` clause cannot be
  an alias, so only the id matches, and the report says so;
- prices: ``input_mtok`` ... per million tokens as they are; ``TieredPrices``
  (all tokens at the tier's rate once the prompt exceeds its start) become long-context
  ``tiers``; ``web_searches_kcount`` and ``requests_kcount`` per thousand become the
  ``web_search`` unit and ``per_request``. Everything else (time-of-day constraints,
  audio hours, pages, video) is reported, never dropped silently.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pipeline.pricing.book import RATE_PLACES
from pipeline.pricing.importers.history import BEGINNING
from pipeline.pricing.importers.report import ImportReport
from pipeline.pricing.names import canonical_provider

_PROVIDERS = {"x-ai": "xai", "aws": "bedrock", "mistral": "mistral"}
_RATES = {
    "input_mtok": "input_per_mtok",
    "output_mtok": "output_per_mtok",
    "cache_read_mtok": "cache_read_per_mtok",
    "cache_write_mtok": "cache_write_per_mtok",
    "cache_write_1h_mtok": "cache_write_1h_per_mtok",
    "output_reasoning_mtok": "reasoning_per_mtok",
    "input_audio_mtok": "input_audio_per_mtok",
    "cache_audio_read_mtok": "cache_audio_read_per_mtok",
    "output_audio_mtok": "output_audio_per_mtok",
    "input_image_mtok": "input_image_per_mtok",
    "output_image_mtok": "output_image_per_mtok",
}
_THOUSAND = Decimal(1000)


def _text(
    value: Decimal, where: str = "", key: str = "", report: ImportReport | None = None
) -> str:
    """A price as a decimal string; over 12 decimals (per million tokens) it is rounded
    to the book's precision and the report lists it."""
    if value != value.quantize(RATE_PLACES) and report is not None:
        report.rounded.setdefault(where, []).append(key)
        value = value.quantize(RATE_PLACES)
    return format(value.normalize(), "f")


def _aliases(model_id: str, clause: Any) -> tuple[list[str], bool]:
    """Aliases for a match clause, and whether every branch could be expressed."""
    kind = type(clause).__name__
    if kind == "ClauseEquals":
        return ([] if clause.equals == model_id else [clause.equals]), True
    if kind == "ClauseStartsWith":
        return [f"{clause.starts_with}*"], True
    if kind == "ClauseContains":
        return [f"*{clause.contains}*"], True
    if kind == "ClauseOr":
        out: list[str] = []
        complete = True
        for branch in clause.or_:
            found, ok = _aliases(model_id, branch)
            out += found
            complete = complete and ok
        return out, complete
    return [], False  # ClauseRegex, ClauseEndsWith, ClauseAnd: not an alias pattern


def _prices(prices: Any, where: str, report: ImportReport) -> dict[str, Any]:
    """One genai-prices ``ModelPrice`` as book entry price fields."""
    out: dict[str, Any] = {}
    tiers: dict[int, dict[str, Any]] = {}
    for key, value in prices.__dict__.items():
        if value is None or key.startswith("_"):
            continue
        if key in _RATES and isinstance(value, Decimal):
            out[_RATES[key]] = _text(value, where, key, report)
        elif key in _RATES and type(value).__name__ == "TieredPrices":
            out[_RATES[key]] = _text(value.base, where, key, report)
            for tier in value.tiers:
                tiers.setdefault(tier.start, {"above_prompt_tokens": tier.start})[_RATES[key]] = (
                    _text(tier.price, where, key, report)
                )
        elif key == "web_searches_kcount":
            per_search = _text(value / _THOUSAND, where, key, report)
            out.setdefault("per_unit", {})["web_search"] = per_search
        elif key == "requests_kcount":
            out["per_request"] = _text(value / _THOUSAND, where, key, report)
        else:
            report.ignored_prices.setdefault(where, []).append(key)
    if tiers:
        out["tiers"] = [tiers[k] for k in sorted(tiers)]
    return out


def import_genai_prices(
    providers: list[Any], report: ImportReport | None = None
) -> tuple[list[dict[str, Any]], ImportReport]:
    """Entry data (dated history per model) from ``genai_prices.data.providers``."""
    report = report or ImportReport()
    entries: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for provider in providers:
        name = canonical_provider(_PROVIDERS.get(provider.id, provider.id))
        for model in provider.models:
            where = f"{provider.id}/{model.id}"
            if (name, model.id) in seen:
                report.skipped[where] = "same provider/model as an earlier entry; first kept"
                continue
            seen.add((name, model.id))
            aliases, complete = _aliases(model.id, model.match)
            if not complete:
                report.ignored_prices.setdefault(where, []).append(
                    "match clause (regex/and): only the id itself matches"
                )
            conditional = model.prices if isinstance(model.prices, list) else None
            history = conditional or [None]
            dated: list[tuple[datetime, bool, Any]] = []
            for item in history:
                prices = model.prices if item is None else item.prices
                constraint = None if item is None else item.constraint
                kind = type(constraint).__name__
                if constraint is None:
                    dated.append((BEGINNING, True, prices))
                elif kind == "StartDateConstraint":
                    start = datetime.combine(constraint.start_date, datetime.min.time(), UTC)
                    dated.append((start, False, prices))
                else:
                    report.ignored_prices.setdefault(where, []).append(kind)
            made = 0
            for start, assumed, prices in sorted(dated, key=lambda d: d[0]):
                fields = _prices(prices, where, report)
                if "input_per_mtok" not in fields and "output_per_mtok" not in fields:
                    continue
                entry = {"provider": name, "model": model.id,
                         "effective_from": start.isoformat(), **fields}  # fmt: skip
                if assumed:
                    entry["effective_from_assumed"] = True
                if aliases:
                    entry["aliases"] = sorted(set(aliases))
                entries.append(entry)
                made += 1
            if made:
                report.imported += 1
            else:
                report.skipped[where] = "no token prices"
    return entries, report
