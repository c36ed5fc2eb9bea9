"""``costflow``: a thin command line over the library.

Every flag has a ``COSTFLOW_*`` environment variable; flags win.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pipeline.errors import CostflowError

if TYPE_CHECKING:
    from pipeline.config import Settings

_GLOBAL_FLAGS = {
    "data_dir": "COSTFLOW_DATA_DIR",
    "kafka_bootstrap": "COSTFLOW_KAFKA_BOOTSTRAP",
    "clickhouse_dsn": "COSTFLOW_CLICKHOUSE_DSN",
    "database": "COSTFLOW_CLICKHOUSE_DATABASE",
    "price_book": "COSTFLOW_WORKER_PRICE_BOOK_DIR",
}


def _settings() -> Settings:
    from pipeline.config import Settings

    return Settings()


def _client() -> Any:
    from pipeline.query.client import connect

    settings = _settings()
    return connect(settings.clickhouse, settings.stack)


def cmd_broker(_args: argparse.Namespace) -> int:
    import signal

    from pipeline.embedded.broker import EmbeddedBroker

    def interrupt(*_: object) -> None:
        # Stopping happens in the main flow: Popen.wait is not re-entrant.
        raise KeyboardInterrupt

    settings = _settings()
    broker = EmbeddedBroker(port=settings.kafka.embedded_port).start()
    print(
        f"costflow: embedded broker listening on {broker.bootstrap} (Ctrl-C stops it)", flush=True
    )
    signal.signal(signal.SIGTERM, interrupt)
    assert broker.process is not None
    try:
        return broker.process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()


def cmd_worker(_args: argparse.Namespace) -> int:
    from pipeline.runtime.worker import run_worker

    run_worker(_settings())
    return 0


def cmd_sink(_args: argparse.Namespace) -> int:
    from pipeline.sink.runner import run_sink

    run_sink(_settings())
    return 0


def cmd_up(_args: argparse.Namespace) -> int:
    from pipeline.runtime.supervisor import Stack

    stack = Stack(_settings()).start()
    print("costflow: broker, worker and sink are up; Ctrl-C stops all", file=sys.stderr)
    try:
        return stack.wait()
    finally:
        stack.stop()


def cmd_migrate(_args: argparse.Namespace) -> int:
    from pipeline.query.migrate import migrate

    applied = migrate(_client())
    names = ", ".join(f"{m.number:04d}_{m.name}" for m in applied) or "nothing (up to date)"
    print(f"costflow: applied {names}")
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from pipeline.runtime.produce import produce_file
    from pipeline.topics import ensure_topics

    settings = _settings()
    ensure_topics(settings.kafka, settings.topics)
    sent = produce_file(settings.kafka, settings.topics, Path(args.file))
    print(f"costflow: produced {sum(sent.values()):,} records: {dict(sent)}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from pipeline.runtime.replay import replay

    result = replay(_settings(), Path(args.file), timeout_s=args.timeout)
    print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    result = _client().raw_query(args.query, fmt=args.format)
    sys.stdout.write(result.decode() if isinstance(result, bytes) else str(result))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline.query.report import full_report, render_reprices
    from pipeline.runtime.reprice import comparison

    where = _slice(args)
    client = _client()
    print(full_report(client, where, args.top))
    reprices = render_reprices(comparison(client))
    if reprices:
        print("\n" + reprices)
    return 0


def _slice(args: argparse.Namespace) -> Any:
    from pipeline.query.analytics import Slice

    return Slice(
        since=_utc_time(args.since, "--since").date() if args.since else None,
        until=_utc_time(args.until, "--until").date() if args.until else None,
        scenario_id=args.scenario,
        owner=getattr(args, "owner", None),
        environment=getattr(args, "environment", None),
    )


def cmd_compare(args: argparse.Namespace) -> int:
    from pipeline.query.compare import compare, render_comparison

    if (args.a is None) != (args.b is None):
        raise CostflowError("give both --a and --b, or neither (the two largest arms)")
    dimension: Literal["model", "experiment"] = "experiment" if args.experiment else "model"
    result = compare(_client(), dimension, _slice(args), args.a, args.b)
    print(render_comparison(args.scenario, result))
    return 0


def _growth(text: str) -> Any:
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text.lower().removesuffix("x"))
    except InvalidOperation:
        raise CostflowError(f"--growth {text!r}: expected a factor such as 10x or 1.5") from None
    if not value > 0:
        raise CostflowError(f"--growth {text!r} must be above zero")
    return value


def cmd_whatif(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from pipeline.query.whatif import render_what_if, what_if

    at = _utc_time(args.at, "--at") if args.at else datetime.now(UTC)
    result = what_if(
        _client(), _book(args.book), _slice(args), args.model, at, args.replace,
        _growth(args.growth),
    )  # fmt: skip
    print(render_what_if(result))
    return 0


def cmd_fixed_costs(args: argparse.Namespace) -> int:
    from pipeline.pricing.fixed_costs import load_fixed_costs
    from pipeline.query import fixed_costs
    from pipeline.query.report import render_full_cost

    client = _client()
    if args.action == "load":
        if not args.file:
            raise CostflowError("fixed-costs load needs a FILE (YAML declaration)")
        declaration, source = load_fixed_costs(Path(args.file))
        loaded_at = fixed_costs.load(client, declaration, source)
        print(f"loaded {len(declaration.items)} fixed cost items from {source} at {loaded_at}")
    declared = fixed_costs.items(client)
    if not declared:
        print("No fixed costs declared (costflow fixed-costs load FILE adds them).")
        return 0
    print(render_full_cost(fixed_costs.full_cost(client, _slice(args)), declared))
    return 0


def cmd_access_sql(args: argparse.Namespace) -> int:
    from pipeline.query.access import load_plan, password_sha256, render_sql

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


def _utc_time(text: str, flag: str) -> Any:
    from datetime import UTC, datetime

    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CostflowError(f"{flag} {text!r} is not a date or RFC 3339 time") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def cmd_reprice(args: argparse.Namespace) -> int:
    from pipeline.query.report import render_reprices
    from pipeline.runtime.reprice import run_reprice

    start, end = _utc_time(args.start, "--from"), _utc_time(args.end, "--to")
    result = run_reprice(
        _settings(), _book(args.book), start, end, dry_run=args.dry_run, timeout_s=args.timeout
    )
    applied = result.pop("applied", None)
    print(json.dumps(result, indent=2))
    if applied is not None:
        print(render_reprices(applied) or "nothing changed")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.runtime.demo import run_demo

    return run_demo(tasks=args.tasks, seed=args.seed)


def cmd_schemas(args: argparse.Namespace) -> int:
    from pipeline import schemas

    if args.write:
        for path in schemas.write():
            print(f"wrote {path}")
        return 0
    drift = [
        name
        for name, text in schemas.generate().items()
        if not (schemas.SCHEMA_DIR / name).exists()
        or (schemas.SCHEMA_DIR / name).read_text(encoding="utf-8") != text
    ]
    if drift:
        print(f"schemas out of date: {drift}; run costflow schemas --write", file=sys.stderr)
        return 1
    print("schemas are up to date")
    return 0


def _book(path: str | None) -> Any:
    from pipeline.pricing.book import load_price_book
    from pipeline.pricing.engine import CompiledBook

    return CompiledBook(load_price_book(Path(path) if path else _settings().worker.price_book_dir))


def cmd_price(args: argparse.Namespace) -> int:
    from pipeline.pricing.tools import price_lines

    for line in price_lines(sys.stdin.buffer, _book(args.book)):
        sys.stdout.write(line + "\n")
    return 0


def cmd_pricing(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from pipeline.pricing import tools
    from pipeline.pricing.book import load_price_book

    if args.pricing_command == "import-litellm":
        import hashlib

        from pipeline.pricing.litellm_import import import_litellm

        raw = Path(args.file).read_bytes()
        effective = (
            _utc_time(args.effective_from, "--effective-from")
            if args.effective_from
            else datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        )
        version = args.version or f"{effective:%Y.%m.%d}-{hashlib.sha256(raw).hexdigest()[:8]}"
        book, report = import_litellm(json.loads(raw), effective, version)
        tools.write_book(book, Path(args.out))
        (Path(args.out) / "import-report.json").write_text(
            json.dumps(
                {
                    "skipped": report.skipped,
                    "ignored_prices": report.ignored_prices,
                    "rounded": report.rounded,
                },
                indent=2,
                sort_keys=True,
            )
        )
        print(f"costflow: {report.summary()}; wrote {args.out} (details: import-report.json)")
        return 0
    if args.pricing_command == "validate":
        compiled = _book(args.book)
        print(f"costflow: {compiled.label} is valid: {len(compiled.book.entries)} entries")
        return 0
    if args.pricing_command == "show":
        at = _utc_time(args.at, "--at") if args.at else datetime.now(UTC)
        shown = tools.show(_book(args.book), args.provider, args.model, at)
        print(json.dumps(shown, indent=2))
        return 0
    changes = tools.diff(load_price_book(Path(args.book_a)), load_price_book(Path(args.book_b)))
    print(json.dumps(changes, indent=2))
    return 0


def cmd_dead_letter(args: argparse.Namespace) -> int:
    if args.dead_letter_command == "stats":
        from pipeline.runtime.dead_letter import DEAD_LETTER_STATS

        result = _client().raw_query(DEAD_LETTER_STATS, fmt="PrettyCompact")
        sys.stdout.write(result.decode() if isinstance(result, bytes) else str(result))
        return 0
    from pipeline.runtime.dead_letter import replay_dead_letters

    settings = _settings()
    replayed = replay_dead_letters(settings.kafka, settings.topics, reason=args.reason)
    print(f"costflow: re-submitted {sum(replayed.values()):,} dead letters: {dict(replayed)}")
    return 0


def _period_flags(parser: argparse.ArgumentParser, *, required_scenario: bool) -> None:
    parser.add_argument("--scenario", required=required_scenario, help="only this scenario")
    parser.add_argument("--since", help="first UTC day (YYYY-MM-DD) of the tasks' first event")
    parser.add_argument("--until", help="last UTC day (inclusive)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="costflow", description=__doc__)
    parser.add_argument("--data-dir", help="local state (default .costflow) [COSTFLOW_DATA_DIR]")
    parser.add_argument(
        "--kafka-bootstrap", help="Kafka bootstrap servers; unset = embedded broker"
    )
    parser.add_argument("--clickhouse-dsn", help="http(s)://host:port or chdb:///path")
    parser.add_argument("--database", help="ClickHouse database (default costflow)")
    parser.add_argument("--price-book", help="price book directory (default pricing/default)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("broker", help="run the embedded Kafka-protocol broker in the foreground")
    sub.add_parser("worker", help="run stage 1: join and price (Faust)")
    sub.add_parser("sink", help="run stage 2: write enriched records to ClickHouse")
    sub.add_parser("up", help="broker (if embedded), worker and sink as child processes")
    sub.add_parser("migrate", help="apply sql/ migrations")
    produce = sub.add_parser("produce", help="produce a JSON-lines file of events")
    produce.add_argument("file")
    replay = sub.add_parser(
        "replay", help="up, produce FILE, wait until all is in ClickHouse, stop"
    )
    replay.add_argument("file")
    replay.add_argument("--timeout", type=float, default=1800)
    sql = sub.add_parser("sql", help="run a query against ClickHouse")
    sql.add_argument("query")
    sql.add_argument("--format", default="PrettyCompact", help="any ClickHouse output format")
    report = sub.add_parser(
        "report", help="cost per accepted outcome, waste, tails and costliest tasks per scenario"
    )
    report.add_argument("--scenario", help="only this scenario")
    report.add_argument("--owner", help="only this owner (team)")
    report.add_argument("--environment", help="only this environment")
    report.add_argument("--since", help="first UTC day (YYYY-MM-DD) of the tasks' first event")
    report.add_argument("--until", help="last UTC day (inclusive)")
    report.add_argument("--top", type=int, default=5, help="costliest tasks to list (default 5)")
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
    whatif.add_argument("--model", required=True, help="target: MODEL or PROVIDER/MODEL")
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
    demo = sub.add_parser("demo", help="generate a workload, replay it, print the report")
    demo.add_argument("--tasks", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=7)
    price = sub.add_parser("price", help="price call events (JSON lines) from stdin to stdout")
    price.add_argument("--book", help="price book directory or file")
    pricing = sub.add_parser("pricing", help="price books: import, validate, show, diff")
    pricing_sub = pricing.add_subparsers(dest="pricing_command", required=True)
    imp = pricing_sub.add_parser("import-litellm", help="convert LiteLLM's price JSON to a book")
    imp.add_argument("file")
    imp.add_argument("--out", required=True)
    imp.add_argument("--effective-from", help="YYYY-MM-DD (default: today, UTC)")
    imp.add_argument("--version", help="book version (default: date and file hash)")
    validate = pricing_sub.add_parser("validate", help="load and compile a book")
    validate.add_argument("--book")
    show = pricing_sub.add_parser("show", help="the entry pricing PROVIDER MODEL at a time")
    show.add_argument("provider")
    show.add_argument("model")
    show.add_argument("--at", help="RFC 3339 time (default: now)")
    show.add_argument("--book")
    diff = pricing_sub.add_parser("diff", help="what changed between two books")
    diff.add_argument("book_a")
    diff.add_argument("book_b")
    dead = sub.add_parser("dead-letter", help="dead-lettered input: counts per reason, replay")
    dead_sub = dead.add_subparsers(dest="dead_letter_command", required=True)
    dead_sub.add_parser("stats", help="dead letters per reason and source topic (ClickHouse)")
    dead_replay = dead_sub.add_parser("replay", help="re-submit dead letters after a fix")
    dead_replay.add_argument("--reason", help="only this reason code, e.g. wrong_topic")
    reprice = sub.add_parser(
        "reprice", help="price stored calls in [--from, --to) again with a corrected book"
    )
    reprice.add_argument("--book", help="the corrected price book directory")
    reprice.add_argument("--from", dest="start", required=True, help="RFC 3339 time or date")
    reprice.add_argument("--to", dest="end", required=True, help="RFC 3339 time or date")
    reprice.add_argument("--dry-run", action="store_true", help="report, change nothing")
    reprice.add_argument("--timeout", type=float, default=1800)
    schemas = sub.add_parser("schemas", help="check (or --write) the generated JSON Schema")
    schemas.add_argument("--write", action="store_true")
    return parser


COMMANDS = {
    "broker": cmd_broker,
    "worker": cmd_worker,
    "sink": cmd_sink,
    "up": cmd_up,
    "migrate": cmd_migrate,
    "produce": cmd_produce,
    "replay": cmd_replay,
    "sql": cmd_sql,
    "report": cmd_report,
    "access-sql": cmd_access_sql,
    "compare": cmd_compare,
    "whatif": cmd_whatif,
    "fixed-costs": cmd_fixed_costs,
    "demo": cmd_demo,
    "schemas": cmd_schemas,
    "price": cmd_price,
    "pricing": cmd_pricing,
    "dead-letter": cmd_dead_letter,
    "reprice": cmd_reprice,
}


def _clickhouse_advice(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "ClickHouse error"
    if "UNKNOWN_TABLE" in message or "UNKNOWN_DATABASE" in message:
        return (
            f"{first[:300]} -- this database has no costflow tables: run `costflow migrate`, "
            "or pass --database (the demo writes to costflow_demo)"
        )
    return first[:500]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for attr, env in _GLOBAL_FLAGS.items():
        value = getattr(args, attr, None)
        if value:
            os.environ[env] = value
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return COMMANDS[args.command](args)
    except CostflowError as exc:
        print(f"costflow {args.command}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from clickhouse_connect.driver.exceptions import ClickHouseError as DriverError

        if not isinstance(exc, DriverError):
            raise
        print(f"costflow {args.command}: {_clickhouse_advice(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into head(1) and friends: not an error.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
