"""OpenTelemetry trace exports (OTLP) in, contract-v1 call events out. Pure.

The OpenTelemetry Collector's Kafka exporter writes one ``ExportTraceServiceRequest``
per record, as protobuf (``otlp_proto``, its default) or as OTLP/JSON
(``otlp_json``: camelCase names, trace and span ids in hex, 64-bit integers as
strings). A request holds any number of spans from any number of traces. Only
inference spans (:data:`~pipeline.ingest.usage.otel_genai.MODEL_OPERATIONS`) become
calls; the rest are not costflow's and are skipped.

Each call event takes:

- ``event_id`` = ``<trace id>:<span id>``: a span re-delivered (an exporter's retry, a
  replay) is the same event and counts once;
- ``task_id`` from the span's (else the resource's) task attribute
  (``costflow.task_id`` unless configured), else ``gen_ai.conversation.id``, else the
  trace id: one trace is one task;
- ``ts`` the span's start, ``latency_ms`` its duration, ``status`` ``error`` when the
  span's status is ERROR (a failed span may carry no usage: it is a call at no cost);
- ``scenario_id``, ``owner``, ``role`` from ``costflow.scenario_id``,
  ``costflow.owner``, ``costflow.role``; ``environment`` from
  ``deployment.environment.name`` (or ``costflow.environment``), span before resource.

No other attribute is copied: message content (``gen_ai.input.messages``,
``gen_ai.output.messages``, ``gen_ai.system_instructions`` …) never leaves the span.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pipeline.errors import InvalidEvent, NotJson, SchemaViolation, UsageNotMappable
from pipeline.events.models import CallEvent, CallStatus, Usage
from pipeline.ingest.usage.mapped import MappedUsage
from pipeline.ingest.usage.otel_genai import is_model_call, otlp_attributes, span_usage

Encoding = Literal["otlp_proto", "otlp_json"]
STATUS_ERROR = 2  # OTLP Status.code: 0 unset, 1 ok, 2 error

# contract field -> attributes naming it, in order of preference
LABELS: dict[str, tuple[str, ...]] = {
    "scenario_id": ("costflow.scenario_id",),
    "owner": ("costflow.owner",),
    "role": ("costflow.role",),
    "environment": ("deployment.environment.name", "costflow.environment"),
}


@dataclass(frozen=True, slots=True)
class Span:
    """One span of an export, ids in lowercase hex, times in Unix nanoseconds."""

    trace_id: str
    span_id: str
    start_ns: int
    end_ns: int
    status_code: int
    attributes: Mapping[str, Any]
    resource: Mapping[str, Any]


def spans_of(payload: bytes, encoding: Encoding) -> list[Span]:
    """Every span of one exported ``ExportTraceServiceRequest``.

    Raises NotJson (``otlp_json`` that is not JSON) or SchemaViolation (bytes that are
    not an export request in the given encoding)."""
    if encoding == "otlp_json":
        return _spans_of_json(payload)
    return _spans_of_proto(payload)


def _spans_of_json(payload: bytes) -> list[Span]:
    try:
        request = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise NotJson(f"OTLP/JSON record is not JSON: {exc}"[:500]) from None
    if not isinstance(request, dict) or "resourceSpans" not in request:
        raise SchemaViolation("OTLP/JSON record has no resourceSpans: not a trace export")
    try:
        return [
            Span(
                trace_id=_hex_id(span["traceId"], 32, "traceId"),
                span_id=_hex_id(span["spanId"], 16, "spanId"),
                start_ns=int(span.get("startTimeUnixNano", 0)),
                end_ns=int(span.get("endTimeUnixNano", 0)),
                status_code=_json_status(span.get("status") or {}),
                attributes=otlp_attributes(span.get("attributes") or []),
                resource=resource,
            )
            for resource_spans in request["resourceSpans"]
            for resource in [
                otlp_attributes((resource_spans.get("resource") or {}).get("attributes") or [])
            ]
            for scope_spans in resource_spans.get("scopeSpans") or []
            for span in scope_spans.get("spans") or []
        ]
    except SchemaViolation:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise SchemaViolation(f"OTLP/JSON trace export is malformed: {exc!r}"[:500]) from None


def _hex_id(value: Any, digits: int, name: str) -> str:
    """An OTLP/JSON id: ``digits`` hex digits (the specification's encoding)."""
    text = str(value).lower()
    if len(text) != digits or any(c not in "0123456789abcdef" for c in text):
        raise SchemaViolation(f"OTLP/JSON {name} {str(value)[:64]!r} is not {digits} hex digits")
    return text


_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _json_status(status: Mapping[str, Any]) -> int:
    code = status.get("code", 0)
    # OTLP/JSON writes enums as integers; some encoders write their names
    return _STATUS_NAMES[code] if isinstance(code, str) else int(code)


def _spans_of_proto(payload: bytes) -> list[Span]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    try:
        request = ExportTraceServiceRequest.FromString(payload)
    except DecodeError as exc:
        raise SchemaViolation(f"record is not an OTLP protobuf trace export: {exc}") from None
    spans = []
    for resource_spans in request.resource_spans:
        resource = _proto_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    raise SchemaViolation("OTLP span without a 16-byte trace id and 8-byte span id")
                spans.append(
                    Span(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status_code=span.status.code,
                        attributes=_proto_attributes(span.attributes),
                        resource=resource,
                    )
                )
    return spans


def _proto_attributes(key_values: Any) -> dict[str, Any]:
    return {kv.key: _proto_value(kv.value) for kv in key_values}


def _proto_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_proto_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _proto_attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def call_event_of(span: Span, task_attribute: str = "costflow.task_id") -> CallEvent | None:
    """The call event of an inference span; None for a span that is not a model call.

    Raises UsageNotMappable (the span's usage cannot be put into classes) or
    SchemaViolation (the event the span makes breaks the contract)."""
    attributes = span.attributes
    if not is_model_call(attributes):
        return None
    failed = span.status_code == STATUS_ERROR
    mapped = _usage(attributes, failed)
    fields = mapped.call_fields()
    if "provider" not in fields or "model" not in fields:
        raise UsageNotMappable(
            "gen_ai span names no provider (gen_ai.provider.name) or no model "
            "(gen_ai.response.model / gen_ai.request.model)"
        )
    task_id = (
        _label(span, task_attribute) or _label(span, "gen_ai.conversation.id") or span.trace_id
    )
    labels = {name: value for name, keys in LABELS.items() if (value := _first(span, keys))}
    try:
        return CallEvent.model_validate(
            {
                **fields,
                **labels,
                "event_id": f"{span.trace_id}:{span.span_id}",
                "task_id": task_id,
                "ts": datetime.fromtimestamp(span.start_ns / 1e9, UTC),
                "status": CallStatus.error if failed else CallStatus.ok,
                "latency_ms": max(0, (span.end_ns - span.start_ns) // 1_000_000) or None,
            }
        )
    except ValueError as exc:  # pydantic's ValidationError
        raise SchemaViolation(f"span {span.trace_id}:{span.span_id}: {exc}") from None


def _usage(attributes: Mapping[str, Any], failed: bool) -> MappedUsage:
    try:
        return span_usage(attributes)
    except UsageNotMappable:
        if not failed or any(k.startswith("gen_ai.usage.") for k in attributes):
            raise
        # a failed call that reported no usage: counted, at no cost
        stub = {**attributes, "gen_ai.usage.input_tokens": 0, "gen_ai.usage.output_tokens": 0}
        mapped = span_usage(stub)
        return MappedUsage(
            usage=Usage(), provider=mapped.provider, model=mapped.model, service_tier=None
        )


def _label(span: Span, key: str) -> str | None:
    value = span.attributes.get(key, span.resource.get(key))
    return str(value) if value not in (None, "") else None


def _first(span: Span, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if (value := _label(span, key)) is not None:
            return value
    return None


__all__ = ["Encoding", "InvalidEvent", "Span", "call_event_of", "spans_of"]
