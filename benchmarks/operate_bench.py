"""What an operator and an analyst wait for, on the analytics benchmark's database:
the HTML report, the terminal report, and every Grafana panel query.

.venv/bin/python -m benchmarks.analytics_bench --dir /work/bench50m   # builds it (kept)
.venv/bin/python -m benchmarks.operate_bench --dir /work/bench50m

Each panel query is expanded as the ClickHouse plugin expands it (the dashboards
test's expansion: every variable at All, the benchmark's 30 days as the time range)
and run ``--runs`` times; the report is built twice (the first run also pays for
cold caches). Prints figures and writes benchmarks/results/operate.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import clickhouse_connect

from benchmarks.results_file import write_result
from pipeline.clickhouse.migrate import migrate
from pipeline.query.analytics import Slice
from pipeline.query.report import health
from pipeline.render.report import full_report
from pipeline.runtime.html_report import write_html_report

RANGE = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 31, tzinfo=UTC))


def time_panels(client: Any, runs: int) -> dict[str, float]:
    """Median milliseconds of every ClickHouse panel query, by dashboard / panel."""
    from tests.unit import test_grafana_dashboards as boards

    timings: dict[str, float] = {}
    for name, board in boards.dashboards().items():
        options = boards.options_of(client, board)
        everything: dict[str, str | list[str]] = {v: ["$__all"] for v in options}
        everything["task_id"] = client.query(
            "SELECT task_id FROM v_costliest_tasks ORDER BY total_cost DESC LIMIT 1"
        ).result_rows[0][0]
        for panel in boards.panels(board):
            for n, target in enumerate(panel.get("targets", [])):
                if not boards.is_clickhouse(target):
                    continue
                sql = boards.expand(target["rawSql"], everything, options, *RANGE)
                client.query(sql)  # warm once
                took = []
                for _ in range(runs):
                    started = time.perf_counter()
                    client.query(sql)
                    took.append((time.perf_counter() - started) * 1000)
                label = f"{name} / {panel['title']}" + (f" [{n}]" if n else "")
                timings[label] = statistics.median(took)
                sys.stderr.write(f"  {timings[label]:8.1f} ms  {label}\n")
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="analytics_bench's chDB dir")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/operate.json"))
    args = parser.parse_args(argv)
    client = clickhouse_connect.get_client(dsn=f"chdb://{args.dir}", database="bench")
    migrate(client)  # views added since the database was built
    calls = client.query("SELECT count() FROM calls").result_rows[0][0]
    sys.stderr.write(f"{calls:,} calls in {args.dir}\n")

    where = Slice()
    html_runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for run in range(2):
            started = time.perf_counter()
            written = write_html_report(client, where, Path(scratch) / f"report{run}.html")
            html_runs.append({"total_s": time.perf_counter() - started,
                              "queries_s": written.query_s, "page_s": written.render_s,
                              "bytes": written.size})  # fmt: skip
            sys.stderr.write(f"html report run {run + 1}: {html_runs[-1]}\n")
    started = time.perf_counter()
    full_report(client, where, 10)
    terminal_s = time.perf_counter() - started
    started = time.perf_counter()
    health(client)
    health_s = time.perf_counter() - started
    sys.stderr.write(f"terminal report {terminal_s:.2f} s (health alone {health_s:.2f} s)\n")

    sys.stderr.write("panel queries (median of each):\n")
    panels = time_panels(client, args.runs)
    slowest = max(panels, key=lambda k: panels[k])
    sys.stderr.write(f"slowest panel: {panels[slowest]:.1f} ms  {slowest}; "
                     f"median {statistics.median(panels.values()):.1f} ms over {len(panels)}; "
                     f"{sum(1 for v in panels.values() if v > 200)} over 200 ms\n")  # fmt: skip
    write_result(args.out, {
        "calls": calls, "html_report": html_runs, "terminal_report_s": terminal_s,
        "health_s": health_s, "panels_median_ms": panels,
        "slowest_panel": {"panel": slowest, "ms": panels[slowest]},
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
