"""30-day dashboard latency: pre-aggregated views against the raw fact tables, same run.

.venv/bin/python -m benchmarks.analytics_bench --calls 50000000 --tasks 10000000

Loads synthetic calls and tasks into chDB through the real schema (rows go into
``calls`` and ``task_changes``, so every materialized view does its real work),
then runs each dashboard query over the last 30 days on the views and its
equivalent over the raw tables, alternating, and prints median and p95 latency.
Writes benchmarks/results/analytics.json. The data is synthetic (log-normal costs,
12 scenarios, 8 owners, 8 models, 5 roles); only its shape and volume matter here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import clickhouse_connect

from pipeline.clickhouse.migrate import migrate
from pipeline.pricing.book import load_price_book
from pipeline.pricing.engine import CompiledBook
from pipeline.pricing.fixed_costs import FixedCosts
from pipeline.query import fixed_costs
from pipeline.query.analytics import TAILS_SQL, Slice
from pipeline.query.compare import compare
from pipeline.query.whatif import what_if

START = "2026-10-01 00:00:00"
DAYS = 30
SINCE = "toDate('2026-10-01')"

# One task = first event time, labels, outcome, cost; calls point at tasks by number.
_TASKS = f"""
INSERT INTO task_changes (task_id, version, sign, scenario_id, environment, owner,
    first_event_at, last_event_at, calls, failed_calls, retried_calls, fallback_calls,
    unpriced_calls, total_cost, input_tokens, output_tokens, outcome, outcome_source,
    outcome_deadline, models, experiment, plan_id)
SELECT
    concat('task-', toString(number)) AS task_id,
    toUInt64(5) * 1048576 AS version,
    toInt8(1) AS sign,
    concat('scenario-', toString(number % 12)) AS scenario_id,
    ['prod', 'staging', 'dev'][1 + intDiv(number % 100, 80) + intDiv(number % 100, 95)],
    concat('team-', toString(number % 12 % 8)) AS owner,
    toDateTime64('{START}', 3, 'UTC') + toIntervalMillisecond(
        cityHash64(number, 1) % ({DAYS} * 86400000)) AS first_event_at,
    first_event_at + toIntervalSecond(cityHash64(number, 2) % 600) AS last_event_at,
    toUInt32(5), toUInt32(cityHash64(number, 3) % 3 = 0), toUInt32(cityHash64(number, 4) % 4 = 0),
    toUInt32(cityHash64(number, 5) % 10 = 0), toUInt32(0),
    toDecimal128(exp((cityHash64(number, 6) % 10000) / 1500.0 - 7.5), 18) AS total_cost,
    toUInt64(cityHash64(number, 7) % 50000), toUInt64(cityHash64(number, 8) % 2000),
    ['accepted', 'accepted', 'accepted', 'rejected', 'failed', ''][1 + cityHash64(number, 9) % 6],
    'user',
    toStartOfHour(last_event_at) + INTERVAL 25 HOUR,
    -- The scenario's cheap model, or its strong one for a quarter of the tasks.
    [[['gpt-4o-mini', 'gpt-4.1'], ['claude-haiku-4-5', 'claude-sonnet-4-5'],
        ['gemini-2.5-flash', 'gemini-2.5-pro']][1 + (number % 12) % 3]
        [1 + (cityHash64(number, 10) % 4 = 0)]],
    if(number % 12 < 4, ['control', 'treatment'][1 + cityHash64(number, 11) % 2], ''),
    'bench'
FROM numbers({{start}}, {{count}})
"""

_CALLS = f"""
INSERT INTO calls (event_id, task_id, ts, provider, model, scenario_id, environment, owner,
    role, status, service_tier, attempt, retry_of, fallback_from, latency_ms,
    max_output_tokens, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens,
    reasoning_tokens, cost_input, cost_cache_read, cost_cache_write, cost_output,
    cost_reasoning, cost_request, cost_units, cost_total, cost_cache_read_uncached,
    cost_cache_write_uncached, currency, price_book_version, plan_id)
WITH (number % {{tasks}}) % 12 AS scenario
SELECT
    concat('call-', toString(number)) AS event_id,
    concat('task-', toString(number % {{tasks}})) AS task_id,
    toDateTime64('{START}', 3, 'UTC') + toIntervalMillisecond(
        cityHash64(number % {{tasks}}, 1) % ({DAYS} * 86400000) + (number % 5) * 2000) AS ts,
    -- A scenario runs a cheap and a strong model of one provider, and three roles
    -- (labels correlate as in real traffic; independent labels would be a worst case).
    ['openai', 'anthropic', 'google'][1 + scenario % 3] AS provider,
    [['gpt-4o-mini', 'gpt-4.1'], ['claude-haiku-4-5', 'claude-sonnet-4-5'],
     ['gemini-2.5-flash', 'gemini-2.5-pro']][1 + scenario % 3]
        [1 + (cityHash64(number, 12) % 4 = 0)] AS model,
    concat('scenario-', toString(scenario)),
    'prod',
    concat('team-', toString(scenario % 8)),
    ['classifier', 'generator', 'critic', 'refiner', 'judge'][1 + (scenario + number % 3) % 5],
    ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok',
     'ok', 'ok', 'error', 'timeout', 'invalid_output'][1 + cityHash64(number, 13) % 20],
    'standard',
    toUInt16(1 + (cityHash64(number, 14) % 8 = 0)), '', '',
    toUInt32(150 + cityHash64(number, 15) % 20000),
    toUInt32(4096),
    toUInt64(cityHash64(number, 16) % 8000) AS inp,
    toUInt64(cityHash64(number, 17) % 4000) AS cr,
    toUInt64(0), toUInt64(cityHash64(number, 18) % 4200) AS outp, toUInt64(0),
    toDecimal128(inp * 0.0000025, 18) AS ci,
    toDecimal128(cr * 0.00000125, 18) AS ccr,
    toDecimal128(0, 18),
    toDecimal128(outp * 0.00001, 18) AS co,
    toDecimal128(0, 18), toDecimal128(0, 18), toDecimal128(0, 18),
    ci + ccr + co,
    toDecimal128(cr * 0.0000025, 18),
    toDecimal128(0, 18),
    'USD', 'bench@1', 'bench'
FROM numbers({{start}}, {{count}})
"""

# The allocation rule of v_fixed_cost_allocation_daily over usage read from the raw
# task rows (the bench declares usage_share items only).
_FULL_COST_RAW = f"""
WITH u AS (
    SELECT toDate(first_event_at) AS day, scenario_id, sum(total_cost) AS cost,
        countIf(outcome = 'accepted') AS acc
    FROM tasks FINAL WHERE toDate(first_event_at) >= {SINCE} GROUP BY day, scenario_id
)
SELECT scenario_id, sum(cost), sum(fixed), (sum(cost) + sum(fixed)) / sum(acc)
FROM
(
    SELECT scenario_id, cost, acc, toDecimal128(0, 18) AS fixed FROM u
    UNION ALL
    SELECT u.scenario_id, toDecimal128(0, 18), 0, toDecimal128(
        toDecimal256(f.amount, 18) * toDecimal256(u.cost, 18)
            / (sum(toDecimal256(u.cost, 18)) OVER (PARTITION BY f.item, u.day)
                * toUInt32(dateDiff('day', f.period_start, f.period_end))), 18)
    FROM v_fixed_costs AS f CROSS JOIN u
    WHERE f.rule = 'usage_share' AND u.cost > 0 AND u.day >= f.period_start
        AND u.day < f.period_end AND (empty(f.scenarios) OR has(f.scenarios, u.scenario_id))
)
GROUP BY scenario_id
"""
_FIXED_COSTS = {
    "currency": "USD",
    "items": [
        {"item": "staging", "category": "staging", "month": "2026-10", "amount": "18000"},
        {"item": "eval-gpus", "category": "gpu", "month": "2026-10", "quantity": "2400",
         "quantity_unit": "gpu_hour", "price_per_unit": "2.45"},
        {"item": "prompt-team", "category": "engineering", "period_start": "2026-10-06",
         "period_end": "2026-10-20", "amount": "42000",
         "scenarios": ["scenario-1", "scenario-2", "scenario-3"]},
    ],
}  # fmt: skip

# name -> (pre-aggregated query, the same answer from the raw fact tables)
QUERIES: dict[str, tuple[str, str]] = {
    "cost_per_accepted_outcome_by_scenario": (
        f"SELECT scenario_id, sum(total_cost) / sum(accepted) FROM v_outcomes_daily "
        f"WHERE day >= {SINCE} GROUP BY scenario_id ORDER BY scenario_id",
        f"SELECT scenario_id, sum(total_cost) / countIf(outcome = 'accepted') FROM tasks FINAL "
        f"WHERE toDate(first_event_at) >= {SINCE} GROUP BY scenario_id ORDER BY scenario_id",
    ),
    "daily_trend_by_scenario_and_owner": (
        f"SELECT day, scenario_id, owner, sum(tasks), sum(total_cost), sum(waste_cost) "
        f"FROM v_outcomes_daily WHERE day >= {SINCE} GROUP BY day, scenario_id, owner",
        f"SELECT toDate(first_event_at) AS day, scenario_id, owner, count(), sum(total_cost), "
        f"sumIf(total_cost, outcome != 'accepted') FROM tasks FINAL "
        f"WHERE day >= {SINCE} GROUP BY day, scenario_id, owner",
    ),
    "tails_p50_p95_p99_by_scenario": (
        # What `costflow report` runs: tails over the period from the summed bins.
        TAILS_SQL.format(condition=f"day >= {SINCE}"),
        "SELECT scenario_id, quantilesExact(0.5, 0.95, 0.99)(total_cost) FROM tasks FINAL "
        f"WHERE toDate(first_event_at) >= {SINCE} GROUP BY scenario_id ORDER BY scenario_id",
    ),
    "cost_by_role_and_model": (
        f"SELECT role, model, sum(calls), sum(total_cost) FROM v_cost_by_role_daily "
        f"WHERE day >= {SINCE} GROUP BY role, model",
        f"SELECT role, model, count(), sum(cost_total) FROM calls FINAL "
        f"WHERE toDate(ts) >= {SINCE} GROUP BY role, model",
    ),
    "cache_economics_by_model": (
        f"SELECT model, sum(cache_read_savings), sum(stable_prefix_cost), "
        f"sum(dynamic_input_cost) FROM v_cache_economics_daily WHERE day >= {SINCE} "
        "GROUP BY model",
        "SELECT model, sum(cost_cache_read_uncached) - sum(cost_cache_read), "
        "sum(cost_cache_read) + sum(cost_cache_write), sum(cost_input) FROM calls FINAL "
        f"WHERE toDate(ts) >= {SINCE} GROUP BY model",
    ),
    "decision_template_by_scenario_and_model": (
        "SELECT scenario_id, arm, sum(tasks), sum(accepted), sum(total_cost) / sum(accepted) "
        f"FROM v_arm_outcomes_daily WHERE day >= {SINCE} AND dimension = 'model' "
        "GROUP BY scenario_id, arm",
        "SELECT scenario_id, m, count(), countIf(outcome = 'accepted'), "
        "sum(total_cost) / countIf(outcome = 'accepted') FROM tasks FINAL ARRAY JOIN models AS m "
        f"WHERE toDate(first_event_at) >= {SINCE} GROUP BY scenario_id, m",
    ),
    "full_cost_per_accepted_outcome_by_scenario": (
        "SELECT scenario_id, sum(variable_cost), sum(fixed_cost), "
        "sum(full_cost) / sum(accepted) FROM v_scenario_full_cost_daily "
        f"WHERE day >= {SINCE} GROUP BY scenario_id",
        _FULL_COST_RAW,
    ),
    "overhead_by_scenario": (
        f"SELECT scenario_id, sum(retry_cost), sum(failed_call_cost), sum(total_cost) "
        f"FROM v_call_overhead_daily WHERE day >= {SINCE} GROUP BY scenario_id",
        "SELECT scenario_id, sumIf(cost_total, attempt > 1 OR retry_of != ''), "
        "sumIf(cost_total, status != 'ok'), sum(cost_total) FROM calls FINAL "
        f"WHERE toDate(ts) >= {SINCE} GROUP BY scenario_id",
    ),
}


def time_commands(client: Any) -> dict[str, Any]:
    """costflow compare and whatif as a user runs them: one scenario, wall time."""
    scenario = Slice(scenario_id="scenario-1", since=date(2026, 10, 1))
    out: dict[str, Any] = {}
    for dimension in ("model", "experiment"):
        t0 = time.perf_counter()
        result = compare(client, dimension, scenario)
        out[f"compare_{dimension}_30d_s"] = time.perf_counter() - t0
        print(f"compare --scenario scenario-1 ({dimension}, 30 days): "
              f"{out[f'compare_{dimension}_30d_s']:.1f} s, "
              f"{result.difference.verdict if result.difference else 'no pair'}")  # fmt: skip
    book = CompiledBook(load_price_book(Path("pricing/default")))
    one_day = Slice(scenario_id="scenario-1", since=date(2026, 10, 30), until=date(2026, 10, 30))
    t0 = time.perf_counter()
    estimate = what_if(client, book, one_day, "openai/gpt-4o-mini",
                       datetime(2026, 10, 31, tzinfo=UTC),
                       replace="claude-sonnet-4-5", progress_every=0)  # fmt: skip
    took = time.perf_counter() - t0
    out.update(whatif_1d_s=took, whatif_calls=estimate.calls,
               whatif_calls_per_s=estimate.calls / took)  # fmt: skip
    print(f"whatif --scenario scenario-1 (1 day): {estimate.calls:,} calls in {took:.1f} s "
          f"({estimate.calls / took:,.0f} calls/s)")  # fmt: skip
    return out


def timed(client: Any, query: str) -> float:
    t0 = time.perf_counter()
    client.query(query)
    return (time.perf_counter() - t0) * 1000


def load(client: Any, calls: int, tasks: int, chunk: int) -> dict[str, float]:
    took: dict[str, float] = {}
    for name, template, total, extra in (
        ("tasks", _TASKS, tasks, {}),
        ("calls", _CALLS, calls, {"tasks": tasks}),
    ):
        t0 = time.perf_counter()
        for start in range(0, total, chunk):
            count = min(chunk, total - start)
            client.command(template.format(start=start, count=count, **extra))
            rate = (start + count) / (time.perf_counter() - t0)
            sys.stderr.write(f"  {name}: {start + count:,}/{total:,} ({rate:,.0f} rows/s)\n")
        took[f"load_{name}_s"] = time.perf_counter() - t0
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000_000)
    parser.add_argument("--tasks", type=int, default=10_000_000)
    parser.add_argument("--chunk", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--raw-runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="chDB directory (kept if given)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/analytics.json"))
    args = parser.parse_args(argv)

    workdir = args.dir or Path(tempfile.mkdtemp(prefix="costflow-analytics-bench-"))
    client = clickhouse_connect.get_client(dsn=f"chdb://{workdir}")
    client.command("CREATE DATABASE IF NOT EXISTS bench")
    client = clickhouse_connect.get_client(dsn=f"chdb://{workdir}", database="bench")
    migrate(client)
    loaded = client.query("SELECT count() FROM calls").result_rows[0][0]
    took: dict[str, float] = {}
    if loaded == 0:
        sys.stderr.write(f"loading {args.tasks:,} tasks and {args.calls:,} calls into {workdir}\n")
        took = load(client, args.calls, args.tasks, args.chunk)
    sizes = {
        table: client.query(f"SELECT count() FROM {table}").result_rows[0][0]
        for table in ("calls", "tasks", "task_changes", "call_costs_hourly",
                      "task_costs_hourly", "task_cost_histogram_daily", "call_latency_daily")
    }  # fmt: skip
    sys.stderr.write(f"rows: {sizes}\n")
    fixed_costs.load(client, FixedCosts.model_validate(_FIXED_COSTS), "bench")

    results: dict[str, Any] = {}
    for name, (aggregated, raw) in QUERIES.items():
        timed(client, aggregated)  # warm both once
        timed(client, raw)
        fast = [timed(client, aggregated) for _ in range(args.runs)]
        slow = []
        for _ in range(args.raw_runs):  # alternate with the aggregated run: same noise
            slow.append(timed(client, raw))
            fast.append(timed(client, aggregated))
        results[name] = {
            "views_median_ms": statistics.median(fast),
            "views_p95_ms": sorted(fast)[max(0, round(0.95 * len(fast)) - 1)],
            "raw_median_ms": statistics.median(slow),
            "raw_p95_ms": sorted(slow)[max(0, round(0.95 * len(slow)) - 1)],
        }
        r = results[name]
        print(
            f"{name:42s} views {r['views_median_ms']:8.1f} ms (p95 {r['views_p95_ms']:8.1f})"
            f"   raw {r['raw_median_ms']:9.1f} ms (p95 {r['raw_p95_ms']:9.1f})"
            f"   x{r['raw_median_ms'] / r['views_median_ms']:.0f}"
        )
    commands = time_commands(client)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"rows": sizes, **took, "days": DAYS, "queries": results, "commands": commands},
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")
    client.close()
    if args.dir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
