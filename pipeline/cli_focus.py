"""`costflow focus export`: a month of FinOps FOCUS rows, CSV or Parquet (pipeline.query.focus)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pipeline.cli_support import compiled_book, reading_client
from pipeline.errors import FocusExportError


def _progress(stream: IO[str], every_s: float = 1.0) -> Callable[[int], None]:
    """Bytes written, to stderr at most once per ``every_s`` (long exports show life)."""
    last = [time.monotonic()]

    def report(written: int) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0] = now
            stream.write(f"costflow focus export: {written / 1e6:.1f} MB written\n")
            stream.flush()

    return report


def cmd_focus(args: argparse.Namespace) -> int:
    from pipeline.query.focus import export_month, parse_month

    month = parse_month(args.month)  # a bad --month fails before anything is read
    books = [compiled_book(path, args.settings) for path in (args.book or [None])]
    client = reading_client(args.settings)
    output = Path(args.output) if args.output else None
    if output is None and sys.stdout.isatty() and args.format == "parquet":
        raise FocusExportError("Parquet is binary: give --output FILE (or pipe stdout)")
    progress = _progress(sys.stderr)
    if output is None:
        summary = export_month(
            client, books, month, args.format, sys.stdout.buffer, args.version, progress
        )
        sys.stdout.buffer.flush()
    else:
        # Written beside the target and renamed when complete: a failed export never
        # leaves a half-written file under the name a FinOps tool picks up.
        partial = output.with_name(output.name + ".partial")
        try:
            with partial.open("wb") as out:
                summary = export_month(
                    client, books, month, args.format, out, args.version, progress
                )
            partial.replace(output)
        finally:
            partial.unlink(missing_ok=True)
    left_out = (
        f"; {summary.unpriced_calls} unpriced calls left out (no price to report)"
        if summary.unpriced_calls
        else ""
    )
    if summary.rows == 0:
        sys.stderr.write(
            f"costflow focus export: no priced calls in {month:%Y-%m} (UTC): the export holds "
            "no rows. If calls were expected, check --month (`costflow report --since "
            "--until` shows which days have calls) or price them first (`costflow reprice`)\n"
        )
    from pipeline.query.focus import month_bounds

    if month_bounds(month)[1] > datetime.now(UTC):
        sys.stderr.write(
            f"costflow focus export: {month:%Y-%m} is not over: the rows cover its calls "
            "so far; export it again after the month closes for the whole billing period\n"
        )
    sys.stderr.write(
        f"costflow focus export: FOCUS {summary.version} {summary.format}, {month:%Y-%m}: "
        f"{summary.rows} rows, {summary.calls} calls, billed {summary.billed_cost.normalize():f} "
        f"{summary.currency or '(no currency: no priced call)'} "
        f"(list {summary.list_cost.normalize():f}){left_out}"
        + (f"; wrote {output}" if output else "")
        + "\n"
    )
    return 0


def add_parsers(sub: Any) -> None:
    """``focus export``'s parser (handler in COMMANDS)."""
    focus = sub.add_parser("focus", help="FinOps FOCUS export of a month's priced calls")
    focus_sub = focus.add_subparsers(dest="focus_command", required=True)
    export = focus_sub.add_parser(
        "export",
        help="one month as FOCUS 1.2/1.3 rows (hour x model x usage class), CSV or Parquet",
    )
    export.add_argument("--month", required=True, help="UTC calendar month, YYYY-MM")
    export.add_argument("--format", choices=["csv", "parquet"], default="csv")
    export.add_argument("--version", choices=["1.2", "1.3"], default="1.2", help="FOCUS version")
    export.add_argument("--output", help="file to write (default: stdout)")
    export.add_argument(
        "--book",
        action="append",
        help="price book that priced the month's calls (default: the worker's); repeat for "
        "several versions",
    )


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"focus": cmd_focus}
