"""Price-list importers: a community or vendor price list in, a price book out.

Each importer is a module here with ``convert(raw: bytes, effective_from, version)
-> (PriceBook, ImportReport)``; register it in :data:`IMPORTERS` under the name
``costflow pricing import SOURCE`` takes. This package owns what every import
shares: the version label (``YYYY.MM.DD-<sha8 of the input>`` unless given), the
day an undated list is assumed to apply from, and writing the book with its
report. Pure but for :func:`import_file`'s reading and writing of files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.pricing.book import PriceBook
from pipeline.pricing.importers.history import UpdateResult, book_entries, update_underlay
from pipeline.pricing.importers.litellm import import_litellm
from pipeline.pricing.importers.report import ImportReport

Converter = Callable[[bytes, datetime, str], tuple[PriceBook, ImportReport]]


def _litellm(raw: bytes, effective_from: datetime, version: str) -> tuple[PriceBook, ImportReport]:
    return import_litellm(json.loads(raw), effective_from, version)


# source name -> converter
IMPORTERS: dict[str, Converter] = {"litellm": _litellm}


def default_version(raw: bytes, effective_from: datetime) -> str:
    """``YYYY.MM.DD-<first 8 hex of sha256(raw)>``: the same input gives the same label."""
    return f"{effective_from:%Y.%m.%d}-{hashlib.sha256(raw).hexdigest()[:8]}"


def import_file(
    source: str,
    path: Path,
    out: Path,
    effective_from: datetime | None = None,
    version: str | None = None,
) -> tuple[PriceBook, ImportReport]:
    """Convert the file at ``path`` with the ``source`` importer and write the book
    and ``import-report.json`` to ``out``. Without ``effective_from`` the list says
    nothing about since when its prices apply: they are assumed in force since the
    beginning (flagged ``effective_from_assumed``), so earlier calls are priced, as
    ``pricing update`` does. Raises ConfigError for an unknown source."""
    from pipeline.pricing import tools
    from pipeline.pricing.importers.history import BEGINNING

    if source not in IMPORTERS:
        raise ConfigError(f"no importer for {source!r}; choose one of {sorted(IMPORTERS)}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the {source} price list {path}: {exc.strerror or exc}; pass the "
            "path of the list's JSON file"
        ) from None
    effective = effective_from or BEGINNING
    label = version or default_version(raw, effective_from or datetime.now(UTC))
    book, report = IMPORTERS[source](raw, effective, label)
    if effective_from is None:
        book = book.model_copy(
            update={
                "entries": tuple(
                    e.model_copy(update={"effective_from_assumed": True}) for e in book.entries
                )
            }
        )
    tools.write_book(book, out)
    report.write(out)
    return book, report


def installed_litellm_list() -> tuple[bytes, str]:
    """The price list inside the installed ``litellm`` package, and its version.

    Raises ConfigError if litellm is not installed (it is not a costflow dependency).
    """
    from importlib import metadata, util

    spec = util.find_spec("litellm")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "litellm is not installed; `pip install litellm` or pass --from-litellm FILE "
            "(its model_prices_and_context_window.json)"
        )
    path = Path(spec.origin).parent / "model_prices_and_context_window_backup.json"
    return path.read_bytes(), metadata.version("litellm")


def update_book(
    book_dir: Path,
    source: str,
    raw: bytes,
    source_version: str,
    effective_from: datetime | None = None,
) -> UpdateResult:
    """Regenerate ``source``'s underlay of the book at ``book_dir`` from ``raw``,
    adding dated history (see :mod:`pipeline.pricing.importers.history`). Raises
    ConfigError for an unknown source or a book directory without ``book.yaml``."""
    if source not in IMPORTERS:
        raise ConfigError(f"no importer for {source!r}; choose one of {sorted(IMPORTERS)}")
    if not (book_dir / "book.yaml").exists():
        raise ConfigError(f"{book_dir} is not a price book directory (no book.yaml)")
    # Changes apply from the moment of the update: calls already priced today keep
    # the prices that were in force for them.
    effective = effective_from or datetime.now(UTC).replace(microsecond=0)
    book, report = IMPORTERS[source](raw, effective, "import")
    return update_underlay(book_dir, source, source_version, book_entries(book), report, effective)


def update_book_from_genai_prices(
    book_dir: Path, effective_from: datetime | None = None
) -> UpdateResult:
    """Regenerate the ``genai-prices`` underlay from the installed ``genai_prices``
    package (its own dated history). Raises ConfigError if it is not installed."""
    from importlib import metadata, util

    if util.find_spec("genai_prices") is None:
        raise ConfigError("genai-prices is not installed; `pip install genai-prices`")
    if not (book_dir / "book.yaml").exists():
        raise ConfigError(f"{book_dir} is not a price book directory (no book.yaml)")
    from genai_prices import data

    from pipeline.pricing.importers.genai_prices import import_genai_prices

    entries, report = import_genai_prices(list(data.providers))
    effective = effective_from or datetime.now(UTC).replace(microsecond=0)
    version = metadata.version("genai-prices")
    return update_underlay(
        book_dir, "genai-prices", version, entries, report, effective, dated_by_source=True
    )


__all__ = [
    "IMPORTERS",
    "ImportReport",
    "default_version",
    "import_file",
    "installed_litellm_list",
    "update_book",
    "update_book_from_genai_prices",
]
