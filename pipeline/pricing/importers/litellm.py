"""Convert LiteLLM's ``model_prices_and_context_window.json`` into a price book.

Pure: a dict in, a :class:`PriceBook` and a report out. Every entry or price the
book cannot represent is reported with its reason, never skipped silently.

Mapping: provider = ``litellm_provider`` in costflow's name for it
(:func:`pipeline.pricing.names.canonical_provider`: ``gemini`` -> ``google``,
``vertex_ai-*`` -> ``vertex_ai``); model = the key without a leading ``<provider>/``.
Per-token USD floats become exact Decimal rates per million tokens via their shortest
decimal repr (``3e-06`` -> ``3``), so no binary noise enters. Long-context prices of
one service tier (``..._above_272k_tokens_batches``) become that tier's own ``tiers``;
``search_context_cost_per_query`` (the same for every context size) becomes the
``web_search`` unit; an ``alias_of`` entry becomes an alias of its target.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipeline.pricing.book import RATE_PLACES, PriceBook
from pipeline.pricing.importers.report import ImportReport
from pipeline.pricing.names import canonical_provider, strip_self_prefix

TOKEN_MODES = {"chat", "completion", "responses"}
_BASE = {
    "input_cost_per_token": "input_per_mtok",
    "output_cost_per_token": "output_per_mtok",
    "cache_read_input_token_cost": "cache_read_per_mtok",
    "cache_creation_input_token_cost": "cache_write_per_mtok",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h_per_mtok",
    "output_cost_per_reasoning_token": "reasoning_per_mtok",
    "input_cost_per_audio_token": "input_audio_per_mtok",
    "cache_read_input_audio_token_cost": "cache_audio_read_per_mtok",
    "output_cost_per_audio_token": "output_audio_per_mtok",
    "input_cost_per_image_token": "input_image_per_mtok",
    "output_cost_per_image_token": "output_image_per_mtok",
}
_SERVICE = {"batches": "batch", "flex": "flex", "priority": "priority"}
_TIERED = re.compile(
    r"^(?P<base>.+)_above_(?P<k>\d+)k_tokens(?:_(?P<service>batches|flex|priority))?$"
)
# Pricing blocks whose names do not say "cost" but change the price.
_PRICING_BLOCKS = {"off_peak_pricing", "tiered_pricing"}
_SERVICE_KEY = re.compile(r"^(?P<base>.+)_(?P<service>batches|flex|priority)$")


def per_mtok(value: Any) -> str:
    """USD per token (float) -> USD per million tokens (exact decimal string).

    Some source values carry binary noise (``1.5000020000000002e-05``); the book
    keeps 12 fractional digits per million tokens (1e-18 USD per token).
    """
    exact = Decimal(repr(float(value))).scaleb(6)
    return format(exact.quantize(RATE_PLACES).normalize(), "f")


def needs_rounding(value: Any) -> bool:
    exact = Decimal(repr(float(value))).scaleb(6)
    return exact != exact.quantize(RATE_PLACES)


def _model_name(key: str, provider: str) -> str:
    prefix = f"{provider}/"
    return key[len(prefix) :] if key.startswith(prefix) else key


def _web_search(value: Any) -> str | None:
    """One price per search when every context size costs the same, else None."""
    if not isinstance(value, dict) or not value:
        return None
    prices = {Decimal(repr(float(v))) for v in value.values() if isinstance(v, int | float)}
    if len(prices) != 1 or len(value) != len(
        [v for v in value.values() if isinstance(v, int | float)]
    ):
        return None
    return format(prices.pop().normalize(), "f")


def convert_entry(
    key: str, data: dict[str, Any], effective_from: datetime
) -> tuple[dict[str, Any], list[str]]:
    """One LiteLLM entry -> book entry data and the price fields left out."""
    source_provider = str(data["litellm_provider"])
    provider = canonical_provider(source_provider)
    entry: dict[str, Any] = {
        "provider": provider,
        "model": strip_self_prefix(provider, _model_name(key, source_provider)),
        "effective_from": effective_from.isoformat(),
    }
    tiers: dict[int, dict[str, Any]] = {}
    services: dict[str, dict[str, Any]] = {}
    service_long: dict[str, dict[int, dict[str, Any]]] = {}
    ignored: list[str] = []
    for name, value in data.items():
        if name == "off_peak_pricing" and isinstance(value, dict):
            entry["off_peak"] = {_BASE[k]: per_mtok(v) for k, v in value.items() if k in _BASE} | {
                "windows": value.get("windows", [])
            }
            continue
        if name in _PRICING_BLOCKS:
            ignored.append(name)  # range ("tiered_pricing") pricing: not in the book yet
            continue
        if name == "search_context_cost_per_query":
            per_search = _web_search(value)
            if per_search is None:
                ignored.append(name)  # priced by context size: no unit for that yet
            else:
                entry["per_unit"] = {"web_search": per_search}
            continue
        if "cost" not in name:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            ignored.append(name)
            continue
        if name in _BASE:
            entry[_BASE[name]] = per_mtok(value)
            continue
        tiered = _TIERED.match(name)
        if tiered and tiered.group("base") in _BASE:
            threshold = int(tiered.group("k")) * 1000
            if tiered.group("service"):
                tier_name = _SERVICE[tiered.group("service")]
                service_long.setdefault(tier_name, {}).setdefault(
                    threshold, {"above_prompt_tokens": threshold}
                )[_BASE[tiered.group("base")]] = per_mtok(value)
                continue
            tiers.setdefault(threshold, {"above_prompt_tokens": threshold})[
                _BASE[tiered.group("base")]
            ] = per_mtok(value)
            continue
        flat = _SERVICE_KEY.match(name)
        if flat and flat.group("base") in _BASE:
            services.setdefault(_SERVICE[flat.group("service")], {})[_BASE[flat.group("base")]] = (
                per_mtok(value)
            )
            continue
        ignored.append(name)
    ignored += _implausible(entry)
    for threshold in sorted(tiers):
        ignored += _implausible(tiers[threshold], entry)
        if len(tiers[threshold]) == 1:  # nothing left but the threshold
            del tiers[threshold]
    if tiers:
        entry["tiers"] = [tiers[k] for k in sorted(tiers)]
    for tier_name, by_threshold in service_long.items():
        kept = {k: v for k, v in by_threshold.items() if k in tiers}
        # A service tier's long-context price needs the standard one at that threshold.
        ignored += [
            f"{tier_name} above {k} tokens: no standard price above it" for k in by_threshold
            if k not in tiers
        ]  # fmt: skip
        if kept:
            services.setdefault(tier_name, {})["tiers"] = [kept[k] for k in sorted(kept)]
    if services:
        entry["service_tiers"] = services
    return entry, ignored


def _implausible(rates: dict[str, Any], below: dict[str, Any] | None = None) -> list[str]:
    """Drop (and name) list prices no provider bills, so the rule or the price under
    the threshold applies instead of a wrong number: a cache write below the input
    price of the same level (every provider bills writing a cache at least as
    input), and a long-context tier's price below the same class's price under the
    threshold (long context never costs less). Both occur in LiteLLM's list (Vertex
    AI's Gemini 2.5: cache writes above 200k at $0.25, audio above 200k at $0.30
    against $1.00 below)."""
    dropped = []
    threshold = rates.get("above_prompt_tokens")
    where = f" above {threshold} tokens" if threshold is not None else ""
    input_rate = rates.get("input_per_mtok")
    for name in ("cache_write_per_mtok", "cache_write_1h_per_mtok"):
        value = rates.get(name)
        if value is not None and input_rate is not None and Decimal(value) < Decimal(input_rate):
            del rates[name]
            dropped.append(f"{name}{where} {value}: below the input price {input_rate}")
    for name, value in list(rates.items()):
        base = below.get(name) if below is not None else None
        if name != "above_prompt_tokens" and base is not None and Decimal(value) < Decimal(base):
            del rates[name]
            dropped.append(f"{name}{where} {value}: below {base} under the threshold")
    return dropped


def _add_aliases(
    aliases: dict[str, str],
    prices: dict[str, Any],
    entries: list[dict[str, Any]],
    seen: dict[tuple[str, str], str],
    report: ImportReport,
) -> None:
    """``{"claude-fable-latest": {"alias_of": "claude-fable-5-1"}}``: the alias's name
    prices as its target (same provider; the target must have been imported)."""
    by_key = {key: entry for entry, key in zip(entries, seen.values(), strict=True)}
    for key, target in aliases.items():
        entry = by_key.get(target)
        if entry is None:
            why = "was not imported" if target in prices else "is not in the list"
            report.skipped[key] = f"alias_of {target!r}, which {why}"
            continue
        data = prices[key]
        provider = data.get("litellm_provider", prices[target].get("litellm_provider"))
        if canonical_provider(str(provider)) != entry["provider"]:
            report.skipped[key] = f"alias_of {target!r} under another provider ({provider})"
            continue
        name = strip_self_prefix(entry["provider"], _model_name(key, str(provider)))
        if (entry["provider"], name) in seen or name in entry.get("aliases", ()):
            report.skipped[key] = f"alias_of {target!r}, but {name!r} is already priced"
            continue
        entry.setdefault("aliases", []).append(name)
        report.aliased[key] = target


def import_litellm(
    prices: dict[str, Any],
    effective_from: datetime,
    version: str,
    name: str = "litellm",
) -> tuple[PriceBook, ImportReport]:
    report = ImportReport()
    entries: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], str] = {}
    aliases: dict[str, str] = {}
    for key, data in prices.items():
        if key == "sample_spec" or not isinstance(data, dict):
            continue
        if "alias_of" in data:
            aliases[key] = str(data["alias_of"])
            continue
        mode = data.get("mode")
        if mode not in TOKEN_MODES:
            report.skipped[key] = f"mode {mode!r} is not priced per token by this book"
            continue
        if "litellm_provider" not in data:
            report.skipped[key] = "no litellm_provider"
            continue
        if not {"input_cost_per_token", "output_cost_per_token"} <= set(data):
            report.skipped[key] = "no input_cost_per_token/output_cost_per_token"
            continue
        entry, ignored = convert_entry(key, data, effective_from)
        ident = (entry["provider"], entry["model"])
        if ident in seen:
            first = seen[ident]
            same = convert_entry(first, prices[first], effective_from)[0] == entry
            report.skipped[key] = f"same provider/model as {first!r}; first one kept" + (
                "" if same else " (CONFLICTING prices: check which is right)"
            )
            continue
        seen[ident] = key
        entries.append(entry)
        if ignored:
            report.ignored_prices[key] = ignored
        noisy = [
            k for k, v in data.items() if "cost" in k and isinstance(v, float) and needs_rounding(v)
        ]
        if noisy:
            report.rounded[key] = noisy
        report.imported += 1
    _add_aliases(aliases, prices, entries, seen, report)
    book = PriceBook.model_validate(
        {"name": name, "version": version, "currency": "USD", "entries": entries}
    )
    return book, report
