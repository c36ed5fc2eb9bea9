"""``costflow ingest http``, as its clients use it: contract events over HTTP, LiteLLM's
own ``generic_api`` logger (real ``litellm.acompletion`` with ``mock_response``), and
the OpenTelemetry SDK's OTLP/HTTP exporter, into the embedded stack. Prices worked by
hand from the book's rates."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from pipeline.config import Settings
from pipeline.embedded.broker import free_port
from pipeline.emit.emitter import Emitter
from pipeline.errors import CollectorRefused
from pipeline.events.models import Usage
from pipeline.ingest.usage.mapped import MappedUsage
from pipeline.kafka.offsets import topic_values
from tests.integration.conftest import LiveStack, await_condition, clickhouse_of, live_stack

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch over the network
litellm = pytest.importorskip("litellm")
from litellm.integrations.generic_api.generic_api_callback import GenericAPILogger  # noqa: E402

pytestmark = pytest.mark.integration
TOKEN = "s3cret-token"


@contextmanager
def collector(live: LiveStack, tmp_path: Path) -> Iterator[str]:
    with collector_process(live, tmp_path) as (url, _process):
        yield url


@contextmanager
def collector_process(
    live: LiveStack, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    env = {
        **os.environ,
        **live.settings.env(),
        "COSTFLOW_INGEST_HTTP_PORT": str(port),
        "COSTFLOW_INGEST_HTTP_TOKEN_FILE": str(token_file),
        "COSTFLOW_INGEST_HTTP_MAX_RECORDS": "100",
        "COSTFLOW_INGEST_HTTP_MAX_REQUEST_BYTES": "2000000",
    }
    log = (tmp_path / "collector.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "ingest", "http"], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await_condition(lambda: _status(f"{url}/healthz") == 200, 60, "the collector to listen")
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(30)
        log.close()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def _post(
    url: str, body: bytes, token: str | None = TOKEN, content_type: str = "application/x-ndjson"
) -> tuple[int, Any]:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"bearer {token}"  # the scheme is case-insensitive
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read() or b"null")


def _lines(*events: dict[str, Any]) -> bytes:
    return b"\n".join(json.dumps(e).encode() for e in events)


CALL = {
    "type": "call", "event_id": "c1", "task_id": "t-http", "ts": "2026-12-01T10:00:00Z",
    "provider": "openai", "model": "gpt-4o-mini",
    "usage": {"input_tokens": 6000, "cache_read_tokens": 4000, "output_tokens": 1000},
}  # fmt: skip


def test_the_collector_takes_events_litellm_logs_and_otlp(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    with live_stack(isolated_settings) as live, collector(live, tmp_path) as url:
        task = {"type": "task", "event_id": "k1", "task_id": "t-http", "ts": CALL["ts"],
                "phase": "started", "scenario_id": "support", "owner": "team-a"}  # fmt: skip
        outcome = {"type": "outcome", "event_id": "o1", "task_id": "t-http", "ts": CALL["ts"],
                   "outcome": "accepted", "source": "user"}  # fmt: skip
        assert _post(f"{url}/v1/events", _lines(task, CALL), token=None)[0] == 401
        assert _post(f"{url}/v1/events", _lines(task, CALL), token="wrong")[0] == 401
        # One bad record: nothing sent, every bad record named.
        bad = {**CALL, "event_id": "c2", "usage": {"input_tokens": -5}}
        status, body = _post(f"{url}/v1/events", _lines(task, bad) + b"\n{not json")
        assert status == 400 and body["accepted"] == 0
        assert [(r["record"], r["reason"]) for r in body["rejected"]] == [
            (2, "schema_violation"), (3, "not_json")
        ]  # fmt: skip
        # Limits: records per request, bytes per request; an unreadable array
        many = _lines(*({**CALL, "event_id": f"m{n}"} for n in range(101)))
        status, body = _post(f"{url}/v1/events", many)
        assert status == 413 and "at most 100" in body["error"]
        status, body = _post(f"{url}/v1/events", b" " * 2_100_000 + _lines(CALL))
        assert status == 413
        status, body = _post(f"{url}/v1/events", b"[not json")
        assert status == 400 and "not a JSON array" in body["error"]
        assert _post(f"{url}/v1/events", _lines(CALL), content_type="application/xml")[0] == 415
        # A record larger than the broker takes: refused by name, nothing sent
        huge = {**CALL, "event_id": "huge", "attributes": {"note": "x" * 1_100_000}}
        status, body = _post(f"{url}/v1/events", _lines(task, huge))
        assert status == 400 and body["rejected"][0]["reason"] == "record_too_large"
        # A retry of the same events counts once.
        for _ in range(2):
            assert _post(f"{url}/v1/events", _lines(task, CALL, outcome)) == (
                200, {"accepted": 3}
            )  # fmt: skip

        asyncio.run(_litellm_calls(url))  # LiteLLM's generic_api logger, at the collector

        # The emitter over HTTP: confirmed on flush, refused visibly with a wrong token
        refused = pytest.raises(CollectorRefused, match="401")
        with refused, Emitter.over_http(url, token="wrong") as emitter:
            emitter.outcome("t-nobody", "accepted")
        with Emitter.over_http(url, token=TOKEN) as emitter:
            emitter.task("t-emit-http", scenario_id="support")
            emitter.call(MappedUsage(Usage(input_tokens=1000), provider="openai",
                                     model="gpt-4o-mini"), task_id="t-emit-http")  # fmt: skip
            assert emitter.flush() == 2

        # The OpenTelemetry SDK's own OTLP/HTTP exporter
        provider = TracerProvider()
        exporter = OTLPSpanExporter(
            endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        attributes = {
            gen_ai.GEN_AI_OPERATION_NAME: "chat",
            gen_ai.GEN_AI_PROVIDER_NAME: "openai",
            gen_ai.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            gen_ai.GEN_AI_USAGE_INPUT_TOKENS: 2000,
            gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
            "costflow.task_id": "t-otel-http",
            "gen_ai.input.messages": "secret prompt",
        }
        with provider.get_tracer("app").start_as_current_span("chat", attributes=attributes):
            pass
        provider.shutdown()

        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert 'costflow_collector_requests_total{code="200",endpoint="events"} 3.0' in metrics
        assert 'costflow_collector_requests_total{code="401",endpoint="events"} 3.0' in metrics
        assert 'costflow_collector_records_total{endpoint="traces",outcome="accepted"} 1.0' in (
            metrics
        )
        # The good records of the two requests refused whole (the task beside two bad
        # records; the task beside the huge one) are counted, not lost from the figures.
        refused = 'costflow_collector_records_total{endpoint="events",outcome="refused_with_batch"}'
        assert f"{refused} 2.0" in metrics
        live.drain(live.stack.check_alive)

    with clickhouse_of(live.settings) as client:
        tasks = {
            row[0]: row[1:]
            for row in client.query(
                "SELECT task_id, calls, total_cost, outcome FROM tasks FINAL"
            ).result_rows
        }
        # gpt-4o-mini ($0.15 in, $0.075 cached, $0.60 out per MTok):
        # 6000*0.15 + 4000*0.075 + 1000*0.60 = 900 + 300 + 600 = 1,800 -> $0.0018
        assert tasks["t-http"] == (1, Decimal("0.0018"), "accepted")
        # claude-sonnet-4-5 via LiteLLM: 2300 prompt = 1000 fresh + 1000 read + 300 written,
        # 500 out: 1000*3 + 1000*0.30 + 300*3.75 + 500*15 = 11,925 -> $0.011925
        assert tasks["t-litellm-http"][:2] == (1, Decimal("0.011925"))
        # 2000*0.15 + 100*0.60 = 360 -> $0.00036
        assert tasks["t-otel-http"][:2] == (1, Decimal("0.00036"))
        assert tasks["t-emit-http"][:2] == (1, Decimal("0.00015"))  # 1000*0.15 = 150
        assert "t-nobody" not in tasks
        stored = client.query("SELECT attributes FROM calls FINAL").result_rows
        assert not any("secret" in str(row[0]) for row in stored)
        ((reported, verdict),) = client.query(
            "SELECT reported_cost, verdict FROM v_cost_reconciliation_calls "
            "WHERE task_id = 't-litellm-http'"
        ).result_rows
        # LiteLLM's float arithmetic, kept as it reported it: 0.011925000000000002
        assert abs(reported - Decimal("0.011925")) < Decimal("1e-15") and verdict == "agrees"


async def _litellm_calls(url: str) -> None:
    logger = GenericAPILogger(
        endpoint=f"{url}/v1/litellm",
        headers={"Authorization": f"Bearer {TOKEN}"},
        log_format="json_array",
    )
    litellm.callbacks = [logger]
    try:
        await _one_litellm_call(logger)
    finally:
        litellm.callbacks = []


async def _one_litellm_call(logger: Any) -> None:
    await litellm.acompletion(
        model="anthropic/claude-sonnet-4-5",
        messages=[{"role": "user", "content": "hi"}],
        mock_response=litellm.ModelResponse(
            model="claude-sonnet-4-5",
            choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant"}}],
            usage=litellm.Usage(
                prompt_tokens=2300,
                completion_tokens=500,
                total_tokens=2800,
                prompt_tokens_details={"cached_tokens": 1000, "cache_creation_tokens": 300},
            ),
        ),
        # the SDK keeps only LiteLLM's own metadata keys in its log payload
        metadata={"spend_logs_metadata": {"costflow_task_id": "t-litellm-http"}},
    )
    # LiteLLM hands the payload to the logger from a background task: wait for it
    for _ in range(200):
        if logger.log_queue:
            break
        await asyncio.sleep(0.05)
    await logger.flush_queue()


def test_no_acknowledged_event_is_lost_when_the_collector_is_killed(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    """Clients post batches while the collector is SIGKILLed: every event of every
    request answered 2xx is in the calls topic afterwards."""
    acked: list[list[str]] = []
    stop = threading.Event()

    def client(number: int, url: str) -> None:
        for request in range(10_000):
            if stop.is_set():
                return
            ids = [f"k{number}-{request}-{n}" for n in range(20)]
            body = _lines(
                *({**CALL, "event_id": i, "task_id": f"t{n % 7}"} for n, i in enumerate(ids))
            )
            try:
                status, _ = _post(f"{url}/v1/events", body)
            except OSError:  # the collector is gone
                return
            if status == 200:
                acked.append(ids)

    with live_stack(isolated_settings) as live, collector_process(live, tmp_path) as (url, process):
        clients = [threading.Thread(target=client, args=(n, url)) for n in range(3)]
        for thread in clients:
            thread.start()
        await_condition(lambda: len(acked) >= 30, 120, "30 acknowledged requests")
        process.send_signal(signal.SIGKILL)
        process.wait()
        stop.set()
        for thread in clients:
            thread.join(60)
        values = topic_values(live.kafka, live.settings.topics.calls)
        stored = {json.loads(value)["event_id"] for value in values}
    acknowledged = {event_id for ids in acked for event_id in ids}
    assert len(acknowledged) >= 600
    assert acknowledged <= stored, f"{len(acknowledged - stored)} acknowledged events lost"
