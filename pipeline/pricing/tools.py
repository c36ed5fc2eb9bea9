"""Library functions behind ``costflow price`` and ``costflow pricing ...`` (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import CostflowError, InvalidEvent, UnitNotPriced
from pipeline.events.decode import decode_event
from pipeline.events.models import CallEvent
from pipeline.pricing.book import PriceBook, PriceEntry, prices_of
from pipeline.pricing.engine import CallCost, CompiledBook, price_call
from pipeline.pricing.names import canonical_provider

_PARTS = (
    "input", "cache_read", "cache_write", "output", "reasoning", "audio", "image", "request",
    "units",
)  # fmt: skip


def price_lines(lines: Iterable[bytes], book: CompiledBook) -> Iterator[str]:
    """Each call event line back, with ``cost`` (Decimal strings) or ``pricing_error``."""
    for raw in lines:
        if not raw.strip():
            continue
        data: dict[str, Any]
        try:
            event = decode_event(raw, "call")
            data = json.loads(raw)
        except InvalidEvent as exc:
            yield json.dumps(
                {
                    "input": raw.decode("utf-8", "replace").rstrip("\n"),
                    "cost": None,
                    "pricing_error": f"{exc.code}: {exc}",
                }
            )
            continue
        assert isinstance(event, CallEvent)
        try:
            cost = price_call(event, book)
        except UnitNotPriced as exc:
            # Priced in part: what is known, as a lower bound, and what is not.
            data["cost"] = None
            data["pricing_error"] = f"{exc.code}: {exc}"
            if exc.known is not None:
                data["cost_at_least"] = _cost_fields(exc.known)
            data["unpriced_dimensions"] = list(exc.dimensions)
        except CostflowError as exc:
            data["cost"] = None
            data["pricing_error"] = f"{exc.code}: {exc}"
        else:
            data["cost"] = _cost_fields(cost)
        yield json.dumps(data, separators=(",", ":"))


def _plain(value: Decimal) -> str:
    """A Decimal as a plain number (never ``5E-7``): what a person and a spreadsheet read."""
    return format(value, "f")


def _cost_fields(cost: CallCost) -> dict[str, str]:
    fields = {
        "total": _plain(cost.total),
        **{part: _plain(getattr(cost, part)) for part in _PARTS},
        "currency": cost.currency,
        "price_book_version": cost.price_book_version,
        # Which entry priced it (an alias, a dated id or a normalised name resolves to it).
        "entry_model": cost.entry_model,
        "entry_effective_from": cost.entry_effective_from.isoformat(),
    }
    if cost.fx_rate is not None:
        fields["list_currency"] = cost.list_currency
        fields["fx_rate"] = _plain(cost.fx_rate)
    if cost.overlay:
        fields["overlay"] = cost.overlay
    return fields


def write_book(book: PriceBook, out: Path) -> list[Path]:
    """A book directory: book.yaml plus one entries file per provider."""
    out.mkdir(parents=True, exist_ok=True)
    header = {"name": book.name, "version": book.version, "currency": book.currency}
    written = [out / "book.yaml"]
    written[0].write_text(yaml.safe_dump(header, sort_keys=False))
    by_provider: dict[str, list[dict[str, Any]]] = {}
    for entry in book.entries:
        by_provider.setdefault(entry.provider, []).append(_entry_data(entry))
    for provider, entries in sorted(by_provider.items()):
        path = out / f"{_safe(provider)}.yaml"
        path.write_text(yaml.safe_dump({"entries": entries}, sort_keys=False, allow_unicode=True))
        written.append(path)
    for key in ("overlays", "fx_rates", "provider_rules"):
        items = [item.model_dump(mode="json", exclude_defaults=True) for item in getattr(book, key)]
        if items:
            path = out / f"_{key}.yaml"
            path.write_text(yaml.safe_dump({key: items}, sort_keys=False, allow_unicode=True))
            written.append(path)
    return written


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _entry_data(entry: PriceEntry) -> dict[str, Any]:
    data = entry.model_dump(mode="json", exclude_defaults=True)
    data["effective_from"] = entry.effective_from.isoformat()
    return data


def show(book: CompiledBook, provider: str, model: str, at: datetime) -> dict[str, Any]:
    """The entry in force at ``at``, the model's whole dated history, and the provider
    rule that prices what the entry leaves out. Raises PriceNotFound."""
    compiled = book.entry_for(provider, model, at)
    rule = book.rules.get(canonical_provider(compiled.entry.provider))
    return {
        "price_book_version": book.label,
        "in_force_at": at.isoformat(),
        **_entry_data(compiled.entry),
        "provider_rule": rule.model_dump(mode="json", exclude_defaults=True) if rule else None,
        "history": [
            {
                "effective_from": e.effective_from.isoformat(),
                "assumed": e.effective_from_assumed,
                "source": e.source or "the book",
                **prices_of(_entry_data(e)),
            }
            for e in book.history(provider, model)
        ],
    }


def diff(a: PriceBook, b: PriceBook) -> dict[str, list[str]]:
    """What changed between two books, by provider/model and effective date."""

    def index(book: PriceBook) -> dict[tuple[str, str, str], dict[str, Any]]:
        return {
            (e.provider, e.model, e.effective_from.isoformat()): _entry_data(e)
            for e in book.entries
        }

    def name(key: tuple[str, str, str]) -> str:
        if key[0] in ("provider rule", "overlay", "fx rate"):
            return f"{key[0]} {key[1]}" + (f" from {key[2]}" if key[2] else "")
        return f"{key[0]}/{key[1]} from {key[2]}"

    left, right = index(a), index(b)
    # Rules, overlays and FX rates price calls too: a change there is a price change.
    for kind, key_of in (
        ("provider_rules", lambda item: ("provider rule", item.provider, "")),
        ("overlays", lambda item: ("overlay", item.name, item.effective_from.isoformat())),
        ("fx_rates", lambda item: ("fx rate", item.currency, item.effective_from.isoformat())),
    ):
        for book, side in ((a, left), (b, right)):
            for item in getattr(book, kind):
                side[key_of(item)] = item.model_dump(mode="json", exclude_defaults=True)
    changed = []
    for key in sorted(left.keys() & right.keys()):
        if left[key] != right[key]:
            fields = sorted(
                k
                for k in left[key].keys() | right[key].keys()
                if left[key].get(k) != right[key].get(k)
            )
            changes = ", ".join(f"{f}: {left[key].get(f)} -> {right[key].get(f)}" for f in fields)
            changed.append(f"{name(key)}: {changes}")
    return {
        "added": [name(k) for k in sorted(right.keys() - left.keys())],
        "removed": [name(k) for k in sorted(left.keys() - right.keys())],
        "changed": changed,
    }
