"""task_budget caps in stage 1: which snapshots name them, and the sink's record of
the firing, once per task and rule (real chDB). Costs worked by hand: gpt-4o-mini
at $0.15 input and $0.60 output per million tokens, 1M of each: $0.75 a call."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pipeline.agents.base import new_stage
from pipeline.alert_identity import fingerprint, task_alert_labels
from pipeline.clickhouse.migrate import migrate
from pipeline.join.task_caps import TaskCap
from pipeline.records import decode_task_record
from pipeline.sink.clickhouse.task_alerts import ALERT_EVENT_COLUMNS, task_alert_rows
from tests.unit.test_agents import BOOK, CALL, RecordingTopic, stage1

COST_CAP = TaskCap("CostlyTask", "critical", {"scenario_id": "agent"}, max_cost=Decimal("2.00"))
CALL_CAP = TaskCap("ManyCalls", "warning", {}, max_calls=2, labels={"team": "platform"})


def _stage(table: dict[str, Any]) -> Any:
    topics = {name: RecordingTopic() for name in ("priced_calls", "task_snapshots", "dead_letter")}
    return new_stage(table=table, **topics, book=BOOK, caps=[COST_CAP, CALL_CAP])


def _calls(task_id: str, scenario: str, n: int) -> list[dict[str, Any]]:
    return [{**CALL, "event_id": f"{task_id}-c{i}", "task_id": task_id, "scenario_id": scenario,
             "ts": f"2026-11-02T10:0{i}:00Z"} for i in range(1, n + 1)]  # fmt: skip


def _alerts(sent: list[tuple[str, int, bytes, tuple[()]]]) -> list[list[str]]:
    """Per task snapshot, in order: the alerts it names."""
    snapshots = [json.loads(value) for topic, _, value, _ in sent if topic.endswith("snapshots")]
    return [[a["alert"] for a in s.get("task_alerts", [])] for s in snapshots]


def test_snapshots_name_the_caps_their_task_is_over() -> None:
    table: dict[str, Any] = {}
    stage = _stage(table)
    # One call per fetch: $0.75, $1.50, $2.25 (>= $2.00 from the third), 1..3 calls
    # (>= 2 from the second).
    sent = stage1(stage, _calls("t1", "agent", 3), fetch=1)
    assert _alerts(sent) == [[], ["ManyCalls"], ["CostlyTask", "ManyCalls"]]
    # Another scenario: the cost cap does not match it, the call cap does.
    assert _alerts(stage1(stage, _calls("t2", "other", 3), fetch=3)) == [["ManyCalls"]]
    # A re-delivered call changes nothing and still names the caps (the state says so);
    # so does a new stage over the same table: a restart remembers nothing else.
    assert _alerts(stage1(stage, _calls("t1", "agent", 1))) == [["CostlyTask", "ManyCalls"]]
    restarted = _stage(table)
    assert _alerts(stage1(restarted, _calls("t1", "agent", 4)[3:])) == [["CostlyTask", "ManyCalls"]]
    [entry] = [a for a in json.loads(stage1(restarted, _calls("t1", "agent", 5)[4:])[-1][2])[
        "task_alerts"] if a["alert"] == "CostlyTask"]  # fmt: skip
    assert entry == {"alert": "CostlyTask", "severity": "critical", "cap": "max_cost",
                     "limit": "2.00"}  # fmt: skip
    [many] = [a for a in json.loads(stage1(restarted, _calls("t1", "agent", 5)[4:])[-1][2])[
        "task_alerts"] if a["alert"] == "ManyCalls"]  # fmt: skip
    assert many["label.team"] == "platform"  # the rule's own labels ride along


def test_the_sink_records_each_task_and_rule_once(chdb_client: Any) -> None:
    migrate(chdb_client)
    stage = _stage({})
    sent = stage1(stage, _calls("t1", "agent", 3), fetch=1)
    records = [decode_task_record(v) for topic, _, v, _ in sent if topic.endswith("snapshots")]
    rows = task_alert_rows(chdb_client, records)
    # ManyCalls from the second snapshot (10:02, 2 calls), CostlyTask from the third
    # (10:03, $2.25 against $2.00: $0.25 over).
    by_alert = {r[1]: dict(zip(ALERT_EVENT_COLUMNS, r, strict=True)) for r in rows}
    assert sorted(by_alert) == ["CostlyTask", "ManyCalls"]
    costly = by_alert["CostlyTask"]
    figures = (costly["value"], costly["expected"], costly["impact"])
    assert figures == ("2.25", "2.00", Decimal("0.25"))
    assert costly["at"].isoformat() == "2026-11-02T10:03:00+00:00"
    assert costly["fingerprint"] == fingerprint("CostlyTask", task_alert_labels("t1"))
    assert costly["details"]["evaluated_in"] == "stage1"
    many = by_alert["ManyCalls"]
    assert (many["value"], many["at"].isoformat()) == ("2", "2026-11-02T10:02:00+00:00")
    # The rule's labels are on the event (for routing), not in its identity.
    assert many["labels"] == {"team": "platform", **task_alert_labels("t1")}
    assert many["fingerprint"] == fingerprint("ManyCalls", task_alert_labels("t1"))
    chdb_client.insert("alert_events", rows, column_names=list(ALERT_EVENT_COLUMNS))
    # Later snapshots, re-emitted ones, a re-consumed batch: nothing more.
    later = stage1(stage, _calls("t1", "agent", 4)[3:])
    more = [decode_task_record(v) for topic, _, v, _ in later if topic.endswith("snapshots")]
    assert task_alert_rows(chdb_client, records + more) == []
