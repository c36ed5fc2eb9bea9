"""``costflow alerts``: validate rule files, backtest them, run them."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.cli_support import reading_client, utc_time
from pipeline.errors import ConfigError


def _files(args: argparse.Namespace) -> list[Path]:
    from pipeline.resources import example_alert_rules

    return [Path(f) for f in args.files] or [example_alert_rules()]


def _load(args: argparse.Namespace) -> Any:
    """The rule files, merged into one (alert names unique across them)."""
    from pipeline.alerts.rules import load_rule_files

    return load_rule_files(_files(args))


def event_json(event: Any) -> str:
    """One alert event as the JSON line ``alerts test`` prints."""
    from pipeline.alerts.state import event_record

    record = event_record(event)
    record.pop("fingerprint")
    return json.dumps(record, sort_keys=True)


def cmd_validate(args: argparse.Namespace) -> int:
    rules = _load(args)
    count = sum(len(g.rules) for g in rules.groups)
    kinds = sorted({r.kind for g in rules.groups for r in g.rules})
    names = ", ".join(str(p) for p in _files(args))
    print(f"{names}: {count} rules ({', '.join(kinds)}), {len(rules.receivers)} receivers: valid")
    for problem in missing_secrets(rules.receivers):
        # Not an error: the secret may exist only where `alerts run` runs.
        print(f"note: {problem} (here; `alerts run` needs it where it runs)")
    for line in silence_notes(rules.silences, rules.receivers, datetime.now(UTC)):
        print(line)
    for line in label_notes(rules):
        print(line)
    return 0


def label_notes(rules: Any) -> list[str]:
    """Annotations reading a label the rule's alerts never carry (it would show as
    written, ``{{ $labels.x }}``, in every notification)."""
    from pipeline.alerts.kinds import KIND_LABELS
    from pipeline.alerts.rules import RESERVED_LABELS
    from pipeline.alerts.templates import label_names

    out = []
    for group in rules.groups:
        for rule in group.rules:
            carried = {getattr(d, "value", d) for d in rule.group_by} | set(rule.labels)
            carried |= RESERVED_LABELS | KIND_LABELS.get(rule.kind, frozenset())
            carried.add("restated_window")
            for name, text in rule.annotations.items():
                for label in sorted(set(label_names(text)) - carried):
                    out.append(
                        f"note: {rule.alert}: annotation {name} reads $labels.{label}, which "
                        f"its alerts do not carry ({', '.join(sorted(carried))}); the alert's "
                        "figures are in {{ $details.<name> }}"
                    )
    return out


def silence_notes(silences: Any, receivers: Any, now: datetime) -> list[str]:
    """One line per silence: active, upcoming or ended at ``now``, and whom it spares."""
    if not silences:
        return []
    own = [r.name for r in receivers if r.type != "alertmanager"]
    lines = []
    for s in silences:
        when = ("active until" if s.active(now) else "ended" if s.ends_at <= now
                else f"from {s.starts_at.isoformat()} until")  # fmt: skip
        lines.append(f"silence {', '.join(s.matchers)}: {when} {s.ends_at.isoformat()} "
                     f"({s.created_by}: {s.comment})")  # fmt: skip
    if not own:
        lines.append(
            "note: silences apply to webhook, slack and kafka receivers; this file has "
            "none (Alertmanager keeps its own silences: amtool silence add)"
        )
    return lines


def missing_secrets(receivers: Any) -> list[str]:
    """Receivers whose secret (environment variable or file) is not available here."""
    from pipeline.alerts.rules import AlertRulesInvalid, secret_from

    problems = []
    for r in receivers:
        env, file = getattr(r, "secret_env", None), getattr(r, "secret_file", None)
        if r.type == "slack":
            env, file = r.url_env, r.url_file
        if env is None and file is None:
            continue
        try:
            secret_from(env, file, f"receiver {r.name}")
        except AlertRulesInvalid as exc:
            problems.append(str(exc))
    return problems


def cmd_test(args: argparse.Namespace) -> int:
    from pipeline.alerts.engine import DATA_TIME_TICK, backtest, data_time
    from pipeline.query.alert_inputs import ClickHouseAlertInputs

    rules = _load(args)
    since, until = utc_time(args.since, "--since"), utc_time(args.until, "--until")
    if until <= since:
        raise ConfigError("--until must be after --since")
    client = reading_client(args.settings)
    latest = data_time(client, until)
    if latest is None:
        raise ConfigError("no calls are stored: there is no history to test rules over")
    if latest < until:
        # Hours after the data are not quiet hours: judging them would fire every
        # "down" anomaly and resolve every alert. Stop where the data stops.
        last_call = latest - DATA_TIME_TICK
        print(f"alerts test: the stored calls end at {last_call.isoformat()}; judging up "
              f"to there, that call included, not {until.isoformat()}",
              file=sys.stderr, flush=True)  # fmt: skip
        until = latest
    for event in backtest(rules, ClickHouseAlertInputs(client), since, until):
        print(event_json(event), flush=True)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline.alerts.engine import AlertEngine
    from pipeline.alerts.history import AlertHistory
    from pipeline.query.alert_inputs import ClickHouseAlertInputs
    from pipeline.runtime.alert_loop import AlertCycles
    from pipeline.runtime.data_time import DataClock

    rules = _load(args)
    _refuse_read_only_embedded(args.settings)
    client = reading_client(args.settings)
    engine = AlertEngine(rules, ClickHouseAlertInputs(client))
    history = AlertHistory(client)
    deliveries = engine.deliveries(args.settings.kafka)
    firing = engine.restore(history, resolve_removed=args.resolve_removed)
    print(f"alerts: {len(engine.rules)} rules, {len(deliveries)} receivers, "
          f"{firing} alerts firing from before", flush=True)  # fmt: skip
    tick = min(g.interval for g in rules.groups).total_seconds()
    clock = DataClock(client, args.settings if args.data_time == "pipeline" else None)
    stats = AlertCycles()
    server = None if args.once else _serve_metrics(args, stats)
    try:
        return _run_cycles(args, engine, history, deliveries, clock, stats, tick)
    finally:
        if server is not None:
            server.close()


def _refuse_read_only_embedded(settings: Any) -> None:
    """``alerts run`` records history: on the embedded ClickHouse while ``costflow up``
    runs, readers get the stack's read-only endpoint, and the first firing would fail
    with a raw READONLY error. Raises ConfigError saying what works instead."""
    from pathlib import Path

    from pipeline.clickhouse.read_server import running_endpoint

    dsn = settings.clickhouse.resolved_dsn(settings.stack)
    if dsn.startswith("chdb://") and running_endpoint(Path(dsn.removeprefix("chdb://"))):
        raise ConfigError(
            "`costflow up` holds the embedded ClickHouse, and alert history cannot be written "
            "through its read-only endpoint. Under `up` the sink evaluates alert rules: stop "
            "`up`, start it again with COSTFLOW_SINK_ALERT_RULES=FILES (its /metrics show "
            "them). `alerts run` as its own process needs a ClickHouse server, or the data "
            "directory to itself (`up` stopped: `alerts run FILES --data-time stored`)"
        )


def _serve_metrics(args: argparse.Namespace, stats: Any) -> Any:
    """/metrics, /healthz and /readyz of ``alerts run`` when a port is set (flag, or
    ``COSTFLOW_ALERTS_METRICS_PORT``); ready once a cycle ran and the last did not fail."""
    from pipeline.config import AlertsSettings
    from pipeline.pricing.book import load_price_book
    from pipeline.runtime.health_server import HealthServer
    from pipeline.runtime.stage_metrics import AlertLoopMetrics, registry

    settings = AlertsSettings()
    port = args.metrics_port if args.metrics_port is not None else settings.metrics_port
    if port is None:
        return None
    book = load_price_book(args.settings.worker.price_book_dir).label
    reg = registry(AlertLoopMetrics(stats), book)

    def ready() -> tuple[bool, str]:
        if stats.failed_last:
            return False, "the last evaluation cycle failed (see the log)"
        if stats.cycles == 0:
            return False, "no evaluation cycle has finished yet"
        return True, "ready"

    return HealthServer(settings.metrics_host, port, reg, ready)


def _run_cycles(
    args: argparse.Namespace,
    engine: Any,
    history: Any,
    deliveries: Any,
    clock: Any,
    stats: Any,
    tick: float,
) -> int:
    import logging

    from pipeline.alerts.engine import EvaluationBeforeHistory
    from pipeline.errors import KafkaError

    log = logging.getLogger("costflow.alerts")
    while True:
        # --at sets the clock; the data's time is never after the stored calls nor the
        # first event the pipeline has not finished, as live.
        clock_now = utc_time(args.at, "--at") if args.at else datetime.now(UTC)
        try:
            at = clock.at(clock_now)
        except KafkaError as exc:
            if args.once:
                raise
            stats.failed()
            log.error("alerts: not evaluated: cannot read the pipeline's progress (%s); "
                      "retrying (or run with --data-time stored)", exc)  # fmt: skip
            time.sleep(max(1.0, min(tick, 60.0)))
            continue
        if at is None:
            print("alerts: no calls stored yet; nothing to evaluate", flush=True)
        else:
            started = time.monotonic()
            # The clock, for the pipeline-health kinds; --at replays a time, clock and all.
            try:
                events = engine.cycle(at, history, deliveries, force=args.once, now=clock_now)
            except EvaluationBeforeHistory:
                if args.at:
                    raise
                # The data's time went back (a partition fell behind): wait for it.
                log.info("alerts: the data's time %s is behind the last evaluation; waiting",
                         at.isoformat())  # fmt: skip
                events = []
            for event in events:
                print(event_json(event), flush=True)
            log.info("evaluated at %s in %.2fs", at.isoformat(), time.monotonic() - started)
            stats.judged(engine, at)
        stats.ran()
        if args.once:
            if engine.failed_receivers:
                # For cron: a non-zero exit is what gets noticed. Nothing is lost.
                print(f"alerts: could not notify {', '.join(engine.failed_receivers)}; their "
                      "alerts are kept and sent by the next run", file=sys.stderr)  # fmt: skip
                return 1
            return 0
        time.sleep(max(1.0, min(tick, 60.0)))


def add_parsers(sub: Any) -> None:
    alerts = sub.add_parser("alerts", help="alert rules on cost: validate, backtest, run")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)
    validate = alerts_sub.add_parser("validate", help="check rule files (default: the example)")
    validate.add_argument("files", nargs="*")
    test = alerts_sub.add_parser(
        "test", help="backtest rule files over stored history: JSON lines of every alert"
    )
    test.add_argument("files", nargs="*")
    test.add_argument("--since", required=True, help="RFC 3339 time or date")
    test.add_argument("--until", required=True, help="RFC 3339 time or date")
    run = alerts_sub.add_parser("run", help="evaluate on a schedule, record and deliver alerts")
    run.add_argument("files", nargs="*")
    run.add_argument("--once", action="store_true", help="one cycle of every group, then exit")
    run.add_argument("--at", help="evaluate as if the clock were this (RFC 3339)")
    run.add_argument(
        "--resolve-removed", action="store_true",
        help="resolve (and notify) the alerts still firing for rules no longer in these "
        "files; not when another evaluator shares the database with other rules",
    )  # fmt: skip
    run.add_argument(
        "--metrics-port", type=int, default=None,
        help="serve /metrics, /healthz and /readyz on this port (default: "
        "COSTFLOW_ALERTS_METRICS_PORT; unset: not served; never with --once)",
    )  # fmt: skip
    run.add_argument(
        "--data-time", choices=["pipeline", "stored"], default="pipeline",
        help="where windows end: before the first event the pipeline has not finished "
        "(reads both stages' committed offsets from Kafka; default), or at the latest "
        "stored call (for an evaluator that cannot reach Kafka)",
    )  # fmt: skip


def cmd_alerts(args: argparse.Namespace) -> int:
    return {"validate": cmd_validate, "test": cmd_test, "run": cmd_run}[args.alerts_command](args)


Handler = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Handler] = {"alerts": cmd_alerts}
