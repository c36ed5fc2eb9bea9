"""Dated price history built up from undated price lists (``costflow pricing update``).

Community lists (LiteLLM's) say what a model costs now, not since when. So:

- the first time a model is imported its price is *assumed* in force since the
  beginning of time (``effective_from`` 1970-01-01, ``effective_from_assumed: true``),
  so last month's calls are priced rather than refused;
- each later import adds a new dated entry only where a price changed, in force from
  that import's date; unchanged models get nothing new;
- a model the list no longer has keeps its history (its last price stays in force)
  and is reported.

A call is therefore always priced with what was known to be in force at its event
time. The layer is an underlay file of the book (``community/<source>.json``), kept
under the book's own, curated entries.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.errors import ConfigError, PriceBookInvalid
from pipeline.pricing.book import PriceBook, Underlay, prices_of, read_underlay
from pipeline.pricing.importers.report import ImportReport

BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class HistoryChanges:
    """What an import changed in a layer: ``provider/model`` names, and for a price
    change the old and new prices with the date the new ones apply from."""

    added: list[str] = field(default_factory=list)
    changed: list[tuple[str, dict[str, Any], dict[str, Any], str]] = field(default_factory=list)
    no_longer_listed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed)

    def lines(self, limit: int = 20) -> list[str]:
        """A summary and up to ``limit`` price changes, for people."""
        out = [
            f"{len(self.added)} models added (an undated first price is assumed in force since "
            "the beginning), "
            f"{len(self.changed)} prices changed, {len(self.no_longer_listed)} models no "
            "longer listed (their last price stays in force)"
        ]
        for label, names in (("added", self.added), ("no longer listed", self.no_longer_listed)):
            if names:
                shown = ", ".join(names[:limit])
                more = f" and {len(names) - limit} more" if len(names) > limit else ""
                out.append(f"  {label}: {shown}{more}")
        for name, old, new, since in self.changed[:limit]:
            moved = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            detail = ", ".join(f"{k} {old.get(k)} -> {new.get(k)}" for k in moved)
            out.append(f"  {name}: {detail} (from {since})")
        if len(self.changed) > limit:
            out.append(f"  ... and {len(self.changed) - limit} more")
        return out


def merge_history(
    existing: list[dict[str, Any]], fresh: list[dict[str, Any]], effective: datetime
) -> tuple[list[dict[str, Any]], HistoryChanges]:
    """Add ``fresh`` (one entry per model, undated) to ``existing`` (dated history).

    Returns the merged entries (sorted by provider, model, effective_from) and the
    changes. Raises ConfigError if ``effective`` is not after a changed model's latest
    entry (history only grows forward).
    """
    history: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in existing:
        history.setdefault((entry["provider"], entry["model"]), []).append(dict(entry))
    changes = HistoryChanges()
    listed: set[tuple[str, str]] = set()
    since = effective.astimezone(UTC).isoformat()
    for entry in fresh:
        key = (entry["provider"], entry["model"])
        listed.add(key)
        entries = history.get(key)
        name = f"{key[0]}/{key[1]}"
        if not entries:
            first = {**entry, "effective_from": BEGINNING.isoformat()}
            history[key] = [{**first, "effective_from_assumed": True}]
            changes.added.append(name)
            continue
        latest = max(entries, key=lambda e: datetime.fromisoformat(e["effective_from"]))
        if prices_of(latest) == prices_of(entry):
            aliases = sorted({*latest.get("aliases", ()), *entry.get("aliases", ())})
            if aliases:
                latest["aliases"] = aliases
            continue
        if datetime.fromisoformat(latest["effective_from"]) >= effective:
            raise ConfigError(
                f"{name}: the list's price differs from the entry in force since "
                f"{latest['effective_from']}, but this import is dated {since}; pass a "
                "later --effective-from"
            )
        entries.append({**entry, "effective_from": since})
        changes.changed.append((name, prices_of(latest), prices_of(entry), since))
    changes.added.sort()
    changes.no_longer_listed = sorted(f"{p}/{m}" for p, m in history if (p, m) not in listed)
    merged = [
        entry
        for key in sorted(history)
        for entry in sorted(history[key], key=lambda e: datetime.fromisoformat(e["effective_from"]))
    ]
    return merged, changes


def replace_histories(
    existing: list[dict[str, Any]], fresh: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], HistoryChanges]:
    """For a source that dates its own price changes (genai-prices): each model it
    lists gets the source's history; a model it no longer lists keeps its own."""

    def grouped(entries: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
        out: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for entry in entries:
            out.setdefault((entry["provider"], entry["model"]), []).append(entry)
        return out

    def unsourced(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.items() if k != "source"} for e in entries]

    old, new = grouped(existing), grouped(fresh)
    changes = HistoryChanges()
    for key, entries in list(new.items()):
        name = f"{key[0]}/{key[1]}"
        before = old.get(key)
        if before is None:
            changes.added.append(name)
        elif unsourced(before) == unsourced(entries):
            new[key] = before  # unchanged: keeps the import it came from
        else:
            latest_old = max(before, key=lambda e: datetime.fromisoformat(e["effective_from"]))
            latest_new = max(entries, key=lambda e: datetime.fromisoformat(e["effective_from"]))
            changes.changed.append(
                (name, prices_of(latest_old), prices_of(latest_new), latest_new["effective_from"])
            )
    changes.added.sort()
    changes.no_longer_listed = sorted(f"{p}/{m}" for p, m in old if (p, m) not in new)
    merged = {**{k: v for k, v in old.items() if k not in new}, **new}
    flat = [
        entry
        for key in sorted(merged)
        for entry in sorted(merged[key], key=lambda e: datetime.fromisoformat(e["effective_from"]))
    ]
    return flat, changes


def book_entries(book: PriceBook) -> list[dict[str, Any]]:
    """A converted book's entries as underlay data (undated: history dates them)."""
    out = []
    for entry in book.entries:
        data = entry.model_dump(mode="json", exclude_defaults=True)
        data["effective_from"] = entry.effective_from.isoformat()
        out.append(data)
    return out


def _check(entries: list[dict[str, Any]], source: str) -> None:
    """Validate and compile the layer on its own, so a bad import never lands."""
    from pipeline.pricing.engine import CompiledBook

    try:
        CompiledBook(PriceBook.model_validate({"name": source, "version": "check",
                                               "entries": entries}))  # fmt: skip
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PriceBookInvalid(
            f"the {source} import is not a valid book: {exc.error_count()} problem(s); first at "
            f"{where}: {first['msg']}; nothing was written"
        ) from None


@dataclass
class UpdateResult:
    """Where the layer went, what changed, and the book's version after."""

    path: Path
    changes: HistoryChanges
    report: ImportReport
    version: str


def update_underlay(
    book_dir: Path,
    source: str,
    source_version: str,
    fresh: list[dict[str, Any]],
    report: ImportReport,
    effective: datetime,
    dated_by_source: bool = False,
) -> UpdateResult:
    """Merge a converted list into ``book_dir/community/<source>.json``, list it as an
    underlay in ``book.yaml`` (after those already listed: the first that prices a
    model wins) and, if anything changed, give the book a new version
    (``YYYY.MM.DD-<sha8 of the layer>``), so rows priced with it say so.

    ``dated_by_source``: the source dates its own changes (its history replaces the
    layer's); otherwise history is built up import by import. Raises PriceBookInvalid
    if the result is not a valid book.
    """
    path = book_dir / "community" / f"{source}.json"
    existing = read_underlay(path).entries if path.exists() else []
    # Each entry says which import it came from; an unchanged price keeps its own.
    fresh = [{**entry, "source": f"{source} {source_version}"} for entry in fresh]
    if dated_by_source:
        merged, changes = replace_histories(existing, fresh)
    else:
        merged, changes = merge_history(existing, fresh, effective)
    _check(merged, source)
    layer = Underlay(source=source, source_version=source_version, entries=merged)
    body = json.dumps(layer.model_dump(mode="json"), indent=1, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    report.write_as(path.parent / f"{source}-import-report.json")
    header_path = book_dir / "book.yaml"
    header = header_path.read_text(encoding="utf-8")
    relative = f"community/{source}.json"
    if relative not in header:
        if re.search(r"^underlays:", header, flags=re.M):
            header = header.rstrip("\n") + f"\n  - {relative}\n"
        else:
            header = header.rstrip("\n") + f"\nunderlays:\n  - {relative}\n"
    match = re.search(r'^version:\s*"?([^"\n]+)"?\s*$', header, flags=re.M)
    if match is None:
        raise ConfigError(f"{header_path}: no version line to update")
    version = match.group(1)
    if changes or not existing:
        digest = hashlib.sha256(body.encode()).hexdigest()[:8]
        version = f"{effective:%Y.%m.%d}-{digest}"
        header = header[: match.start()] + f'version: "{version}"' + header[match.end() :]
    header_path.write_text(header, encoding="utf-8")
    return UpdateResult(path, changes, report, version)
