"""`costflow up` serves events end to end, and Ctrl-C stops every child cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from pipeline.cli import UP_METRICS_PORTS, with_local_metrics
from pipeline.clickhouse.client import connect
from pipeline.config import KafkaSettings, Settings
from pipeline.demo.workload import generate, write_jsonl
from pipeline.embedded.broker import free_port, wait_until_ready
from pipeline.kafka.produce import produce_lines
from pipeline.resources import example_alert_rules
from pipeline.runtime.progress import PipelineProgress
from tests.integration.conftest import assert_matches_reference, await_condition
from tests.integration.test_restarts import run_wave

pytestmark = pytest.mark.integration


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _posted(url: str, event: dict[str, object]) -> bool:
    """One POST of ``event``: True once answered 200 (before that, refused: not up yet)."""
    request = urllib.request.Request(
        url, json.dumps(event).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status) == 200
    except OSError:
        return False


def test_up_serves_events_and_ctrl_c_stops_all(isolated_settings: Settings) -> None:
    port = free_port()
    settings = isolated_settings.replace(kafka=KafkaSettings(embedded_port=port))
    env = dict(os.environ)
    env.update(settings.env())
    del env["COSTFLOW_KAFKA_BOOTSTRAP"]  # unset = embedded, as a user would run it
    collector = free_port()
    env["COSTFLOW_INGEST_HTTP_PORT"] = str(collector)  # the collector's own port
    # `up` serves the worker's metrics on loopback 9101 unless told otherwise.
    chosen, _ = with_local_metrics(settings)
    if chosen.worker.metrics_port != UP_METRICS_PORTS["worker"]:
        pytest.fail("port 9101 is taken on this machine; `up` would not serve metrics there")
    up = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "up"], env=env)
    try:
        kafka = KafkaSettings(bootstrap=f"127.0.0.1:{port}")
        wait_until_ready(kafka.resolved_bootstrap(), 60, up)
        events = generate(20, seed=3, duplicate_share=0.0)
        produce_lines(kafka, settings.topics, write_jsonl(events))
        # The collector `up` runs takes events too (on loopback, without a token)
        via_http = {**events[0], "event_id": "via-http", "task_id": "t-via-http"}
        if via_http["type"] != "call":
            via_http = next({**e, "event_id": "via-http", "task_id": "t-via-http"}
                            for e in events if e["type"] == "call")  # fmt: skip
        url = f"http://127.0.0.1:{collector}/v1/events"
        await_condition(lambda: _posted(url, via_http), 60, "the collector to take an event")
        events.append(via_http)

        def check() -> None:
            assert up.poll() is None, "costflow up exited while serving"

        with PipelineProgress(settings.replace(kafka=kafka)) as progress:
            progress.wait_flushed(180, check)
        # Every event, each once (no duplicates were sent), counted by the worker.
        with urllib.request.urlopen("http://127.0.0.1:9101/metrics", timeout=10) as response:
            scraped = response.read().decode()
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in scraped.splitlines()
            if line.startswith("costflow_worker_events_total{")
        )
        assert counted == len(events)
        # Reading while the stack runs: the sink serves reads of the embedded engine.
        more = generate(200, seed=4, duplicate_share=0.0)
        produce_lines(kafka, settings.topics, write_jsonl(more))  # events flowing
        cli = [sys.executable, "-m", "pipeline.cli"]
        during = subprocess.run(
            [*cli, "sql", "SELECT count() FROM tasks FINAL", "--format", "TSV"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert during.returncode == 0, during.stderr
        assert 20 <= int(during.stdout) <= 220
        report = subprocess.run(
            [*cli, "report"], env=env, capture_output=True, text=True, timeout=120
        )
        assert report.returncode == 0 and "Cost per accepted outcome" in report.stdout
        write = subprocess.run(
            [*cli, "sql", "DROP TABLE tasks"], env=env, capture_output=True, text=True, timeout=60
        )
        assert write.returncode != 0 and "read-only" in write.stderr
        # alerts run writes history: through up's read-only endpoint it is told what works.
        rules = str(example_alert_rules())
        alerts = subprocess.run([*cli, "alerts", "run", rules, "--once"], env=env,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert alerts.returncode == 2 and "COSTFLOW_SINK_ALERT_RULES" in alerts.stderr
        assert "Traceback" not in alerts.stderr
        with PipelineProgress(settings.replace(kafka=kafka)) as progress:
            progress.wait_flushed(180, check)
        after = subprocess.run(
            [*cli, "sql", "SELECT count() FROM tasks FINAL", "--format", "TSV"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert int(after.stdout) == len({e["task_id"] for e in events + more})
        children = children_of(up.pid)
        assert len(children) == 4  # broker, sink, worker, HTTP collector
        descendants = children + [g for child in children for g in children_of(child)]
        assert len(descendants) >= 4  # and the Tansu process under the broker wrapper
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(120)
    assert code == 0
    assert not [pid for pid in descendants if alive(pid)]

    client = connect(settings.clickhouse, settings.stack, create=False)
    stored = client.query("SELECT count() FROM tasks FINAL").result_rows[0][0]
    assert stored == len({e["task_id"] for e in events + more})


def _start_up(
    settings: Settings, err: Path, run: int
) -> tuple[subprocess.Popen[bytes], KafkaSettings]:
    env = dict(os.environ)
    env.update(settings.env())
    del env["COSTFLOW_KAFKA_BOOTSTRAP"]  # unset = embedded, as a user would run it
    env["COSTFLOW_INGEST_HTTP_PORT"] = str(free_port())  # the collector's own port
    with err.open("ab") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "up"], env=env, stderr=log, stdout=log
        )
    kafka = KafkaSettings(bootstrap=f"127.0.0.1:{settings.kafka.embedded_port}")
    wait_until_ready(kafka.resolved_bootstrap(), 60, up)
    await_condition(  # the line a user sees before pressing Ctrl-C
        lambda: err.read_text(errors="replace").count("and the HTTP collector (") == run,
        60,
        "costflow up to say it started",
    )
    return up, kafka


def test_ctrl_c_drains_what_the_broker_holds_then_a_second_stops_at_once(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    err = tmp_path / "up.err"
    settings = isolated_settings.replace(kafka=KafkaSettings(embedded_port=free_port()))
    first = generate(60, seed=8, duplicate_share=0.0)
    up, kafka = _start_up(settings, err, 1)
    produce_lines(kafka, settings.topics, write_jsonl(first))  # acknowledged, not processed
    up.send_signal(signal.SIGINT)  # Ctrl-C at once: the stages have barely started
    assert up.wait(300) == 0
    said = err.read_text(errors="replace")
    assert "draining" in said and "stage 2 (to ClickHouse)" in said
    client = connect(settings.clickhouse, settings.stack, create=False)
    assert client.query("SELECT count() FROM tasks FINAL").result_rows[0][0] == len(
        {e["task_id"] for e in first}
    )  # everything acknowledged was processed before the stop
    client.close()

    # A second Ctrl-C while draining stops at once; the next run finishes the work.
    second = generate(300, seed=9, duplicate_share=0.0)
    up, kafka = _start_up(settings.replace(kafka=KafkaSettings(embedded_port=free_port())), err, 2)
    produce_lines(kafka, settings.topics, write_jsonl(second))
    up.send_signal(signal.SIGINT)

    def draining() -> bool:  # in this run's lines (the first run drained too)
        return "draining" in err.read_text(errors="replace").split("costflow: broker")[-1]

    await_condition(draining, 60, "the drain to start")
    up.send_signal(signal.SIGINT)
    assert up.wait(120) == 0
    assert "stopping at once" in err.read_text(errors="replace")
    run_wave(settings, [], "graceful")  # a later run on the same data directory
    client = connect(settings.clickhouse, settings.stack, create=False)
    try:
        assert_matches_reference(client, first + second)
    finally:
        client.close()
