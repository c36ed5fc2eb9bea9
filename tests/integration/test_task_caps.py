"""task_budget caps raised by stage 1 through the real pipeline: once per task and
rule across SIGKILLs of the worker and the sink, then kept and resolved (never raised
again) by `costflow alerts run`'s engine, which raises a cap itself only when stage 1
was not given it."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pipeline.alerts.engine import STAGE1_GRACE, AlertEngine, data_time
from pipeline.alerts.history import AlertHistory
from pipeline.alerts.rules import load_rules
from pipeline.clickhouse.client import connect
from pipeline.config import Settings
from pipeline.demo.workload import START, generate, write_jsonl
from pipeline.kafka.produce import produce_lines
from pipeline.query.alert_inputs import ClickHouseAlertInputs
from tests.integration.conftest import await_condition, live_stack
from tests.reference import expected_tasks, parse_ts

pytestmark = pytest.mark.integration

RULES = """groups:
  - name: tasks
    interval: 30s
    rules:
      - {{alert: RunawayCalls, kind: task_budget, max_calls: 30, severity: critical}}
      - {{alert: CostlyTask, kind: task_budget, max_cost: '{cap}'}}
"""
# Only the evaluator has this one: stage 1 never raises it.
UNSEEN = "      - {alert: NotGivenToStage1, kind: task_budget, max_calls: 30}\n"


def test_caps_fire_once_per_task_across_kills(isolated_settings: Settings, tmp_path: Path) -> None:
    events = generate(300, seed=31, days=3, runaway=START + timedelta(days=3))
    expected = expected_tasks(events)
    # The cost cap: the fifth-highest task cost, so at least five tasks reach it.
    costs = sorted(t.total_cost for t in expected.values())
    cap = costs[-5]
    want = {("RunawayCalls", t.task_id) for t in expected.values() if t.calls >= 30}
    want |= {("CostlyTask", t.task_id) for t in expected.values() if t.total_cost >= cap}
    assert ("RunawayCalls", "task-31-runaway") in want and len(want) >= 6
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(cap=cap), encoding="utf-8")

    delivered = list(events)
    random.Random(4).shuffle(delivered)
    with live_stack(isolated_settings, alert_rules=str(rules), max_poll_records=100) as live:
        produce_lines(live.kafka, live.settings.topics, write_jsonl(delivered))
        inputs = live.worker_probe.end_offsets(live.settings.topics.inputs())
        total = sum(inputs.values())
        for role, share in (("worker", 0.3), ("sink", 0.5), ("worker", 0.7)):
            await_condition(
                lambda s=share: (total - live.worker_probe.remaining(inputs)) / total >= s,
                300, f"{share:.0%} committed",
            )  # fmt: skip
            live.stack.children[role].kill()  # SIGKILL
            live.stack.children[role].wait()
            live.stack.respawn(role)
        live.drain(live.stack.check_alive)
    settings = live.settings
    client = connect(settings.clickhouse, settings.stack, create=False)

    fired = client.query(
        "SELECT alert, labels['task_id'], count(), any(details['evaluated_in']) "
        "FROM alert_events FINAL WHERE kind = 'task_budget' GROUP BY alert, labels['task_id']"
    ).result_rows
    assert {(a, t) for a, t, _, _ in fired} == want
    assert {(n, where) for _, _, n, where in fired} == {(1, "stage1")}  # once each

    # The evaluator adopts stage 1's firings: it raises none of them again, keeps those
    # of tasks active at the data's time (an event in the last hour, `active_for`) and
    # resolves the quiet ones.
    with_unseen = tmp_path / "evaluator.yaml"
    with_unseen.write_text(RULES.format(cap=cap) + UNSEEN, encoding="utf-8")
    engine = AlertEngine(load_rules(with_unseen), ClickHouseAlertInputs(client))
    history = AlertHistory(client)
    at = data_time(client)
    assert at is not None
    # The cap stage 1 was never given: within STAGE1_GRACE of data time after the
    # 30th call (a cron-style fresh engine each time) it is not raised; past it, it is.
    runaway = sorted({e["event_id"]: parse_ts(e["ts"]) for e in events
                      if e["task_id"] == "task-31-runaway" and e["type"] == "call"}.values())
    crossed = runaway[29]  # fmt: skip
    assert crossed < at < crossed + STAGE1_GRACE  # the stored data ends within the grace
    cron_rules = tmp_path / "cron.yaml"
    cron_rules.write_text(RULES.split("      - ")[0] + UNSEEN.replace("NotGivenToStage1", "Cron"),
                          encoding="utf-8")  # fmt: skip

    def cron(when: datetime) -> set[str]:
        fresh = AlertEngine(load_rules(cron_rules), ClickHouseAlertInputs(client))
        fresh.restore(history)
        return {e.labels["task_id"] for e in fresh.cycle(when, history, [], force=True)
                if e.state == "firing"}  # fmt: skip

    assert "task-31-runaway" not in cron(crossed + STAGE1_GRACE - timedelta(seconds=1))
    assert "task-31-runaway" in cron(crossed + STAGE1_GRACE)
    # A fresh process restores it as firing: not raised again.
    assert "task-31-runaway" not in cron(crossed + 2 * STAGE1_GRACE)
    first = engine.cycle(at, history, [], force=True)
    assert not [e for e in first if e.state == "firing"]
    resolved = {(e.alert, e.labels["task_id"]) for e in first if e.state == "resolved"}
    # Active at `at`: the task's last event if it is before `at`; for a task with events
    # after `at` (an outcome the data's time has not reached), its last call up to `at`.
    last_event: dict[str, datetime] = {}
    last_call: dict[str, datetime] = {}
    for event in events:
        ts, task = parse_ts(event["ts"]), event["task_id"]
        last_event[task] = max(ts, last_event.get(task, ts))
        if event["type"] == "call" and ts <= at:
            last_call[task] = max(ts, last_call.get(task, ts))
    seen = {t: last_event[t] if last_event[t] < at else last_call[t] for _, t in want}
    active = {(a, t) for a, t in want if seen[t] >= at - timedelta(hours=1)}
    assert ("RunawayCalls", "task-31-runaway") in active and active != want
    assert resolved == want - active
    # Past the grace, the cap stage 1 was never given is raised here, and said so.
    later = engine.cycle(crossed + STAGE1_GRACE, history, [], force=True)
    [fallback] = [e for e in later if e.state == "firing"]
    assert (fallback.alert, fallback.labels["task_id"]) == ("NotGivenToStage1", "task-31-runaway")
    assert fallback.details["evaluated_in"] == "evaluator"
    assert fallback.details["crossed_at"] == crossed.isoformat()
