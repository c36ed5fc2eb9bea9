"""The HTML report opened in headless Chromium, offline: no console error, every chart
drawn, nothing fetched from the network; the screenshot is kept in test-artifacts/.

Chromium is Debian's (``apt-get install -y chromium``; .ci/run installs it), driven by
the playwright package; playwright's own browser download is never used (no internet
here). The page's figures are checked against the reference in
tests/unit/test_html_report.py; this test checks what a person sees.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from pipeline.query.analytics import Slice
from pipeline.render.html_report import CHART_IDS
from pipeline.runtime.html_report import write_html_report
from tests.chdb import chdb_database
from tests.html_report_data import load_report_data

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
# No network here: nothing in the browser may try to reach out (updates, sync, QUIC).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every chart div holds plotly's drawing and at least one drawn trace.
ALL_DRAWN = """() => {
    const charts = [...document.querySelectorAll('.plotly-graph-div')];
    return charts.length > 0 && charts.every(
        c => c.querySelector('svg.main-svg') && c.querySelector('g.trace'));
}"""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    with chdb_database(tmp_path / "ch", "hb") as db:
        yield db


def test_the_report_renders_every_chart_offline_without_errors(client: Any, tmp_path: Path) -> None:
    if not (CHROMIUM.is_file() or shutil.which("chromium")):
        pytest.fail(
            "headless Chromium is missing: install Debian's package with "
            "`apt-get update && apt-get install -y chromium` (.ci/run does this); "
            "do not run `playwright install` (no internet here)"
        )
    from playwright.sync_api import ConsoleMessage, Request, sync_playwright

    load_report_data(client)
    written = write_html_report(client, Slice(), tmp_path / "report.html")
    print(f"\n{written.describe()}")

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM if CHROMIUM.is_file() else shutil.which("chromium")),
            args=CHROMIUM_ARGS,
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            def on_console(message: ConsoleMessage) -> None:
                if message.type == "error":
                    errors.append(f"console: {message.text}")

            def on_request(request: Request) -> None:
                requests.append(request.url)

            page.on("console", on_console)
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on("request", on_request)
            page.goto(written.path.as_uri(), wait_until="load")
            page.wait_for_function(ALL_DRAWN, timeout=60_000)
            drawn = page.eval_on_selector_all(
                ".plotly-graph-div",
                "charts => charts.map(c => [c.id, c.querySelectorAll('g.trace').length])",
            )
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "html-report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    print(f"screenshot: {shot}")

    assert not errors, errors
    assert {chart for chart, _ in drawn} == {*CHART_IDS, "chart-ab-0"}
    assert all(traces > 0 for _, traces in drawn), drawn
    # The page and nothing else: plotly.js is inlined, no fonts or scripts fetched.
    assert {urlparse(url).scheme for url in requests} <= {"file", "data", "blob"}, requests
    assert shot.stat().st_size > 50_000  # a drawn page, not a blank one
