"""Alert evaluation time per cycle: 100 rules over the analytics benchmark's calls.

.venv/bin/python -m benchmarks.alerts_bench --calls 50000000 --tasks 10000000

Loads the analytics benchmark's synthetic 30 days of calls into chDB (or reuses a
directory it loaded, ``--dir``), then evaluates a rule file of 100 rules (30 budgets
with the SRE workbook's burn-rate pairs, 30 anomaly rules, and 10 each of unpriced,
task_budget, tail_shift and outcome_regression, mixed group_by) at the end of the
data, cold (anomaly rules computing their baselines) and warm (inside the same hour:
baselines reused), then whole cycles with the alert history (``cycle``: recording,
adopting stage-1 firings, and checking every judged window for restatements), and
prints seconds per cycle. Not a test: prints figures and writes
benchmarks/results/alerts.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect

from benchmarks.analytics_bench import DAYS, load
from benchmarks.results_file import write_result
from pipeline.alerts.engine import AlertEngine
from pipeline.alerts.rules import rule_file_model
from pipeline.clickhouse.migrate import migrate
from pipeline.query.alert_inputs import ClickHouseAlertInputs

_GROUPINGS = [[], ["scenario_id"], ["owner"], ["provider", "model"], ["scenario_id", "model"]]


def rules(count: int = 100) -> Any:
    """``count`` rules of every kind, groupings mixed: per ten, three budgets, three
    anomalies, one unpriced, one task_budget, one tail_shift, one outcome_regression."""
    out: list[dict[str, Any]] = []
    kinds = ("budget", "anomaly", "budget", "anomaly", "unpriced", "budget", "anomaly",
             "task_budget", "tail_shift", "outcome_regression")  # fmt: skip
    for n in range(count):
        kind = kinds[n % len(kinds)]
        group_by = _GROUPINGS[n % len(_GROUPINGS)]
        if kind in ("task_budget", "tail_shift", "outcome_regression"):
            group_by = [g for g in group_by if g in ("scenario_id", "owner")]
        rule: dict[str, Any] = {"alert": f"Rule{n}", "kind": kind, "group_by": group_by}
        if kind == "budget":
            rule.update(amount=str(1000 + 100 * n), period=("day", "week", "month")[n % 3])
        elif kind == "anomaly":
            rule.update(metric=("spend", "calls", "tokens", "retry_rate")[n % 4], weeks=2)
        elif kind == "unpriced":
            rule.update(max_share="0.05")
        elif kind == "task_budget":
            rule = {"alert": f"Rule{n}", "kind": kind, "max_cost": "5", "p99_multiple": "10"}
        out.append(rule)
    return rule_file_model().model_validate({"groups": [{"name": "bench", "rules": out}]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000_000)
    parser.add_argument("--tasks", type=int, default=10_000_000)
    parser.add_argument("--chunk", type=int, default=2_000_000)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="chDB directory (kept if given)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/alerts.json"))
    args = parser.parse_args(argv)

    workdir = args.dir or Path(tempfile.mkdtemp(prefix="costflow-alerts-bench-"))
    client = clickhouse_connect.get_client(dsn=f"chdb://{workdir}")
    client.command("CREATE DATABASE IF NOT EXISTS bench")
    client = clickhouse_connect.get_client(dsn=f"chdb://{workdir}", database="bench")
    migrate(client)
    if client.query("SELECT count() FROM calls").result_rows[0][0] == 0:
        sys.stderr.write(f"loading {args.tasks:,} tasks and {args.calls:,} calls into {workdir}\n")
        load(client, args.calls, args.tasks, args.chunk)
    calls = client.query("SELECT count() FROM calls").result_rows[0][0]
    at = datetime(2026, 10, 1, tzinfo=UTC) + timedelta(days=DAYS) - timedelta(minutes=7)
    rule_file = rules(args.rules)
    cold, warm, fired = [], [], 0
    for cycle in range(args.cycles):
        engine = AlertEngine(rule_file, ClickHouseAlertInputs(client))
        t0 = time.perf_counter()
        fired = len(engine.evaluate(at, force=True))
        cold.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        engine.evaluate(at + timedelta(minutes=cycle % 5 + 1), force=True)
        warm.append(time.perf_counter() - t0)
        sys.stderr.write(f"  cycle {cycle + 1}: cold {cold[-1]:.2f}s, warm {warm[-1]:.2f}s\n")
    # Whole cycles: the first records the judgements, the next ones read them back and
    # compare every judged window's digest with the store (restatements).
    from pipeline.alerts.history import AlertHistory

    client.command("TRUNCATE TABLE IF EXISTS alert_events")
    client.command("TRUNCATE TABLE IF EXISTS alert_judgements")
    engine = AlertEngine(rule_file, ClickHouseAlertInputs(client))
    history, whole = AlertHistory(client), []
    for step in range(args.cycles):
        t0 = time.perf_counter()
        engine.cycle(at + timedelta(hours=step), history, [], force=True)
        whole.append(time.perf_counter() - t0)
        sys.stderr.write(f"  cycle with history {step + 1}: {whole[-1]:.2f}s\n")
    result = {
        "benchmark": "alerts",
        "calls": calls,
        "rules": args.rules,
        "cycle_cold_median_s": statistics.median(cold),
        "cycle_warm_median_s": statistics.median(warm),
        "cycle_cold_s": cold,
        "cycle_warm_s": warm,
        "cycle_with_history_median_s": statistics.median(whole),
        "cycle_with_history_s": whole,
        "alerts_fired": fired,
        "note": "cold: anomaly baselines computed; warm: same hour, baselines reused",
    }
    write_result(args.out, result)
    print(f"calls                    {calls:>14,}")
    print(f"rules                    {args.rules:>14,}")
    print(f"cycle, cold (median)     {result['cycle_cold_median_s']:>13.2f}s")
    print(f"cycle, warm (median)     {result['cycle_warm_median_s']:>13.2f}s")
    print(f"cycle with history (med) {result['cycle_with_history_median_s']:>13.2f}s")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
