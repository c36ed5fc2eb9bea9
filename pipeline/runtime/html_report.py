"""Writes the HTML report of a slice to a file (``costflow report --html``, the demo)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.query.analytics import Slice
from pipeline.query.charts import chart_data
from pipeline.render.html_report import render_html


@dataclass(frozen=True)
class Written:
    """Where the page went, its size in bytes, and the seconds spent reading the
    data (queries) and building the page (plotly)."""

    path: Path
    size: int
    query_s: float
    render_s: float

    def describe(self) -> str:
        return (
            f"HTML report: {self.path} ({self.size / 1e6:.1f} MB; queries "
            f"{self.query_s:.2f}s, page {self.render_s:.2f}s)"
        )


def write_html_report(
    client: Any, where: Slice, path: Path, notes: list[str] | None = None
) -> Written:
    """Read, render and write the page; the directory is created if missing. Raises
    what the client raises, and OSError when the file cannot be written."""
    started = time.monotonic()
    data = chart_data(client, where)
    read = time.monotonic()
    page = render_html(data, notes)
    rendered = time.monotonic()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return Written(path.resolve(), len(page.encode()), read - started, rendered - read)
