"""Alert rules over five weeks of generated traffic in real chDB, and delivery to a
real Alertmanager and a signed webhook.

The traffic has a daily and weekly rhythm, deterministic noise, a slow drift that
must not fire, and injected faults that must: a spend spike in one scenario, a new
model without a price, and a budget crossed at a time the test computes from the
same calls in plain Python.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import urllib3

from pipeline.alerts.engine import AlertEngine, EvaluationBeforeHistory, backtest, data_time
from pipeline.alerts.history import AlertHistory
from pipeline.alerts.rules import load_rules
from pipeline.alerts.state import Observation
from pipeline.alerts.templates import show
from pipeline.clickhouse.migrate import migrate
from pipeline.query.alert_inputs import ClickHouseAlertInputs
from tests.unit.alert_reference import Call, MemoryInputs

HOUR = timedelta(hours=1)
CENT = Decimal("0.01")
_COLUMNS = [
    "event_id", "task_id", "ts", "provider", "model", "scenario_id", "environment", "owner",
    "status", "service_tier", "attempt", "retry_of", "input_tokens", "cache_read_tokens",
    "cache_write_tokens", "cache_write_1h_tokens", "output_tokens", "cost_total", "cost_known",
    "currency", "price_book_version", "pricing_error",
]  # fmt: skip


def _noise(*parts: object) -> Decimal:
    """A deterministic factor in [0.9, 1.1), from a hash of ``parts``."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return Decimal(90 + digest[0] % 20) / 100


def traffic(start: datetime, weeks: int, spike_at: datetime | None,
            unpriced_at: datetime | None) -> list[Call]:  # fmt: skip
    """Calls of scenarios chat (drifting up 3% a day) and search, hour by hour."""
    calls = []
    hours = weeks * 7 * 24
    for h in range(hours):
        hour = start + h * HOUR
        busy = 3 if 8 <= hour.hour < 20 else 1  # daily rhythm
        weekend = hour.weekday() >= 5
        for scenario, base in (("chat", Decimal("0.40")), ("search", Decimal("0.20"))):
            n = busy * (1 if weekend else 2)
            if scenario == "search" and spike_at is not None and hour == spike_at:
                n *= 10
            drift = Decimal("1.03") ** (h // 24) if scenario == "chat" else Decimal(1)
            for i in range(n):
                cost = (base * drift * _noise(scenario, h, i)).quantize(CENT)
                ts = hour + timedelta(minutes=(60 * i) // n + 1)
                labels = {"scenario_id": scenario, "provider": "openai", "model": "gpt-4o-mini",
                          "owner": "team-a", "environment": "prod"}  # fmt: skip
                # Cache reads vary by hour (the hit rate's numerator); writes are split
                # into 5-minute and 1-hour ones by `store`.
                calls.append(Call(ts, cost, labels, tokens=1000, cache_read_tokens=100 * (h % 5),
                                  cache_write_tokens=150, output_tokens=200))  # fmt: skip
        if unpriced_at is not None and hour == unpriced_at:
            for minute in (10, 40):
                labels = {"scenario_id": "chat", "provider": "acme", "model": "m-new",
                          "owner": "team-a", "environment": "prod"}  # fmt: skip
                calls.append(Call(hour + timedelta(minutes=minute), Decimal(0), labels,
                                  unpriced=True, tokens=500))  # fmt: skip
    return calls


def store(client: Any, calls: list[Call], batch: str = "") -> None:
    """Insert ``calls`` (``batch`` keeps the event ids of later inserts distinct)."""
    rows = []
    for n, c in enumerate(calls):
        cost = None if c.unpriced else c.cost
        # The reference's classes as the call columns: the rest of the prompt is
        # uncached input; half the cache writes (rounded down) are 1-hour ones.
        write_1h = c.cache_write_tokens // 2
        uncached = c.prompt_tokens - c.cache_read_tokens - c.cache_write_tokens
        rows.append((
            f"{batch}e{n}", f"{batch}t{n}", c.ts, c.label("provider"), c.label("model"),
            c.label("scenario_id"), c.label("environment"), c.label("owner"), "ok", "standard",
            1, "", uncached, c.cache_read_tokens, c.cache_write_tokens - write_1h, write_1h,
            c.output_tokens, cost, cost, "USD", "test@1", "no price" if c.unpriced else "",
        ))  # fmt: skip
    for i in range(0, len(rows), 20_000):
        client.insert("calls", rows[i : i + 20_000], column_names=_COLUMNS)


RULES = """
groups:
  - name: hourly
    interval: 1h
    rules:
      - alert: SpendSpike
        kind: anomaly
        metric: spend
        group_by: [scenario_id]
        z: 4
        min_ratio: 2
        min_impact: "0.50"
      - alert: SearchBudget
        kind: budget
        amount: "{amount}"
        match: {{scenario_id: search}}
        thresholds: ["0.5"]
        burn_windows: []
      - alert: ModelWithoutPrice
        kind: unpriced
        window: 1h
{receivers}
"""

START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday; five weeks to 9 November
SPIKE = datetime(2026, 11, 5, 14, tzinfo=UTC)
UNPRICED = datetime(2026, 11, 6, 9, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """chDB runs one engine (one path) per process: the tests share it, each with a
    database of its own."""
    return tmp_path_factory.mktemp("alerts")


def _database(directory: Path) -> Any:
    from pipeline.clickhouse.client import connect
    from pipeline.config import ClickHouseSettings, StackSettings

    settings = ClickHouseSettings(
        dsn=f"chdb://{directory / 'ch'}", database=f"t_{uuid.uuid4().hex[:8]}"
    )
    client = connect(settings, StackSettings(data_dir=directory))
    migrate(client)
    return client


@pytest.fixture(scope="module")
def history_db(engine_dir: Path) -> Iterator[tuple[Any, list[Call]]]:
    client = _database(engine_dir)
    calls = traffic(START, 5, SPIKE, UNPRICED)
    store(client, calls)
    yield client, calls
    client.close()


def test_clickhouse_inputs_equal_the_reference_over_any_window(history_db: Any) -> None:
    client, calls = history_db
    stored, reference = ClickHouseAlertInputs(client), MemoryInputs(calls)
    windows = [
        (SPIKE + timedelta(minutes=55), SPIKE + timedelta(hours=1, minutes=5)),  # inside hours
        (SPIKE - timedelta(minutes=30), SPIKE + timedelta(hours=3, minutes=20)),  # edges + hours
        (START, START + timedelta(weeks=5)),  # whole hours only
        (SPIKE + timedelta(minutes=7), SPIKE + timedelta(minutes=7)),  # empty
    ]
    for start, end in windows:
        for group_by in ([], ["scenario_id"], ["provider", "model"]):
            assert stored.sums(group_by, {}, start, end) == reference.sums(group_by, {}, start, end)
        assert stored.sums(["owner"], {"scenario_id": "search"}, start, end) == reference.sums(
            ["owner"], {"scenario_id": "search"}, start, end
        )
    # Cache figures are compared too, across raw-row edges: reads vary by hour, and the
    # prompt counts 1-hour cache writes (800 of each call's 1000 tokens; 200 are output).
    edges = reference.sums(["scenario_id"], {}, *windows[1])[("search",)]
    assert edges.prompt_tokens == 800 * edges.calls and edges.cache_read_tokens > 0
    week = (SPIKE - timedelta(weeks=1), SPIKE + HOUR)
    assert stored.hourly(["scenario_id"], {}, *week) == reference.hourly(["scenario_id"], {}, *week)
    assert stored.first_unpriced(UNPRICED, UNPRICED + HOUR) == {("acme", "m-new"): UNPRICED}


def test_a_week_of_backtest_raises_exactly_the_injected_faults(
    history_db: Any, tmp_path: Path
) -> None:
    client, calls = history_db
    # The budget: twice search's spend from 1 November to 5 November 00:00, so the 0.5
    # threshold is reached exactly at 5 November 00:00 (hourly evaluations).
    november = datetime(2026, 11, 1, tzinfo=UTC)
    crossing = datetime(2026, 11, 5, tzinfo=UTC)
    spent = sum(c.cost for c in calls if c.label("scenario_id") == "search"
                and november <= c.ts < crossing)  # fmt: skip
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(amount=2 * spent, receivers=""), encoding="utf-8")
    rules = load_rules(path)
    events = list(backtest(rules, ClickHouseAlertInputs(client), datetime(2026, 11, 2, tzinfo=UTC),
                           datetime(2026, 11, 9, tzinfo=UTC)))  # fmt: skip
    got = [(e.alert, e.state, e.at, dict(e.labels)) for e in events]
    assert got == [
        ("SearchBudget", "firing", crossing, {"threshold": "0.5", "period": "2026-11"}),
        ("SpendSpike", "firing", SPIKE + HOUR, {"scenario_id": "search"}),
        ("SpendSpike", "resolved", SPIKE + 2 * HOUR, {"scenario_id": "search"}),
        ("ModelWithoutPrice", "firing", UNPRICED + HOUR, {"provider": "acme", "model": "m-new"}),
        ("ModelWithoutPrice", "resolved", UNPRICED + 2 * HOUR,
         {"provider": "acme", "model": "m-new"}),
    ]  # fmt: skip
    spike = events[1]
    # The spike hour: ten times the usual calls of search at 14:00 on a Thursday.
    usual = [c.cost for c in calls if c.label("scenario_id") == "search"
             and c.ts.hour == 14 and c.ts.weekday() == 3 and c.ts < SPIKE]  # fmt: skip
    actual = sum(c.cost for c in calls if c.label("scenario_id") == "search"
                 and SPIKE <= c.ts < SPIKE + HOUR)  # fmt: skip
    assert spike.value == actual and len(usual) == 4 * 6
    assert spike.impact is not None and spike.impact > actual / 2


# --- delivery ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Webhook(BaseHTTPRequestHandler):
    secret = b""
    received: list[dict[str, Any]] = []
    fail = False

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        want = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        if type(self).fail:
            self.send_response(503)
        elif self.secret and not hmac.compare_digest(
            self.headers.get("X-Costflow-Signature", ""), want
        ):
            self.send_response(401)
        else:
            type(self).received.append(json.loads(body))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _one_rule(directory: Path, rule: str, receiver: str = "") -> Any:
    """A rule file of one group (``interval: 5m``) holding ``rule`` (YAML flow
    mapping) and, if given, ``receiver``."""
    path = directory / "rules.yaml"
    text = f"groups:\n  - name: g\n    interval: 5m\n    rules:\n      - {rule}\n"
    if receiver:
        text += f"receivers:\n  - {receiver}\n"
    path.write_text(text, encoding="utf-8")
    return load_rules(path)


def _serve_webhook(secret: bytes = b"") -> HTTPServer:
    """A webhook receiver on a free loopback port, its record of posts emptied."""
    webhook = HTTPServer(("127.0.0.1", 0), _Webhook)
    _Webhook.secret, _Webhook.received, _Webhook.fail = secret, [], False
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    return webhook


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.fail("Alertmanager is missing: apt-get install prometheus-alertmanager "
                    "(.ci/run installs it)")  # fmt: skip
    port = _free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text("route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.path={tmp_path / 'am'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if urllib3.request("GET", f"{url}/-/ready", timeout=1).status == 200:
                break
        except urllib3.exceptions.HTTPError:
            pass
        assert process.poll() is None, "Alertmanager exited at start"
        assert time.monotonic() < deadline, "Alertmanager not ready in 30 s"
        time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(10)


def _active(url: str) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = json.loads(urllib3.request("GET", f"{url}/api/v2/alerts").data)
    return [a for a in alerts if a["status"]["state"] == "active"]


def test_delivery_to_alertmanager_and_a_signed_webhook_across_a_restart(
    engine_dir: Path, alertmanager: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chdb_client = _database(engine_dir)
    now = datetime.now(UTC).replace(microsecond=0)
    hour = now.replace(minute=0, second=0) - HOUR
    new_model = {"provider": "acme", "model": "m-new", "scenario_id": "chat"}
    store(chdb_client, [Call(hour + timedelta(minutes=m), Decimal(0), new_model, unpriced=True)
                        for m in (5, 50)])  # fmt: skip
    webhook = _serve_webhook(b"s3cret")
    monkeypatch.setenv("COSTFLOW_TEST_WEBHOOK_SECRET", "s3cret")
    receivers = (
        "receivers:\n"
        f"  - {{name: am, type: alertmanager, url: '{alertmanager}'}}\n"
        f"  - {{name: hook, type: webhook, url: 'http://127.0.0.1:{webhook.server_port}/',"
        " secret_env: COSTFLOW_TEST_WEBHOOK_SECRET}\n"
    )
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(amount="1000", receivers=receivers), encoding="utf-8")
    rules, history = load_rules(path), AlertHistory(chdb_client)
    at = data_time(chdb_client)
    assert at == hour + timedelta(minutes=50, milliseconds=1)  # just after the last call

    engine = AlertEngine(rules, ClickHouseAlertInputs(chdb_client))
    _Webhook.fail = True  # the webhook is down for the first cycle
    [fired] = engine.cycle(at + timedelta(minutes=10), history, engine.deliveries())
    assert fired.alert == "ModelWithoutPrice" and fired.state == "firing"
    assert _Webhook.received == []
    assert engine.failed_receivers == ["hook"]  # `alerts run --once` exits 1 for it
    [active] = _active(alertmanager)
    assert active["labels"] == {"alertname": "ModelWithoutPrice", "severity": "warning",
                                "costflow_kind": "unpriced", "provider": "acme",
                                "model": "m-new"}  # fmt: skip
    assert active["annotations"]["value"] == "2"

    # A restart: the firing alert comes back from history; the webhook, up again,
    # gets the firing it missed, once; Alertmanager gets a refresh.
    _Webhook.fail = False
    again = AlertEngine(rules, ClickHouseAlertInputs(chdb_client))
    assert again.restore(history) == 1
    assert again.cycle(at + timedelta(minutes=15), history, again.deliveries(), force=True) == []
    assert [a["status"] for p in _Webhook.received for a in p["alerts"]] == ["firing"]
    assert again.failed_receivers == []
    assert again.cycle(at + timedelta(minutes=20), history, again.deliveries(), force=True) == []
    assert len(_Webhook.received) == 1  # nothing re-sent

    # Two hours on the model is no longer new: resolved, told to both, once.
    later = at + timedelta(hours=2)
    [resolved] = again.cycle(later, history, again.deliveries(), force=True)
    assert resolved.state == "resolved" and resolved.starts_at == fired.starts_at
    assert [p["status"] for p in _Webhook.received] == ["firing", "resolved"]
    assert _active(alertmanager) == []
    restarted = AlertEngine(rules, ClickHouseAlertInputs(chdb_client))
    assert restarted.restore(history) == 0
    assert restarted.cycle(later, history, restarted.deliveries(), force=True) == []
    assert len(_Webhook.received) == 2
    webhook.shutdown()


def test_a_rule_with_for_fires_when_each_cycle_is_a_new_process(
    engine_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`alerts run --once` from cron: a fresh engine per cycle, state only from
    alert_events. A budget over its 50% mark with `for: 10m` is pending at 12:00,
    still pending at 12:05, fires at 12:10 (held 10 m) and is not fired again at 12:15."""
    client = _database(engine_dir)
    scenario = {"provider": "p", "model": "m", "scenario_id": "search"}
    store(client, [Call(datetime(2026, 11, 30, 11, 30, tzinfo=UTC), Decimal(60), scenario)])
    rules = _one_rule(tmp_path, "{alert: Budget, kind: budget, amount: '100', "
                      "thresholds: ['0.5'], burn_windows: [], for: 10m}")  # fmt: skip
    history = AlertHistory(client)
    transitions = []
    for minute in (0, 5, 10, 15):
        engine = AlertEngine(rules, ClickHouseAlertInputs(client))
        engine.restore(history)
        at = datetime(2026, 11, 30, 12, minute, tzinfo=UTC)
        transitions += [(minute, e.state) for e in engine.cycle(at, history, [], force=True)]
    assert transitions == [(0, "pending"), (10, "firing")]
    [fired] = [e for e in history.events_since(datetime(2026, 11, 30, tzinfo=UTC))
               if e.state == "firing"]  # fmt: skip
    assert fired.starts_at == datetime(2026, 11, 30, 12, 10, tzinfo=UTC)
    # `alerts run --at` an earlier time would record transitions out of order: refused,
    # and nothing recorded.
    engine = AlertEngine(rules, ClickHouseAlertInputs(client))
    engine.restore(history)
    with pytest.raises(EvaluationBeforeHistory, match="alerts test"):
        engine.cycle(datetime(2026, 11, 30, 12, 2, tzinfo=UTC), history, [], force=True)
    assert len(history.events_since(datetime(2026, 11, 30, tzinfo=UTC))) == 2
    # The rule removed from the file: its alert stays firing, and a restart says so.
    other = _one_rule(tmp_path, "{alert: Other, kind: unpriced}")
    with caplog.at_level(logging.WARNING, logger="costflow.alerts"):
        AlertEngine(other, ClickHouseAlertInputs(client)).restore(history)
    assert "rules not in these files: Budget (1)" in caplog.text
    # Told the rule is removed, a restart resolves its alert once, and it stays resolved.
    AlertEngine(other, ClickHouseAlertInputs(client)).restore(history, resolve_removed=True)
    [last] = history.latest(["Budget"])
    assert (last.state, last.starts_at) == ("resolved", fired.starts_at)
    assert last.details["resolved_because"].startswith("rule removed")
    assert history.firing_elsewhere(["Other"]) == {}
    AlertEngine(other, ClickHouseAlertInputs(client)).restore(history, resolve_removed=True)
    budget_events = history.events_since(datetime(2026, 11, 30, tzinfo=UTC), ["Budget"])
    assert [e.state for e in budget_events] == ["pending", "firing", "resolved"]


def test_task_inputs_equal_the_reference(engine_dir: Path) -> None:
    """Decided-task sums and cost histograms from the task tables, against the plain
    reference over the same tasks (rows enter through task_changes, as the sink's)."""
    from datetime import date

    from tests.unit.alert_reference import Task

    client = _database(engine_dir)
    tasks = []
    for n in range(300):
        first = datetime(2026, 11, 1 + n % 10, n % 24, tzinfo=UTC)
        outcome = ("accepted", "rejected", "", "failed")[n % 4]
        labels = {"scenario_id": f"s{n % 2}", "owner": f"o{n % 3}", "environment": "prod"}
        cost = (Decimal("0.01") * (1 + n % 37) * (1 + n % 5)).quantize(CENT)
        tasks.append(Task(first, cost, outcome, first + timedelta(days=2), labels, f"task-{n}",
                          unpriced_calls=int(n % 7 == 0)))  # fmt: skip
    rows = [
        (f"task-{n}", 1 << 20, 1, t.label("scenario_id"), t.label("environment"),
         t.label("owner"), t.first_event_at, t.first_event_at, 1, 0, 0, 0, t.unpriced_calls,
         t.cost, 10, 5,
         t.outcome, "user" if t.outcome else "", t.deadline, ["m"], "", "test")
        for n, t in enumerate(tasks)
    ]  # fmt: skip
    client.insert("task_changes", rows, column_names=[
        "task_id", "version", "sign", "scenario_id", "environment", "owner", "first_event_at",
        "last_event_at", "calls", "failed_calls", "retried_calls", "fallback_calls",
        "unpriced_calls", "total_cost", "input_tokens", "output_tokens", "outcome",
        "outcome_source", "outcome_deadline", "models", "experiment", "plan_id"])  # fmt: skip
    stored, reference = ClickHouseAlertInputs(client), MemoryInputs(tasks=tasks)
    start, end = datetime(2026, 11, 2, 5, tzinfo=UTC), datetime(2026, 11, 8, 17, tzinfo=UTC)
    for decided_by in (datetime(2026, 11, 5, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)):
        for group_by in ([], ["scenario_id"], ["owner", "scenario_id"]):
            got = stored.decided_tasks(group_by, {}, start, end, decided_by)
            want = reference.decided_tasks(group_by, {}, start, end, decided_by)
            assert want and all(v.tasks for v in want.values())
            assert {k: replace(v, cost_squared=0.0) for k, v in got.items()} == {
                k: replace(v, cost_squared=0.0) for k, v in want.items()}  # fmt: skip
            assert sum(v.unpriced_tasks for v in want.values()) > 0
            for k in want:
                assert got[k].cost_squared == pytest.approx(want[k].cost_squared)
            # The hourly task figures anomaly rules read (cost per task, per accepted
            # outcome, waste share), decided as of the same time.
            hourly = reference.task_hourly(group_by, {}, start, end, decided_by)
            hours = [h for series in hourly.values() for h in series.values()]
            assert hours and all(h.tasks for h in hours)
            for part in ("decided", "accepted", "waste_cost", "decided_unpriced_calls"):
                assert any(getattr(h, part) for h in hours)
            assert any(h.decided < h.tasks for h in hours) is (decided_by.day == 5)
            assert stored.task_hourly(group_by, {}, start, end, decided_by) == hourly
        assert stored.task_hourly(["owner"], {"scenario_id": "s1"}, start, end, end) == (
            reference.task_hourly(["owner"], {"scenario_id": "s1"}, start, end, end)
        )
    costly = (datetime(2026, 11, 4, tzinfo=UTC), end, Decimal("1.00"), None)
    assert len(reference.costly_tasks({"owner": "o1"}, *costly)) > 5
    assert stored.costly_tasks({"owner": "o1"}, *costly) == reference.costly_tasks(
        {"owner": "o1"}, *costly
    )
    days = (date(2026, 11, 3), date(2026, 11, 9))
    for group_by in ([], ["owner"]):
        assert (
            len(
                reference.cost_histogram(group_by, {"scenario_id": "s1"}, *days)[
                    ("o0",) if group_by else ()
                ]
            )
            > 10
        )
        assert stored.cost_histogram(group_by, {"scenario_id": "s1"}, *days) == (
            reference.cost_histogram(group_by, {"scenario_id": "s1"}, *days)
        )


def test_the_sinks_alert_loop_evaluates_records_and_delivers(
    engine_dir: Path, tmp_path: Path
) -> None:
    """What `costflow up` runs when COSTFLOW_SINK_ALERT_RULES names rule files."""
    from pipeline.runtime.alert_loop import AlertLoop

    client = _database(engine_dir)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    new_model = {"provider": "acme", "model": "m-loop", "scenario_id": "chat"}
    store(client, [Call(hour + timedelta(seconds=1), Decimal(0), new_model, unpriced=True)])
    webhook = _serve_webhook()
    path = tmp_path / "rules.yaml"
    path.write_text(
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n"
        "      - {alert: NewModel, kind: unpriced, window: 1h}\n"
        f"receivers:\n  - {{name: hook, type: webhook, url: 'http://127.0.0.1:{webhook.server_port}/'}}\n",
        encoding="utf-8",
    )
    _Webhook.secret = b""
    loop = AlertLoop(client, [path])
    loop.start()
    deadline = time.monotonic() + 60
    while not _Webhook.received:
        assert loop.is_alive() and time.monotonic() < deadline, "no alert delivered in 60 s"
        time.sleep(0.05)
    cycles = loop.stats.cycles
    while loop.stats.cycles < cycles + 2:  # two more cycles: nothing sent again
        assert time.monotonic() < deadline
        time.sleep(0.05)
    loop.stop()
    loop.join(10)
    webhook.shutdown()
    [payload] = _Webhook.received
    assert payload["alerts"][0]["labels"]["model"] == "m-loop"
    assert [e.alert for e in AlertHistory(client).events_since(hour)] == ["NewModel"]


def test_the_kafka_receiver_produces_each_event_once(tmp_path: Path) -> None:
    """To a real broker (embedded Tansu): a firing and its resolution, keyed by the
    alert's fingerprint, as the JSON ``alerts test`` prints."""
    from confluent_kafka import Consumer
    from confluent_kafka.admin import AdminClient, NewTopic

    from pipeline.alerts.receivers import KafkaDelivery
    from pipeline.alerts.rules import KafkaReceiver
    from pipeline.alerts.state import RuleState
    from pipeline.config import KafkaSettings
    from pipeline.embedded.broker import EmbeddedBroker

    rule = RuleState("Spend", "budget", "warning", timedelta(0), timedelta(0))
    t0 = datetime(2026, 11, 30, 10, tzinfo=UTC)
    [fired] = rule.step(t0, [Observation({"owner": "a"}, value=Decimal("12.50"))])
    [resolved] = rule.step(t0 + HOUR, [])
    with EmbeddedBroker() as broker:
        kafka = KafkaSettings(bootstrap=broker.bootstrap)
        topic = f"alerts-{uuid.uuid4().hex[:6]}"
        admin = AdminClient(kafka.librdkafka())  # kept: its futures die with it
        for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
            future.result(30)
        KafkaDelivery(KafkaReceiver(name="k", topic=topic), kafka).send([fired, resolved], t0)
        consumer = Consumer({**kafka.librdkafka(), "group.id": topic,
                             "auto.offset.reset": "earliest"})  # fmt: skip
        consumer.subscribe([topic])
        records: list[Any] = []
        deadline = time.monotonic() + 60
        while len(records) < 2:
            assert time.monotonic() < deadline, f"only {len(records)} alert records in 60 s"
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                records.append(message)
        consumer.close()
    assert [json.loads(r.value())["state"] for r in records] == ["firing", "resolved"]
    assert {r.key() for r in records} == {fired.fingerprint.encode()}
    assert json.loads(records[0].value())["value"] == "12.5"


def test_dead_letter_counts_by_the_time_the_sink_stored_them(engine_dir: Path) -> None:
    client = _database(engine_dir)
    base = datetime(2026, 11, 30, 10, tzinfo=UTC)
    reasons = ["not_json", "not_json", "schema_violation", "not_json"]
    rows = [(0, n, "costflow.calls", 0, n, reason, "", "x", base + timedelta(minutes=10 * n))
            for n, reason in enumerate(reasons)]  # fmt: skip
    client.insert("dead_letters", rows, column_names=[
        "dlq_partition", "dlq_offset", "source_topic", "source_partition", "source_offset",
        "reason", "detail", "payload", "received_at"])  # fmt: skip
    stored = ClickHouseAlertInputs(client)
    # [10:05, 10:35): offsets 1 (10:10), 2 (10:20), 3 (10:30).
    window = (base + timedelta(minutes=5), base + timedelta(minutes=35))
    assert stored.dead_letter_counts(*window) == {"not_json": 2, "schema_violation": 1}


def test_alerts_test_stops_where_the_stored_calls_stop(
    engine_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`costflow alerts test --until` past the data: the hours after the last call are
    not quiet hours. Judging them would fire a `direction: down` anomaly on spend that
    merely has not arrived; the CLI stops at the data and says so."""
    from pipeline.cli import main
    from pipeline.clickhouse.client import connect
    from pipeline.config import ClickHouseSettings, StackSettings

    monkeypatch.setenv("COSTFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COSTFLOW_CLICKHOUSE_DSN", f"chdb://{engine_dir / 'ch'}")  # one per process
    monkeypatch.setenv("COSTFLOW_CLICKHOUSE_DATABASE", f"cli_{uuid.uuid4().hex[:8]}")
    assert main(["migrate"]) == 0
    client = connect(ClickHouseSettings(), StackSettings())
    # $1 at half past every hour for four weeks: a flat series, last call 28 Nov 23:30.
    first = datetime(2026, 11, 1, tzinfo=UTC)
    store(client, [Call(first + h * HOUR + timedelta(minutes=30), Decimal(1),
                        {"provider": "p", "model": "m", "scenario_id": "s"})
                   for h in range(28 * 24)])  # fmt: skip
    rules = tmp_path / "down.yaml"
    rules.write_text(
        "groups:\n  - name: g\n    interval: 1h\n    rules:\n"
        "      - {alert: SpendDrop, kind: anomaly, metric: spend, direction: down}\n",
        encoding="utf-8",
    )
    capsys.readouterr()
    argv = ["alerts", "test", str(rules), "--since", "2026-11-28T20:00:00Z"]
    assert main([*argv, "--until", "2026-11-30T00:00:00Z"]) == 0
    out, err = capsys.readouterr()
    assert out == ""  # every judged hour had its $1
    assert "the stored calls end at 2026-11-28T23:30:00+00:00" in err
    # The same rule does see a real drop: the hour 22:00 gets nothing.
    client.command("ALTER TABLE calls DELETE WHERE toHour(ts) = 22 AND toDate(ts) = '2026-11-28'"
                   " SETTINGS mutations_sync = 1")  # fmt: skip
    client.command("ALTER TABLE call_costs_hourly DELETE WHERE hour = '2026-11-28 22:00:00'"
                   " SETTINGS mutations_sync = 1")  # fmt: skip
    assert main([*argv, "--until", "2026-11-30T00:00:00Z"]) == 0
    fired = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["alert"], e["state"], e["at"]) for e in fired][:1] == [
        ("SpendDrop", "firing", "2026-11-28T23:00:00+00:00")
    ]


def test_a_webhook_without_alertmanager_groups_repeats_and_honours_silences(
    engine_dir: Path, tmp_path: Path
) -> None:
    client = _database(engine_dir)
    hour = datetime(2026, 11, 30, 10, tzinfo=UTC)
    store(client, [
        Call(hour + timedelta(minutes=m), Decimal(0),
             {"provider": "acme", "model": model, "scenario_id": "chat"}, unpriced=True)
        for m, model in ((5, "m-a"), (10, "m-b"), (15, "m-muted"))
    ])  # fmt: skip
    webhook = _serve_webhook()
    clock = datetime(2026, 11, 30, 12, tzinfo=UTC)
    path = tmp_path / "rules.yaml"
    path.write_text(
        "groups:\n"
        "  - name: g\n"
        "    rules:\n"
        "      - {alert: ModelWithoutPrice, kind: unpriced, window: 1h}\n"
        "receivers:\n"
        f"  - {{name: hook, type: webhook, url: 'http://127.0.0.1:{webhook.server_port}/',"
        " group_by: [alertname], repeat_interval: 1h}\n"
        "silences:\n"
        "  - matchers: ['alertname=\"ModelWithoutPrice\"', 'model=~\"m-mu.*\"']\n"
        f"    starts_at: {(clock - HOUR).isoformat()}\n"
        f"    ends_at: {(clock + timedelta(minutes=30)).isoformat()}\n"
        "    created_by: oncall\n"
        "    comment: the muted model is priced tomorrow\n",
        encoding="utf-8",
    )
    rules, history = load_rules(path), AlertHistory(client)
    at = hour + timedelta(minutes=20)  # the data's time stays; the clock moves

    def cycle(minutes: int) -> list[list[str]]:
        """A new process each cycle (state from history); the models of each post."""
        engine = AlertEngine(rules, ClickHouseAlertInputs(client))
        engine.restore(history)
        before = len(_Webhook.received)
        engine.cycle(at, history, engine.deliveries(), force=True,
                     now=clock + timedelta(minutes=minutes))  # fmt: skip
        posts = _Webhook.received[before:]
        for post in posts:
            assert post["groupLabels"] == {"alertname": "ModelWithoutPrice"}
            assert post["groupKey"] == '{}:{alertname="ModelWithoutPrice"}'
        return [sorted(a["labels"]["model"] for a in p["alerts"]) for p in posts]

    # Three firings, one post for the group; the silenced one is held back.
    assert cycle(0) == [["m-a", "m-b"]]
    outcomes = client.query(
        "SELECT outcome, count() FROM alert_deliveries WHERE receiver = 'hook' GROUP BY outcome "
        "ORDER BY outcome"
    ).result_rows
    assert outcomes == [("sent", 2), ("silenced", 1)]
    assert cycle(20) == []  # still silenced, nothing new
    assert cycle(30) == [["m-muted"]]  # the silence ended (its end is exclusive)
    assert cycle(59) == []
    assert cycle(60) == [["m-a", "m-b"]]  # repeated after 1h; m-muted's hour is not up
    assert cycle(90) == [["m-muted"]]
    webhook.shutdown()


def test_an_hour_changed_after_it_was_judged_is_restated_and_fires_once(
    engine_dir: Path, tmp_path: Path
) -> None:
    """Spend of scenario chat: 1.00 an hour, the same hour of the three weeks before
    (expected 1.00, MAD 0). The hour is judged at 11:05 and is normal; then nine late
    calls of 1.00 land in it (spend 10.00: ten times the baseline, impact 9.00). The
    cycle of 12:05 judges 11:00 fresh and notices 10:00 changed: it fires once with
    ``restated_window``, the webhook is told; 12:10 resolves it (it is not the current
    hour's finding). A tenth late call then changes the value (11.00): recorded as
    ``restated``, not notified. Every cycle is a new process."""
    client = _database(engine_dir)
    hour = datetime(2026, 11, 30, 10, tzinfo=UTC)
    chat = {"provider": "openai", "model": "gpt-4o-mini", "scenario_id": "chat"}
    store(client, [Call(hour - timedelta(weeks=k) + timedelta(minutes=5), Decimal(1), chat)
                   for k in range(4)])  # fmt: skip
    webhook = _serve_webhook()
    rules = _one_rule(
        tmp_path,
        "{alert: SpendSpike, kind: anomaly, metric: spend, group_by: [scenario_id],"
        " weeks: 3, min_history: 3, z: 4, min_ratio: 2, min_impact: '0.50'}",
        f"{{name: hook, type: webhook, url: 'http://127.0.0.1:{webhook.server_port}/'}}",
    )
    history = AlertHistory(client)

    def cycle(at: datetime) -> list[tuple[str, dict[str, str]]]:
        engine = AlertEngine(rules, ClickHouseAlertInputs(client))
        engine.restore(history)
        before = len(_Webhook.received)
        engine.cycle(at, history, engine.deliveries(), force=True, now=at)
        return [(a["status"], a["labels"]) for p in _Webhook.received[before:]
                for a in p["alerts"]]  # fmt: skip

    def restated() -> list[tuple[str, str, dict[str, str]]]:
        return [(e.details["restated"], str(e.value), e.details["was"])
                for e in history.events_since(hour) if e.state == "restated"]  # fmt: skip

    assert cycle(hour + timedelta(hours=1, minutes=5)) == []  # 10:00 judged: normal
    late = [Call(hour + timedelta(minutes=30 + m), Decimal(1), chat) for m in range(9)]
    store(client, late, batch="late")
    want = {"alertname": "SpendSpike", "severity": "warning", "costflow_kind": "anomaly",
            "scenario_id": "chat", "restated_window": hour.isoformat()}  # fmt: skip
    assert cycle(hour + timedelta(hours=2, minutes=5)) == [("firing", want)]
    [fired] = [e for e in history.events_since(hour) if e.state == "firing"]
    assert (fired.value, fired.expected, fired.impact) == (Decimal(10), Decimal(1), Decimal(9))
    assert (fired.details["restated"], fired.details["was"]) == ("found", "not found")
    assert cycle(hour + timedelta(hours=2, minutes=10)) == [("resolved", want)]
    assert cycle(hour + timedelta(hours=2, minutes=15)) == []  # nothing changed since
    store(client, [Call(hour + timedelta(minutes=50), Decimal(1), chat)], batch="later")
    assert cycle(hour + timedelta(hours=2, minutes=20)) == []  # recorded, not notified
    assert restated() == [("value", "11", "10")]
    assert cycle(hour + timedelta(hours=2, minutes=25)) == []
    assert len(restated()) == 1
    webhook.shutdown()


_TASK_COLUMNS = [
    "task_id", "version", "sign", "scenario_id", "environment", "owner", "first_event_at",
    "last_event_at", "calls", "failed_calls", "retried_calls", "fallback_calls",
    "unpriced_calls", "total_cost", "input_tokens", "output_tokens", "outcome",
    "outcome_source", "outcome_deadline", "models", "experiment", "plan_id",
]  # fmt: skip


def _task_rows(tasks: list[Any], version: int, sign: int) -> list[tuple[Any, ...]]:
    """Rows of task_changes for reference tasks (as the sink writes them)."""
    return [
        (t.task_id, version, sign, t.label("scenario_id"), "", "", t.first_event_at,
         t.last_event_at or t.first_event_at, t.calls, 0, 0, 0, t.unpriced_calls, t.cost, 10, 5,
         t.outcome, "user" if t.outcome else "", t.deadline, ["m"], "", "test")
        for t in tasks
    ]  # fmt: skip


def test_a_task_hour_is_judged_once_decided_and_again_when_outcomes_arrive(
    engine_dir: Path, tmp_path: Path
) -> None:
    """Cost per accepted outcome of scenario chat, 30 Nov 10:00, over chDB's task tables
    (hand-worked in tests/unit/test_alert_restatements.py): baseline 0.45 (0.45, 0.40,
    0.50 the three Mondays before). The hour: a $0.45 task accepted at once and three
    of $0.90 running until 20:30. Not judged at 11:05 (its tasks undecided); judged at
    11:05 the next day: 0.45 / 1, normal, kept with the task digest. Their outcomes
    arrive (accepted, accepted, rejected): 13:05 judges the hour again, 3.15 / 3 = 1.05,
    and fires once with ``restated_window``; 13:10 resolves it. The digests ClickHouse
    gives equal the reference's over the same tasks."""
    from pipeline.alerts.restatements import task_hour_digests
    from tests.unit.alert_reference import Task

    client = _database(engine_dir)
    hour = datetime(2026, 11, 30, 10, tzinfo=UTC)
    chat = {"scenario_id": "chat"}
    closed = hour - timedelta(days=2)

    def week(k: int, specs: list[tuple[str, str]]) -> list[Task]:
        first = hour - timedelta(weeks=k) + timedelta(minutes=5)
        return [Task(first, Decimal(c), o, closed, chat, f"w{k}-{i}")
                for i, (c, o) in enumerate(specs)]  # fmt: skip

    def slow(outcomes: tuple[str, ...]) -> list[Task]:
        end = hour + timedelta(hours=10, minutes=30)
        return [Task(hour + timedelta(minutes=6), Decimal("0.90"), o, end + timedelta(days=1,
                     minutes=30), chat, f"slow-{i}", last_event_at=end)
                for i, o in enumerate(outcomes)]  # fmt: skip

    known = (week(3, [("0.30", "accepted")] * 2 + [("0.30", "rejected")])
             + week(2, [("0.20", "accepted")] * 2 + [("0.20", "failed"), ("0.20", "")])
             + week(1, [("0.25", "accepted"), ("0.25", "rejected")])
             + week(0, [("0.45", "accepted")]))  # fmt: skip
    pending = slow(("", "", ""))
    client.insert("task_changes", _task_rows(known + pending, 1, 1), column_names=_TASK_COLUMNS)
    rules = _one_rule(tmp_path, "{alert: Cpao, kind: anomaly, metric: cost_per_accepted_outcome,"
                      " group_by: [scenario_id]}")  # fmt: skip
    history = AlertHistory(client)

    def cycle(at: datetime) -> list[tuple[str, str, str]]:
        engine = AlertEngine(rules, ClickHouseAlertInputs(client))
        engine.restore(history)
        return [(e.state, e.labels.get("restated_window", ""), show(e.value))
                for e in engine.cycle(at, history, [], force=True, now=at)]  # fmt: skip

    def kept() -> list[tuple[datetime, str, str]]:
        rows = client.query("SELECT window_start, digest, findings FROM alert_judgements FINAL "
                            "WHERE alert = 'Cpao' ORDER BY window_start").result_rows  # fmt: skip
        return [(w.replace(tzinfo=UTC), d, f) for w, d, f in rows]

    day = timedelta(days=1)
    assert cycle(hour + timedelta(hours=1, minutes=5)) == []
    assert hour not in [w for w, _, _ in kept()]  # 29 Nov 10:00 is judged, not this hour
    assert cycle(hour + day + timedelta(hours=1, minutes=5)) == []
    assert (hour, "4:4:0:3.15/1:1:0:0.45/1:0", "{}") in kept()
    decided = slow(("accepted", "accepted", "rejected"))
    client.insert("task_changes", _task_rows(pending, 1, -1) + _task_rows(decided, 2, 1),
                  column_names=_TASK_COLUMNS)  # fmt: skip
    at = hour + day + timedelta(hours=3, minutes=5)
    stored, reference = ClickHouseAlertInputs(client), MemoryInputs(tasks=known + decided)
    since = hour - timedelta(weeks=4)
    assert task_hour_digests(stored, since, at, at) == task_hour_digests(reference, since, at, at)
    window = hour.isoformat()
    assert cycle(at) == [("firing", window, "1.05")]
    [fired] = [e for e in history.events_since(hour) if e.state == "firing"]
    assert (fired.expected, fired.impact) == (Decimal("0.45"), Decimal("1.8"))
    assert (fired.details["restated"], fired.details["z"]) == ("found", "5.43")
    assert (hour, "4:4:0:3.15/4:4:0:3.15/3:0.9") in [(w, d) for w, d, _ in kept()]
    assert cycle(at + timedelta(minutes=5)) == [("resolved", window, "1.05")]
    assert cycle(at + timedelta(minutes=10)) == []


def test_a_closed_budget_period_is_judged_once_and_restated_when_its_calls_change(
    engine_dir: Path, tmp_path: Path
) -> None:
    """A daily budget of 10.00 (thresholds 0.5 and 1.0). 29 November spent 6.00 and
    was never evaluated while open: the first cycle of the 30th judges the closed day
    and fires 0.5 there (reached after the day's last evaluation), resolved the next
    cycle. A late call of 5.00 dated the 29th (spend 11.00) then crosses 1.0: it fires
    once with ``restated_window``, and 0.5's value change is recorded (6 -> 11)."""
    client = _database(engine_dir)
    day = datetime(2026, 11, 29, tzinfo=UTC)
    chat = {"provider": "openai", "model": "gpt-4o-mini", "scenario_id": "chat"}
    store(client, [Call(day + timedelta(hours=h), Decimal(2), chat) for h in (3, 9, 23)])
    rules = _one_rule(tmp_path, "{alert: DailyBudget, kind: budget, amount: '10', period: day,"
                      " thresholds: ['0.5', '1'], burn_windows: []}")  # fmt: skip
    history = AlertHistory(client)

    def cycle(at: datetime) -> list[tuple[str, str, str]]:
        engine = AlertEngine(rules, ClickHouseAlertInputs(client))
        engine.restore(history)
        return [(e.state, e.labels["threshold"], show(e.value))
                for e in engine.cycle(at, history, [], force=True, now=at)]  # fmt: skip

    morning = day + timedelta(days=1, hours=1)
    assert cycle(morning) == [("firing", "0.5", "6")]
    [closing] = [e for e in history.events_since(day) if e.state == "firing"]
    assert "judged_at_close" in closing.details and closing.labels["period"] == "2026-11-29"
    assert cycle(morning + timedelta(minutes=5)) == [("resolved", "0.5", "6")]
    (judged,) = client.query(
        "SELECT count() FROM alert_judgements FINAL WHERE alert = 'DailyBudget'"
    ).result_rows[0]
    assert judged == 1
    store(client, [Call(day + timedelta(hours=23, minutes=59), Decimal(5), chat)], batch="late")
    events = cycle(morning + timedelta(minutes=10))
    assert sorted(events) == [("firing", "1", "11"), ("restated", "0.5", "11")]
    [fired] = [e for e in history.events_since(day)
               if e.state == "firing" and "restated_window" in e.labels]  # fmt: skip
    assert fired.labels["restated_window"] == day.isoformat()
    assert fired.labels["period"] == "2026-11-29"
    assert cycle(morning + timedelta(minutes=15)) == [("resolved", "1", "11")]
    assert cycle(morning + timedelta(minutes=20)) == []
