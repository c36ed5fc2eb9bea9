"""What an import could not carry into the book, entry by entry: never skipped silently."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ImportReport:
    imported: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # key -> reason
    ignored_prices: dict[str, list[str]] = field(default_factory=dict)  # key -> price fields
    rounded: dict[str, list[str]] = field(default_factory=dict)  # key -> fields rounded
    aliased: dict[str, str] = field(default_factory=dict)  # alias key -> the key it prices as

    def summary(self) -> str:
        ignored = sum(len(v) for v in self.ignored_prices.values())
        return (
            f"imported {self.imported} entries and {len(self.aliased)} aliases; "
            f"skipped {len(self.skipped)} entries; "
            f"{ignored} price fields on {len(self.ignored_prices)} imported entries have "
            "no dimension in the book (per-second, per-image, range-tiered, ...); "
            f"{sum(len(v) for v in self.rounded.values())} prices rounded to 12 decimals "
            "per million tokens"
        )

    def write(self, directory: Path) -> Path:
        """``import-report.json`` beside the book it describes."""
        return self.write_as(directory / "import-report.json")

    def write_as(self, path: Path) -> Path:
        """The report as JSON at ``path``."""
        content = {
            "skipped": self.skipped,
            "ignored_prices": self.ignored_prices,
            "rounded": self.rounded,
            "aliased": self.aliased,
        }
        path.write_text(json.dumps(content, indent=2, sort_keys=True))
        return path
