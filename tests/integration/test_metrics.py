"""The worker's and the sink's /metrics, /healthz and /readyz, scraped while they run
on the embedded stack; every figure worked out from the events sent."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from pipeline.config import Settings
from pipeline.embedded.broker import free_port
from pipeline.kafka.produce import produce_lines
from tests.integration.conftest import await_condition, live_stack

pytestmark = pytest.mark.integration

TS = "2026-12-01T10:00:00Z"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()
    except OSError:
        return 0, ""


def _call(event_id: str, model: str) -> dict[str, object]:
    return {"type": "call", "event_id": event_id, "task_id": "t1", "ts": TS,
            "provider": "openai", "model": model, "usage": {"input_tokens": 100}}  # fmt: skip


def test_the_stages_metrics_count_what_they_did(isolated_settings: Settings) -> None:
    worker_port, sink_port = free_port(), free_port()
    settings = isolated_settings.replace(
        sink=isolated_settings.sink.model_copy(update={"metrics_port": sink_port})
    )
    events = [
        {"type": "task", "event_id": "k1", "task_id": "t1", "ts": TS, "phase": "started"},
        _call("c1", "gpt-4o-mini"),
        _call("c2", "no-such-model"),  # unpriced
        _call("c1", "gpt-4o-mini"),  # a duplicate
        {
            "type": "outcome",
            "event_id": "o1",
            "task_id": "t1",
            "ts": TS,
            "outcome": "accepted",
            "source": "user",
        },
    ]
    lines = [json.dumps(e).encode() for e in events] + [b"not json at all"]
    with live_stack(settings, metrics_port=worker_port) as live:
        worker, sink = f"http://127.0.0.1:{worker_port}", f"http://127.0.0.1:{sink_port}"
        await_condition(lambda: _get(f"{worker}/healthz")[0] == 200, 60, "worker /healthz")
        await_condition(lambda: _get(f"{sink}/healthz")[0] == 200, 60, "sink /healthz")
        produce_lines(live.kafka, live.settings.topics, lines)
        live.drain(live.stack.check_alive)
        _, scraped = _get(f"{worker}/metrics")
        assert 'costflow_worker_events_total{type="call"} 2.0' in scraped
        assert 'costflow_worker_events_total{type="task"} 1.0' in scraped
        assert 'costflow_worker_events_total{type="outcome"} 1.0' in scraped
        assert 'costflow_worker_duplicate_events_total{type="call"} 1.0' in scraped
        assert 'costflow_worker_dead_letters_total{reason="not_json"} 1.0' in scraped
        assert (
            'costflow_worker_unpriced_calls_total{model="no-such-model",provider="openai"} 1.0'
            in scraped
        )
        assert "costflow_worker_open_tasks 1.0" in scraped
        assert 'costflow_build_info{price_book="default@' in scraped
        assert _get(f"{worker}/readyz") == (200, "ready\n")

        def lag_lines() -> list[str]:
            text = _get(f"{worker}/metrics")[1]
            return [x for x in text.splitlines() if x.startswith("costflow_worker_consumer_lag")]

        # measured by the watchdog every 10 s: every input partition, all committed
        partitions = 3 * live.settings.topics.partitions
        await_condition(lambda: len(lag_lines()) == partitions, 60, "lag per input partition")
        await_condition(
            lambda: all(x.endswith(" 0.0") for x in lag_lines()), 60, "no lag after the drain"
        )
        _, scraped = _get(f"{sink}/metrics")
        assert 'costflow_sink_rows_written_total{table="calls"} 2.0' in scraped
        assert 'costflow_sink_rows_written_total{table="dead_letters"} 1.0' in scraped
        assert "costflow_sink_failed_writes_total 0.0" in scraped
        assert "costflow_sink_write_duration_seconds_count" in scraped
        assert _get(f"{sink}/readyz") == (200, "ready\n")
        assert _get(f"{sink}/nothing")[0] == 404
        assert _samples(scraped)["costflow_sink_last_commit_timestamp_seconds"] > 0

        # Every event was at TS, all keyed t1: one partition's watermark, at TS.
        # 2026-12-01T10:00Z: 56 years from 1970 with 14 leap days, 334 days of 2026, 10 h.
        ts_s = ((56 * 365 + 14 + 334) * 24 + 10) * 3600
        marks = _family(
            _get(f"{worker}/metrics")[1], "costflow_worker_event_time_watermark_timestamp_seconds"
        )
        assert list(marks.values()) == [ts_s], marks
        ages = _family(
            _get(f"{worker}/metrics")[1], "costflow_worker_event_time_watermark_age_seconds"
        )
        assert list(ages) == list(marks) and all(a > 0 for a in ages.values())

        # A late call for a stored task replaces its row: one restatement, counted once
        # durable; and the sink's lag per partition of stage 1's outputs drains to 0.
        before = _samples(scraped)["costflow_sink_task_restatements_total"]
        produce_lines(
            live.kafka, live.settings.topics, [json.dumps(_call("c3", "gpt-4o-mini")).encode()]
        )
        live.drain(live.stack.check_alive)
        after = _samples(_get(f"{sink}/metrics")[1])
        assert after["costflow_sink_task_restatements_total"] == before + 1
        assert after['costflow_sink_rows_written_total{table="calls"}'] == 3

        def sink_lag() -> dict[str, float]:
            return _family(_get(f"{sink}/metrics")[1], "costflow_sink_consumer_lag_records")

        outputs = len(live.settings.topics.sink_inputs()) * live.settings.topics.partitions
        await_condition(lambda: len(sink_lag()) == outputs, 60, "sink lag per partition")
        await_condition(lambda: set(sink_lag().values()) == {0.0}, 60, "no sink lag")


def _samples(text: str) -> dict[str, float]:
    """Prometheus text exposition: sample name with labels -> value."""
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def _family(text: str, name: str) -> dict[str, float]:
    """The samples of one metric family, by their label text."""
    return {k[len(name) :]: v for k, v in _samples(text).items() if k.startswith(name + "{")}
