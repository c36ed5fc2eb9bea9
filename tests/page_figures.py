"""Reads the charts back out of an HTML report page: what plotly.js is handed."""

from __future__ import annotations

import json
import re
from typing import Any

_NEW_PLOT = re.compile(r'Plotly\.newPlot\(\s*"(?P<id>[^"]+)",\s*')


def figures(page: str) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]:
    """``{div id: (traces, layout)}`` for every ``Plotly.newPlot`` call in the page."""
    decoder = json.JSONDecoder()
    found = {}
    for match in _NEW_PLOT.finditer(page):
        traces, end = decoder.raw_decode(page, match.end())
        rest = page[end:].lstrip()
        assert rest.startswith(","), rest[:40]
        layout, _ = decoder.raw_decode(rest[1:].lstrip())
        found[match["id"]] = (traces, layout)
    return found
