"""The commands that read ClickHouse: report, compare, whatif, fixed-costs, access-sql."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pipeline.cli_support import compiled_book, reading_client, utc_time
from pipeline.errors import CostflowError


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline.render.report import full_report, render_reprices
    from pipeline.runtime.reprice import comparison
    from pipeline.runtime.run_state import unfinished

    where = _slice(args)
    client = reading_client(args.settings)
    why = unfinished(args.settings.stack.data_dir) if args.settings.kafka.embedded else None
    if why:  # first: every figure below (its "final" too) is subject to it
        print(f"{why}.\n")
    print(full_report(client, where, args.top))
    reprices = render_reprices(comparison(client))
    if reprices:
        print("\n" + reprices)
    if args.html:
        from pipeline.runtime.html_report import write_html_report

        written = write_html_report(client, where, Path(args.html), [f"{why}."] if why else [])
        sys.stderr.write(written.describe() + "\n")
    return 0


def _slice(args: argparse.Namespace) -> Any:
    from pipeline.query.analytics import Slice

    return Slice(
        since=utc_time(args.since, "--since").date() if args.since else None,
        until=utc_time(args.until, "--until").date() if args.until else None,
        scenario_id=args.scenario,
        owner=getattr(args, "owner", None),
        environment=getattr(args, "environment", None),
    )


def cmd_compare(args: argparse.Namespace) -> int:
    from pipeline.query.compare import compare
    from pipeline.render.compare import render_comparison

    if (args.a is None) != (args.b is None):
        raise CostflowError("give both --a and --b, or neither (the two largest arms)")
    dimension: Literal["model", "experiment"] = "experiment" if args.experiment else "model"
    result = compare(reading_client(args.settings), dimension, _slice(args), args.a, args.b)
    print(render_comparison(args.scenario, result))
    return 0


def _growth(text: str) -> Any:
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text.lower().removesuffix("x"))
    except InvalidOperation:
        raise CostflowError(f"--growth {text!r}: expected a factor such as 10x or 1.5") from None
    # Money is summed in a 50-digit context: a factor beyond a million-fold says nothing
    # a planner can use and only risks overflowing it.
    if not value.is_finite() or not Decimal(0) < value <= Decimal(1_000_000):
        raise CostflowError(f"--growth {text!r} must be above zero and at most 1000000x")
    return value


def cmd_whatif(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from pipeline.query.whatif import what_if
    from pipeline.render.whatif import render_what_if

    at = utc_time(args.at, "--at") if args.at else datetime.now(UTC)
    client, book = reading_client(args.settings), compiled_book(args.book, args.settings)
    result = what_if(client, book, _slice(args), args.model, at, args.replace, _growth(args.growth))
    print(render_what_if(result))
    return 0


def cmd_fixed_costs(args: argparse.Namespace) -> int:
    from pipeline.pricing.fixed_costs import load_fixed_costs
    from pipeline.query import fixed_costs
    from pipeline.render.report import full_cost_section

    client = reading_client(args.settings)
    if args.action == "load":
        if not args.file:
            raise CostflowError("fixed-costs load needs a FILE (YAML declaration)")
        declaration, source = load_fixed_costs(Path(args.file))
        loaded_at = fixed_costs.load(client, declaration, source)
        print(f"loaded {len(declaration.items)} fixed cost items from {source} at {loaded_at}")
    from pipeline.query.report import scenario_summary

    where = _slice(args)
    incomplete = frozenset(
        line.scenario_id for line in scenario_summary(client, where) if line.unpriced_calls
    )
    print(full_cost_section(client, where, incomplete))
    return 0


def cmd_access_sql(args: argparse.Namespace) -> int:
    from pipeline.clickhouse.access import load_plan, password_sha256, render_sql

    plan = load_plan(Path(args.teams))
    password = os.environ.get("COSTFLOW_SINK_PASSWORD")
    if args.sink_password_file:
        password = Path(args.sink_password_file).read_text(encoding="utf-8").strip()
    if not password:
        sys.stderr.write(
            "costflow: no COSTFLOW_SINK_PASSWORD or --sink-password-file: "
            "roles and policies only, no sink user\n"
        )
    sys.stdout.write(render_sql(plan, password_sha256(password) if password else None))
    return 0


def _period_flags(parser: argparse.ArgumentParser, *, required_scenario: bool) -> None:
    parser.add_argument("--scenario", required=required_scenario, help="only this scenario")
    parser.add_argument("--since", help="first UTC day (YYYY-MM-DD) of the tasks' first event")
    parser.add_argument("--until", help="last UTC day (inclusive)")


def add_parsers(sub: Any) -> None:
    """The reading commands' parsers (handlers in COMMANDS)."""
    report = sub.add_parser(
        "report", help="cost per accepted outcome, waste, tails and costliest tasks per scenario"
    )
    report.add_argument("--scenario", help="only this scenario")
    report.add_argument("--owner", help="only this owner (team)")
    report.add_argument("--environment", help="only this environment")
    report.add_argument("--since", help="first UTC day (YYYY-MM-DD) of the tasks' first event")
    report.add_argument("--until", help="last UTC day (inclusive)")
    report.add_argument("--top", type=int, default=5, help="costliest tasks to list (default 5)")
    report.add_argument("--html", metavar="FILE", help="also write the report as a page of charts")
    compare = sub.add_parser(
        "compare", help="decision template for a scenario: models or experiment arms, A vs B"
    )
    _period_flags(compare, required_scenario=True)
    compare.add_argument(
        "--experiment",
        action="store_true",
        help="arms are attributes.experiment labels (default: models)",
    )
    compare.add_argument("--a", help="first arm (default: the two largest arms)")
    compare.add_argument("--b", help="second arm")
    whatif = sub.add_parser(
        "whatif", help="estimate: a scenario's real traffic at another model's prices"
    )
    _period_flags(whatif, required_scenario=True)
    whatif.add_argument(
        "--model",
        help="target: MODEL or PROVIDER/MODEL (none: the same calls at --growth, fixed costs "
        "as declared)",
    )
    whatif.add_argument("--replace", help="only move the calls of this model (default: all)")
    whatif.add_argument("--growth", default="1", help="volume factor, e.g. 10x (default 1)")
    whatif.add_argument("--at", help="price at this time (default: now)")
    whatif.add_argument("--book", help="price book directory (default: the worker's)")
    fixed = sub.add_parser(
        "fixed-costs", help="fixed costs: load a YAML declaration, show full scenario cost"
    )
    fixed.add_argument("action", choices=["load", "show"])
    fixed.add_argument("file", nargs="?", help="YAML declaration (load)")
    _period_flags(fixed, required_scenario=False)
    access = sub.add_parser(
        "access-sql", help="SQL for a ClickHouse server: BI roles, team row policies, sink user"
    )
    access.add_argument("--teams", required=True, help="YAML: teams and their owners")
    access.add_argument("--sink-password-file", help="file holding the sink user's password")


Handler = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Handler] = {
    "report": cmd_report,
    "compare": cmd_compare,
    "whatif": cmd_whatif,
    "fixed-costs": cmd_fixed_costs,
    "access-sql": cmd_access_sql,
}
