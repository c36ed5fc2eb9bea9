"""``costflow``: a thin command line over the library.

Every flag has a ``COSTFLOW_*`` environment variable; flags win.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import sys
import time
from collections import Counter
from pathlib import Path

from pipeline import cli_alerts, cli_analytics, cli_focus
from pipeline.cli_support import (
    clickhouse_client,
    compiled_book,
    reading_client,
    settings_from,
    utc_time,
)
from pipeline.config import Settings
from pipeline.errors import CostflowError, KafkaError


def _stop_on_signals() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt, so a foreground process stops (or
    drains) in its main flow: for a service manager's stop as for Ctrl-C, and also when
    a script started it in the background, where SIGINT arrives ignored."""
    import signal

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


def cmd_broker(args: argparse.Namespace) -> int:
    from pipeline.embedded.broker import EmbeddedBroker

    settings = args.settings
    kafka = settings.kafka
    storage = settings.stack.data_dir / "broker" if kafka.embedded_durable else None
    broker = EmbeddedBroker(port=kafka.embedded_port, storage_dir=storage).start()
    where = f"data in {storage}" if storage else "in memory: a restart loses everything"
    print(
        f"costflow: embedded broker listening on {broker.bootstrap} ({where}; Ctrl-C stops it)",
        flush=True,
    )
    _stop_on_signals()
    try:
        while True:
            for process in broker.processes():
                if process.poll() is not None:
                    return process.returncode or 1
            time.sleep(0.2)
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()


def cmd_worker(args: argparse.Namespace) -> int:
    from pipeline.runtime.worker import run_worker

    run_worker(args.settings)
    return 0


def cmd_sink(args: argparse.Namespace) -> int:
    from pipeline.runtime.sink import run_sink

    run_sink(args.settings)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from pipeline.config import IngestSettings
    from pipeline.kafka.topics import create_missing, ensure_topics
    from pipeline.runtime.ingest_otlp import OtlpIngest

    settings = args.settings
    if args.source == "http":
        from pipeline.runtime.collector import run_collector

        run_collector(
            settings.kafka, settings.topics, IngestSettings(), settings.worker.max_future_s
        )
        return 0
    overrides = {
        key: value
        for key, value in (("otlp_topic", args.topic), ("otlp_encoding", args.encoding))
        if value
    }
    ingest = IngestSettings(**overrides)
    ensure_topics(settings.kafka, settings.topics)
    topics = settings.topics
    create_missing(
        settings.kafka, [ingest.otlp_topic], topics.partitions, topics.replication_factor, 30
    )
    counts = OtlpIngest(settings.kafka, topics, ingest).run(until_end=args.until_end)
    print(
        f"ingest otlp: {counts.records:,} records, {counts.spans:,} spans, {counts.calls:,} call "
        f"events, {counts.not_model_calls:,} spans not model calls, dead-lettered "
        f"{dict(counts.dead_lettered) or 0}"
    )
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from pipeline.runtime.supervisor import Stack

    _stop_on_signals()
    started = time.monotonic()
    settings, metrics = with_local_metrics(args.settings)
    stack = Stack(settings, roles=("sink", "worker", "collector"))
    try:
        stack.start()
    except KeyboardInterrupt:  # Ctrl-C while starting: stop what did start
        print("costflow: interrupted while starting; stopping", file=sys.stderr)
        stack.stop()
        return 130
    except BaseException:
        stack.stop()
        raise
    from pipeline.config import IngestSettings

    ingest = IngestSettings()
    print(
        f"costflow: broker, worker, sink and the HTTP collector (http://{ingest.http_host}:"
        f"{ingest.http_port}: /v1/events, /v1/litellm, /v1/traces) started in "
        f"{time.monotonic() - started:.1f}s; Ctrl-C drains and stops all",
        file=sys.stderr,
    )
    collector = f"http://{ingest.http_host}:{ingest.http_port}/metrics"
    print(
        f"costflow: Prometheus metrics, /healthz and /readyz: {metrics}, collector {collector}",
        file=sys.stderr,
    )
    try:
        code = stack.wait()
        if code == 0:  # Ctrl-C: take no more requests, finish what was acknowledged, stop
            stack.stop_role("collector")
            stack.drain()
        return code
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()


# Where `up` serves the worker's and the sink's metrics unless told otherwise: the
# ports deploy/prometheus scrapes in compose, on loopback.
UP_METRICS_PORTS = {"worker": 9101, "sink": 9102}


def with_local_metrics(settings: Settings) -> tuple[Settings, str]:
    """``settings`` with the worker's and sink's metrics ports set to
    :data:`UP_METRICS_PORTS` where unset and free, and a line saying where each
    stage's metrics are (or why not)."""
    from pipeline.embedded.broker import port_is_free

    parts: dict[str, object] = {}
    where = []
    for role, default in UP_METRICS_PORTS.items():
        stage = getattr(settings, role)
        port = stage.metrics_port
        if port is None:
            if not port_is_free(default, stage.metrics_host):
                where.append(f"{role}: not served ({stage.metrics_host}:{default} is "
                             f"taken; set COSTFLOW_{role.upper()}_METRICS_PORT)")  # fmt: skip
                continue
            port = default
            parts[role] = stage.model_copy(update={"metrics_port": port})
        where.append(f"{role} http://{stage.metrics_host}:{port}/metrics")
    return settings.replace(**parts), ", ".join(where)


def cmd_migrate(args: argparse.Namespace) -> int:
    from pipeline.clickhouse.migrate import migrate

    applied = migrate(clickhouse_client(args.settings))
    names = ", ".join(f"{m.number:04d}_{m.name}" for m in applied) or "nothing (up to date)"
    print(f"costflow: applied {names}")
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from pipeline.kafka.produce import produce_file
    from pipeline.kafka.topics import ensure_topics

    settings = args.settings
    ensure_topics(settings.kafka, settings.topics)
    sent = produce_file(settings.kafka, settings.topics, Path(args.file))
    print(f"costflow: produced {sum(sent.values()):,} records: {dict(sent)}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from pipeline.runtime.replay import replay

    result = replay(args.settings, Path(args.file), timeout_s=args.timeout)
    print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    # A query that names its own output format keeps it (ClickHouse refuses two).
    own_format = re.search(r"\bFORMAT\s+\w+\s*;?\s*$", args.query, flags=re.IGNORECASE)
    fmt = None if own_format else args.format
    result = clickhouse_client(args.settings).raw_query(args.query.rstrip().rstrip(";"), fmt=fmt)
    sys.stdout.write(result.decode() if isinstance(result, bytes) else str(result))
    return 0


def cmd_reprice(args: argparse.Namespace) -> int:
    from pipeline.render.report import render_reprices
    from pipeline.runtime.reprice import run_reprice

    start, end = utc_time(args.start, "--from"), utc_time(args.end, "--to")
    result = run_reprice(
        args.settings,
        compiled_book(args.book, args.settings),
        start,
        end,
        dry_run=args.dry_run,
        timeout_s=args.timeout,
    )
    applied = result.pop("applied", None)
    print(json.dumps(result, indent=2))
    if applied is not None:
        print(render_reprices(applied) or "nothing changed")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.runtime.demo import run_demo

    return run_demo(args.settings, tasks=args.tasks, seed=args.seed)


def cmd_schemas(args: argparse.Namespace) -> int:
    from pipeline import schemas

    if args.write:
        for path in schemas.write():
            print(f"wrote {path}")
        return 0
    drift = schemas.drift()
    if drift:
        print(f"schemas out of date: {drift}; run costflow schemas --write", file=sys.stderr)
        return 1
    print("schemas are up to date")
    return 0


def cmd_price(args: argparse.Namespace) -> int:
    from pipeline.pricing.tools import price_lines

    for line in price_lines(sys.stdin.buffer, compiled_book(args.book, args.settings)):
        sys.stdout.write(line + "\n")
    return 0


def cmd_pricing(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from pipeline.pricing import tools
    from pipeline.pricing.book import load_price_book

    if args.pricing_command in ("import", "import-litellm"):
        from pipeline.pricing.importers import import_file

        source = getattr(args, "source", "litellm")
        effective = (
            utc_time(args.effective_from, "--effective-from") if args.effective_from else None
        )
        _, report = import_file(source, Path(args.file), Path(args.out), effective, args.version)
        print(f"costflow: {report.summary()}; wrote {args.out} (details: import-report.json)")
        return 0
    if args.pricing_command == "update":
        from pipeline.pricing.importers import (
            installed_litellm_list,
            update_book,
            update_book_from_genai_prices,
        )

        book_dir = Path(args.book) if args.book else args.settings.worker.price_book_dir
        effective = (
            utc_time(args.effective_from, "--effective-from") if args.effective_from else None
        )
        if args.from_genai_prices:
            result = update_book_from_genai_prices(book_dir, effective)
            source_label = "genai-prices"
        else:
            if args.from_litellm:
                raw = Path(args.from_litellm).read_bytes()
                source_version = f"file sha256:{hashlib.sha256(raw).hexdigest()[:12]}"
            else:
                raw, source_version = installed_litellm_list()
            result = update_book(book_dir, "litellm", raw, source_version, effective)
            source_label = f"litellm {source_version}"
        print(f"costflow: {source_label}: {result.report.summary()}")
        for line in result.changes.lines():
            print(f"costflow: {line}")
        print(f"costflow: wrote {result.path}; the book is now version {result.version}")
        return 0
    if args.pricing_command == "validate":
        compiled = compiled_book(args.book, args.settings)
        print(f"costflow: {compiled.label} is valid: {len(compiled.book.entries)} entries")
        return 0
    if args.pricing_command == "show":
        at = utc_time(args.at, "--at") if args.at else datetime.now(UTC)
        shown = tools.show(compiled_book(args.book, args.settings), args.provider, args.model, at)
        print(json.dumps(shown, indent=2))
        return 0
    changes = tools.diff(load_price_book(Path(args.book_a)), load_price_book(Path(args.book_b)))
    print(json.dumps(changes, indent=2))
    return 0


def cmd_dead_letter(args: argparse.Namespace) -> int:
    if args.dead_letter_command == "stats":
        from pipeline.runtime.dead_letter import DEAD_LETTER_STATS

        client = reading_client(args.settings)
        result = client.raw_query(DEAD_LETTER_STATS, fmt="PrettyCompact")
        text = result.decode() if isinstance(result, bytes) else str(result)
        # An empty table prints nothing at all: say so, rather than leave a blank.
        sys.stdout.write(text or "no dead letters: every record read so far was an event\n")
        return 0
    from pipeline.runtime.dead_letter import replay_dead_letters

    settings = args.settings
    skipped: Counter[str] = Counter()
    replayed = replay_dead_letters(settings.kafka, settings.topics, args.reason, skipped)
    print(f"costflow: re-submitted {sum(replayed.values()):,} dead letters: {dict(replayed)}")
    if skipped:
        print(
            f"costflow: {sum(skipped.values()):,} dead letters are not replayable (a source's "
            f"usage record, not an event; send the call again from its source): {dict(skipped)}"
        )
    return 0


def cmd_state(args: argparse.Namespace) -> int:
    from pipeline.runtime.state_restore import restore, restore_embedded

    settings = args.settings
    if settings.kafka.embedded:
        report = restore_embedded(settings)
    else:
        report = restore(settings, clickhouse_client(args.settings))
    print(report.render())
    return 0


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
    ingest = sub.add_parser("ingest", help="turn other sources into call events")
    ingest_sub = ingest.add_subparsers(dest="source", required=True)
    otlp = ingest_sub.add_parser(
        "otlp", help="the OpenTelemetry Collector's Kafka trace topic -> call events"
    )
    otlp.add_argument(
        "--topic", help="traces topic (default otlp_spans) [COSTFLOW_INGEST_OTLP_TOPIC]"
    )
    otlp.add_argument(
        "--encoding",
        choices=["otlp_proto", "otlp_json"],
        help="the exporter's encoding (default otlp_proto) [COSTFLOW_INGEST_OTLP_ENCODING]",
    )
    otlp.add_argument(
        "--until-end", action="store_true", help="stop once the topic is read to its end"
    )
    ingest_sub.add_parser(
        "http",
        help="the HTTP collector: contract events, LiteLLM's generic_api logger, OTLP/HTTP "
        "traces [COSTFLOW_INGEST_HTTP_*]",
    )
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
    cli_analytics.add_parsers(sub)
    cli_alerts.add_parsers(sub)
    cli_focus.add_parsers(sub)
    demo = sub.add_parser("demo", help="generate a workload, replay it, print the report")
    demo.add_argument("--tasks", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=7)
    price = sub.add_parser("price", help="price call events (JSON lines) from stdin to stdout")
    price.add_argument("--book", help="price book directory or file")
    pricing = sub.add_parser("pricing", help="price books: import, validate, show, diff")
    pricing_sub = pricing.add_subparsers(dest="pricing_command", required=True)
    from pipeline.pricing.importers import IMPORTERS

    imp = pricing_sub.add_parser("import", help="convert a price list into a book")
    imp.add_argument("source", choices=sorted(IMPORTERS), help="whose price list FILE is")
    legacy = pricing_sub.add_parser(
        "import-litellm", help="the same as `pricing import litellm FILE`"
    )
    for parser_ in (imp, legacy):
        parser_.add_argument("file")
        parser_.add_argument("--out", required=True)
        parser_.add_argument(
            "--effective-from",
            help="YYYY-MM-DD the prices apply from (default: assumed since the beginning)",
        )
        parser_.add_argument("--version", help="book version (default: date and file hash)")
    update = pricing_sub.add_parser(
        "update", help="regenerate the book's community price layer, adding dated history"
    )
    update.add_argument("--book", help="book directory (default: the configured price book)")
    update.add_argument(
        "--from-litellm", help="LiteLLM's price JSON (default: the installed litellm's)"
    )
    update.add_argument("--effective-from", help="YYYY-MM-DD the changes apply from (today)")
    update.add_argument(
        "--from-genai-prices",
        action="store_true",
        help="the installed genai-prices package's data (dated by the source) instead",
    )
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
    state = sub.add_parser("state", help="stage-1 state: restore it from ClickHouse")
    state_sub = state.add_subparsers(dest="state_command", required=True)
    state_sub.add_parser(
        "restore",
        help="rebuild stage 1's task table from ClickHouse after its changelog was lost "
        "(stop the worker first)",
    )
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


COMMANDS: dict[str, cli_analytics.Handler] = {
    "broker": cmd_broker,
    "worker": cmd_worker,
    "sink": cmd_sink,
    "up": cmd_up,
    "migrate": cmd_migrate,
    "ingest": cmd_ingest,
    "produce": cmd_produce,
    "replay": cmd_replay,
    "sql": cmd_sql,
    "demo": cmd_demo,
    "schemas": cmd_schemas,
    "price": cmd_price,
    "pricing": cmd_pricing,
    "dead-letter": cmd_dead_letter,
    "reprice": cmd_reprice,
    "state": cmd_state,
    **cli_analytics.COMMANDS,
    **cli_alerts.COMMANDS,
    **cli_focus.COMMANDS,
}


def _clickhouse_advice(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "ClickHouse error"
    if "UNKNOWN_TABLE" in message or "UNKNOWN_DATABASE" in message:
        return (
            f"{first[:300]} -- this database has no costflow tables: run `costflow migrate`, "
            "or pass --data-dir .costflow/demo --database costflow_demo to read the demo"
        )
    return first[:500]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        args.settings = settings_from(args)
        return COMMANDS[args.command](args)
    except CostflowError as exc:
        print(f"costflow {args.command}: {exc}", file=sys.stderr)
        settings = getattr(args, "settings", None)
        if isinstance(exc, KafkaError) and settings is not None and settings.kafka.embedded:
            print(
                "costflow: the embedded broker runs only while `costflow up` (or replay) runs: "
                "start `costflow up` in another shell, or set COSTFLOW_KAFKA_BOOTSTRAP"
                + (
                    "; or judge the stored calls alone: `costflow alerts run --data-time stored`"
                    if args.command == "alerts"
                    else ""
                ),
                file=sys.stderr,
            )
        return 2
    except BrokenPipeError:
        # Output piped into head(1) and friends: not an error. Before `Exception`, which
        # would take it; stdout goes to devnull so the interpreter's final flush is quiet.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        from clickhouse_connect.driver.exceptions import ClickHouseError as DriverError

        if not isinstance(exc, DriverError):
            raise
        print(f"costflow {args.command}: {_clickhouse_advice(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
