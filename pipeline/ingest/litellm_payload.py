"""LiteLLM's ``StandardLoggingPayload`` (what its callbacks and its ``generic_api``
logger see for every call) as a contract-v1 call event. Pure.

Used by the in-process callback (:mod:`pipeline.emit.litellm_logger`) and by the
HTTP collector's ``/v1/litellm`` endpoint alike, so a call seen by both has the same
event id (LiteLLM's call id) and counts once.

- ``task_id`` and the labels: the keys ``costflow_task_id``, ``costflow_scenario_id``,
  ``costflow_owner``, ``costflow_environment``, ``costflow_role`` in the request's
  metadata (the proxy's ``requester_metadata``, the SDK's ``spend_logs_metadata``, or
  the metadata the callback is handed), else request tags ``costflow_task_id:<id>``;
  without a task id, LiteLLM's trace id (one request with its retries and fallbacks).
- usage: the callback's ``litellm.Usage``, else the payload's ``metadata.usage_object``.
  A payload with tokens but no usage object is refused: its totals alone cannot tell
  cached from fresh input, and pricing them all as fresh would be silently wrong.
- ``response_cost`` as ``provider_reported_cost``; failures (``status: failure``) as
  failed calls with the exception's class; LiteLLM cache hits at zero usage.

Message content (``messages``, ``response``) is never read beyond the response's
``service_tier``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pipeline.errors import SchemaViolation, UsageNotMappable
from pipeline.events.models import CallEvent, CallStatus, Usage
from pipeline.ingest.usage import litellm
from pipeline.ingest.usage.mapped import MappedUsage, text

# metadata key (or tag prefix) -> call event field
METADATA_FIELDS = {
    "costflow_task_id": "task_id",
    "costflow_scenario_id": "scenario_id",
    "costflow_owner": "owner",
    "costflow_environment": "environment",
    "costflow_role": "role",
}
_FAILURES = {"RateLimitError": CallStatus.rate_limited, "Timeout": CallStatus.timeout}


def call_id_of(payload: Mapping[str, Any]) -> str:
    """LiteLLM's id of the call (``litellm_call_id``, else the payload's ``id``)."""
    return str(payload.get("litellm_call_id") or payload.get("id") or "")


def call_event_of(
    payload: Mapping[str, Any],
    usage: MappedUsage | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> CallEvent:
    """The call event of one LiteLLM call.

    ``usage``: the response's mapped usage when the caller has the response object;
    ``metadata``: the request metadata when the caller has it (the callback's
    ``litellm_params.metadata``). Raises UsageNotMappable and SchemaViolation."""
    if not isinstance(payload, Mapping):
        raise SchemaViolation(f"a LiteLLM log entry is a JSON object, not {type(payload).__name__}")
    failed = payload.get("status") == "failure"
    mapped = _usage(payload, usage, failed)
    fields = mapped.call_fields()
    attributes = dict(fields.pop("attributes", {}))
    attributes.update(litellm.reported_cost(payload.get("response_cost"), "LiteLLM response_cost"))
    if payload.get("cache_hit"):
        attributes["litellm_cache_hit"] = "true"
    error_class = (payload.get("error_information") or {}).get("error_class")
    if error_class:  # the class only: an error's message may quote the prompt
        attributes["error_class"] = str(error_class)
    provider = payload.get("custom_llm_provider") or fields.get("provider")
    model = payload.get("model") or fields.get("model")
    try:
        return CallEvent.model_validate(
            {
                **fields,
                **_labels(payload, metadata),
                "provider": provider,
                "model": model,
                "event_id": call_id_of(payload),
                "ts": _time(payload.get("startTime")) or datetime.now(UTC),
                "status": _status(payload) if failed else CallStatus.ok,
                "latency_ms": _latency_ms(payload),
                "attributes": attributes,
            }
        )
    except ValueError as exc:  # pydantic's ValidationError
        raise SchemaViolation(f"LiteLLM call {call_id_of(payload)!r}: {exc}") from None


def _usage(payload: Mapping[str, Any], usage: MappedUsage | None, failed: bool) -> MappedUsage:
    if failed or payload.get("cache_hit"):
        return MappedUsage(usage=Usage())  # nothing billed by the provider
    if usage is None:
        usage_object = (payload.get("metadata") or {}).get("usage_object")
        if usage_object is None:
            if payload.get("prompt_tokens") or payload.get("completion_tokens"):
                raise UsageNotMappable(
                    "LiteLLM payload has token totals but no metadata.usage_object: cached "
                    "and fresh input cannot be told apart; upgrade LiteLLM or send the "
                    "callback's events instead"
                )
            raise UsageNotMappable(
                f"LiteLLM call type {payload.get('call_type')!r} reported no usage"
            )
        usage = litellm.litellm_usage(usage_object)
    response = payload.get("response")
    tier = text(response.get("service_tier")) if isinstance(response, Mapping) else None
    if tier is not None and usage.service_tier is None:
        usage = replace(usage, service_tier=litellm.service_tier(tier))
    return usage


def _labels(payload: Mapping[str, Any], metadata: Mapping[str, Any] | None) -> dict[str, str]:
    logged = payload.get("metadata") or {}
    sources = [
        logged.get("requester_metadata") or {},
        logged.get("spend_logs_metadata") or {},
        metadata or {},
    ]
    found: dict[str, str] = {}
    for source in sources:
        for key, name in METADATA_FIELDS.items():
            if isinstance(source, Mapping) and source.get(key) and name not in found:
                found[name] = str(source[key])
    for tag in payload.get("request_tags") or []:
        key, _, value = str(tag).partition(":")
        if key in METADATA_FIELDS and value and METADATA_FIELDS[key] not in found:
            found[METADATA_FIELDS[key]] = value
    if "task_id" not in found:
        trace = payload.get("trace_id") or call_id_of(payload)
        found["task_id"] = str(trace)
    return found


def _status(payload: Mapping[str, Any]) -> CallStatus:
    error_class = str((payload.get("error_information") or {}).get("error_class") or "")
    return _FAILURES.get(error_class, CallStatus.error)


def _time(epoch_s: Any) -> datetime | None:
    return datetime.fromtimestamp(float(epoch_s), UTC) if epoch_s else None


def _latency_ms(payload: Mapping[str, Any]) -> int | None:
    start, end = payload.get("startTime"), payload.get("endTime")
    if not start or not end:
        return None
    return max(0, round((float(end) - float(start)) * 1000))
