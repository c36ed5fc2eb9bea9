"""``costflow ingest otlp``: spans made by the OpenTelemetry SDK, encoded exactly as the
Collector's Kafka exporter writes them (an ``ExportTraceServiceRequest`` per record,
protobuf or OTLP/JSON), produced unkeyed, priced through the embedded stack. Prices
are worked by hand from the book's rates; the same spans delivered again (and in the
other encoding) count once."""

from __future__ import annotations

import base64
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict, MessageToJson
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import Status, StatusCode

from pipeline.config import IngestSettings, Settings
from pipeline.kafka.produce import Sender
from pipeline.kafka.topics import create_missing
from pipeline.runtime.ingest_otlp import OtlpIngest
from tests.integration.conftest import clickhouse_of, live_stack

pytestmark = pytest.mark.integration


def _usage(provider: str, model: str, **counts: int) -> dict[str, Any]:
    names = {
        "input": gen_ai.GEN_AI_USAGE_INPUT_TOKENS,
        "output": gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS,
        "cache_read": gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        "cache_creation": gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        "reasoning": gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    }
    return {
        gen_ai.GEN_AI_OPERATION_NAME: "chat",
        gen_ai.GEN_AI_PROVIDER_NAME: provider,
        gen_ai.GEN_AI_REQUEST_MODEL: model,
        **{names[k]: v for k, v in counts.items()},
    }


def _spans() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create(
            {"deployment.environment.name": "prod", "costflow.scenario_id": "support"}
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("app")
    task = {"costflow.task_id": "t-otel"}
    agent = {**_usage("anthropic", "claude-sonnet-4-5", input=3000, output=300), **task}
    agent[gen_ai.GEN_AI_OPERATION_NAME] = "invoke_agent"  # sums its children: not priced
    with tracer.start_as_current_span("invoke_agent", attributes=agent):
        sonnet = _usage(
            "anthropic", "claude-sonnet-4-5",
            input=1000, cache_read=600, cache_creation=100, output=200, reasoning=50,
        )  # fmt: skip
        sonnet["gen_ai.input.messages"] = '[{"role": "user", "content": "secret"}]'
        with tracer.start_as_current_span("chat", attributes={**sonnet, **task}):
            pass
        mini = _usage("openai", "gpt-4o-mini", input=2000, output=100)
        with tracer.start_as_current_span("chat", attributes={**mini, **task}):
            pass
        failed = {**_usage("anthropic", "claude-sonnet-4-5"), **task}
        with tracer.start_as_current_span("chat", attributes=failed) as span:
            span.set_status(Status(StatusCode.ERROR, "overloaded"))
        exclusive = _usage("anthropic", "claude-sonnet-4-5", input=300, cache_read=600, output=1)
        with tracer.start_as_current_span("chat", attributes={**exclusive, **task}):
            pass
        with tracer.start_as_current_span("GET /search", attributes={"http.method": "GET"}):
            pass
    return list(exporter.get_finished_spans())


def _otlp_json(spans: list[ReadableSpan]) -> bytes:
    """OTLP/JSON as the Collector writes it: protobuf's JSON mapping, but ids in hex and
    enums as integers (the OTLP specification's deviations)."""
    request = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for resource_spans in request["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(request).encode()


def _ingest(live: Any, ingest: IngestSettings, records: list[bytes]) -> Any:
    topics = live.settings.topics
    create_missing(live.kafka, [ingest.otlp_topic], topics.partitions, 1, 30)
    sender = Sender(live.kafka)
    for record in records:
        sender.send(ingest.otlp_topic, None, record)  # the exporter's default: unkeyed
    sender.flush()
    sender.close()
    return OtlpIngest(live.kafka, topics, ingest).run(until_end=True)


def test_collector_exports_become_priced_calls_once(isolated_settings: Settings) -> None:
    spans = _spans()
    uid = uuid.uuid4().hex[:8]
    assert MessageToJson(encode_spans(spans))  # the protobuf is a well-formed request
    with live_stack(isolated_settings) as live:
        proto = IngestSettings(otlp_topic=f"it-{uid}.otlp-proto", otlp_group_id=f"it-ingest-{uid}")
        record = encode_spans(spans).SerializeToString()
        counts = _ingest(live, proto, [record, record])  # an exporter's retry
        # per record: 3 calls, 1 dead letter, 2 spans not model calls (agent, HTTP)
        assert (counts.records, counts.spans, counts.calls) == (2, 12, 6)
        assert counts.not_model_calls == 4
        assert counts.dead_lettered == {"usage_not_mappable": 2}
        as_json = IngestSettings(
            otlp_topic=f"it-{uid}.otlp-json",
            otlp_encoding="otlp_json",
            otlp_group_id=f"it-ingest-json-{uid}",
        )
        counts = _ingest(live, as_json, [_otlp_json(spans)])
        assert (counts.calls, counts.dead_lettered) == (3, {"usage_not_mappable": 1})
        live.drain(live.stack.check_alive)
    with clickhouse_of(live.settings) as client:
        ((calls, cost, scenario, environment),) = client.query(
            "SELECT calls, total_cost, scenario_id, environment FROM tasks FINAL "
            "WHERE task_id = 't-otel'"
        ).result_rows
        # claude-sonnet-4-5 ($3 in, $0.30 read, $3.75 write, $15 out per MTok): of 1000
        # input, 600 read and 100 written, 300 fresh; of 200 output, 50 reasoning:
        # 300*3 + 600*0.30 + 100*3.75 + 150*15 + 50*15 = 900+180+375+2250+750 = 4,455
        # gpt-4o-mini ($0.15 in, $0.60 out): 2000*0.15 + 100*0.60 = 360
        # the failed span: a call at no cost. Three calls, each counted once.
        assert (calls, cost) == (3, Decimal("0.004455") + Decimal("0.00036"))
        assert (scenario, environment) == ("support", "prod")
        stored = client.query(
            "SELECT status, attributes FROM calls FINAL WHERE task_id = 't-otel' ORDER BY status"
        ).result_rows
        assert [row[0] for row in stored] == ["error", "ok", "ok"]
        assert not any("secret" in str(row[1]) for row in stored)  # content never stored
        dead = client.query(
            "SELECT DISTINCT reason, source_topic FROM dead_letters ORDER BY source_topic"
        ).result_rows
        assert dead == [
            ("usage_not_mappable", as_json.otlp_topic),
            ("usage_not_mappable", proto.otlp_topic),
        ]
