"""The main job: a realistic workload through the real embedded pipeline, then the report."""

from __future__ import annotations

import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from pipeline.clickhouse.client import connect
from pipeline.config import Settings, StackSettings
from pipeline.demo.workload import START, bad_records, generate, write_jsonl
from pipeline.pricing.fixed_costs import load_fixed_costs
from pipeline.query import fixed_costs
from pipeline.query.analytics import Slice
from pipeline.query.compare import compare
from pipeline.render.compare import render_comparison
from pipeline.render.report import full_report
from pipeline.resources import example_alert_rules, example_fixed_costs
from pipeline.runtime.html_report import write_html_report
from pipeline.runtime.replay import replay

DEMO_SPIKE = START + timedelta(days=4, hours=14)
DEMO_RUNAWAY = START + timedelta(days=2, hours=9, minutes=20)


def demo_alerts(client: Any) -> str:
    """What the demo's alert rules (deploy/alerts/demo.yaml) raise over its week."""
    from pipeline.alerts.engine import backtest, data_time
    from pipeline.alerts.rules import load_rules
    from pipeline.query.alert_inputs import ClickHouseAlertInputs
    from pipeline.render.alerts import render_alert_events
    from pipeline.resources import example_alert_rules

    rules = load_rules(example_alert_rules().with_name("demo.yaml"))
    # Up to the last stored call: hours after the data are not quiet hours.
    until = data_time(client, START + timedelta(days=9)) or START
    events = list(backtest(rules, ClickHouseAlertInputs(client), START, until))
    return render_alert_events(events)


def run_demo(base: Settings, tasks: int, seed: int) -> int:
    """Generate, replay and report; the demo's data lives under ``<data dir>/demo``."""
    # The demo owns a data directory of its own (broker log, offsets, chDB) and its
    # database (costflow_demo unless one is given): a rerun starts from the same
    # empty state and never touches yours.
    stack = StackSettings(data_dir=base.stack.data_dir / "demo")
    if stack.data_dir.exists():
        shutil.rmtree(stack.data_dir)
    given = "database" in base.clickhouse.model_fields_set
    clickhouse = base.clickhouse.model_copy(
        update={"database": base.clickhouse.database if given else "costflow_demo"}
    )
    settings = base.replace(stack=stack, clickhouse=clickhouse)
    client = connect(clickhouse, stack)
    client.command(f"DROP DATABASE IF EXISTS {clickhouse.database}")
    client.close()

    # A cost spike for the alert rules: research-agent traffic x30 for an hour.
    # ... and an agent stuck in a loop for the runaway-task rule.
    spike_tasks = max(1, tasks // 50)
    events = generate(tasks, seed=seed, spike=DEMO_SPIKE, spike_tasks=spike_tasks,
                      runaway=DEMO_RUNAWAY)  # fmt: skip
    workload = stack.data_dir / "demo" / "events.jsonl"
    workload.parent.mkdir(parents=True, exist_ok=True)
    with workload.open("wb") as handle:
        for line in write_jsonl(events, bad_records()):
            handle.write(line + b"\n")
    sys.stderr.write(
        f"costflow demo: {tasks:,} tasks (+{spike_tasks} in an hour's cost spike, +1 runaway "
        f"agent), {len(events):,} events (+3 malformed) -> {workload}\n"
    )
    started = time.monotonic()
    result = replay(settings, workload)
    sys.stderr.write(
        f"costflow demo: pipeline done in {time.monotonic() - started:.1f}s "
        f"({result['events']:,} events)\n\n"
    )
    client = connect(clickhouse, stack)
    declaration, source = load_fixed_costs(example_fixed_costs())
    fixed_costs.load(client, declaration, source)
    print(full_report(client, Slice(), top=3))
    # The workload runs an A/B test on doc-extract's extractor model.
    experiment = Slice(scenario_id="doc-extract")
    print("\n" + render_comparison("doc-extract", compare(client, "experiment", experiment)))
    print("\n" + demo_alerts(client))
    # The same figures as charts, one self-contained page beside the demo's data.
    print("\n" + write_html_report(client, Slice(), stack.data_dir / "report.html").describe())
    # `./dev` in a checkout; the installed command elsewhere.
    command = "./dev" if Path("dev").is_file() and Path("pyproject.toml").is_file() else "costflow"
    prefix = f"{command} --data-dir {stack.data_dir} --database {clickhouse.database}"
    sys.stderr.write(
        "\nExplore the result (one command each):\n"
        + "".join(
            f"  {prefix} {rest}\n"
            for rest in (
                "report [--scenario S] [--html FILE]",
                "compare --scenario S",
                "whatif --scenario S --model M",
                "focus export --month YYYY-MM --format csv",
                f"alerts test {example_alert_rules().with_name('demo.yaml')} "
                f"--since {START:%Y-%m-%d} --until {START + timedelta(days=9):%Y-%m-%d}",
            )
        )
    )
    return 0
