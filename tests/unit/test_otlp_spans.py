"""OTLP exports into call events, without a broker: what a span's task is, and what
bytes are refused with which reason."""

from __future__ import annotations

import json

import pytest

from pipeline.errors import NotJson, SchemaViolation
from pipeline.ingest.otlp import Span, call_event_of, spans_of


def _span(attributes: dict[str, object], resource: dict[str, object] | None = None) -> Span:
    return Span(
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        start_ns=1_764_000_000_000_000_000,
        end_ns=1_764_000_000_250_000_000,
        status_code=0,
        attributes=attributes,
        resource=resource or {},
    )


CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 10,
    "gen_ai.usage.output_tokens": 2,
}


def test_the_task_is_the_attribute_else_the_conversation_else_the_trace() -> None:
    assert call_event_of(_span({**CHAT, "costflow.task_id": "t1"})).task_id == "t1"  # type: ignore[union-attr]
    on_resource = call_event_of(_span(CHAT, {"costflow.task_id": "t2"}))
    assert on_resource is not None and on_resource.task_id == "t2"
    conversation = call_event_of(_span({**CHAT, "gen_ai.conversation.id": "c9"}))
    assert conversation is not None and conversation.task_id == "c9"
    event = call_event_of(_span(CHAT))
    assert event is not None
    assert event.task_id == "0af7651916cd43dd8448eb211c80319c"
    assert event.event_id == "0af7651916cd43dd8448eb211c80319c:b7ad6b7169203331"
    assert event.latency_ms == 250
    custom = call_event_of(_span({**CHAT, "app.job": "j1"}), task_attribute="app.job")
    assert custom is not None and custom.task_id == "j1"


def test_spans_that_are_not_model_calls_are_not_events() -> None:
    assert call_event_of(_span({"http.method": "GET"})) is None
    assert call_event_of(_span({**CHAT, "gen_ai.operation.name": "execute_tool"})) is None


@pytest.mark.parametrize(
    ("payload", "encoding", "error", "reason"),
    [
        (b"\xff\x00 not protobuf", "otlp_proto", SchemaViolation, "not an OTLP protobuf"),
        (b"{not json", "otlp_json", NotJson, "not JSON"),
        (json.dumps({"spans": []}).encode(), "otlp_json", SchemaViolation, "no resourceSpans"),
        (
            json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x"}]}]}]}).encode(),
            "otlp_json",
            SchemaViolation,
            "malformed",
        ),
    ],
)
def test_bytes_that_are_not_a_trace_export_are_refused(
    payload: bytes, encoding: str, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error, match=reason):
        spans_of(payload, encoding)  # type: ignore[arg-type]


def test_ingest_metrics_read_the_runs_counts_at_scrape_time() -> None:
    import prometheus_client as prom

    from pipeline.runtime.ingest_otlp import IngestCounts
    from pipeline.runtime.stage_metrics import IngestMetrics, registry

    counts = IngestCounts()
    reg = registry(IngestMetrics(counts), "n/a")
    counts.records, counts.spans, counts.calls, counts.not_model_calls = 2, 12, 6, 4
    counts.dead_lettered["usage_not_mappable"] += 2
    scraped = prom.generate_latest(reg).decode()
    assert "costflow_ingest_otlp_call_events_total 6.0" in scraped
    assert "costflow_ingest_otlp_skipped_spans_total 4.0" in scraped
    assert 'costflow_ingest_otlp_dead_letters_total{reason="usage_not_mappable"} 2.0' in scraped


def test_json_ids_must_be_hex_and_nesting_is_bounded() -> None:
    span = {"traceId": "ZZZ", "spanId": "eee19b7ec3c1b176", "attributes": []}
    bad_id = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    with pytest.raises(SchemaViolation, match="traceId 'ZZZ' is not 32 hex digits"):
        spans_of(json.dumps(bad_id).encode(), "otlp_json")
    with pytest.raises(NotJson):
        spans_of(b"[" * 100_000 + b"]" * 100_000, "otlp_json")


def test_an_embeddings_span_needs_no_output_count() -> None:
    embedding = {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "text-embedding-3-small",
        "gen_ai.usage.input_tokens": 100_000,
    }
    event = call_event_of(_span(embedding))
    assert event is not None
    assert (event.usage.input_tokens, event.usage.output_tokens) == (100_000, 0)
