"""A LiteLLM callback that sends one costflow call event per LiteLLM call.

Register it once and every ``litellm.completion`` / ``acompletion`` (and the
proxy's calls) is metered::

    import litellm
    from pipeline.emit.litellm_logger import CostflowLogger

    litellm.callbacks = [CostflowLogger()]      # COSTFLOW_KAFKA_* from the environment
    litellm.completion(model="anthropic/claude-sonnet-4-5", messages=...,
                       metadata={"costflow_task_id": task.id, "costflow_role": "planner"})

What each call event holds:

- ``task_id`` (and ``scenario_id``, ``owner``, ``environment``, ``role``) from the
  request's ``metadata`` keys ``costflow_task_id`` … or from request tags
  ``costflow_task_id:<id>``; without one, LiteLLM's trace id, which groups one
  request's retries and fallbacks, is the task.
- ``event_id``: LiteLLM's call id, so a callback that fires twice counts once.
- usage through :mod:`pipeline.ingest.usage.litellm`; LiteLLM's own
  ``response_cost`` as ``attributes.provider_reported_cost`` (reconciliation only:
  costflow prices the call itself).
- a failed call (``log_failure_event``): status ``rate_limited``, ``timeout`` or
  ``error`` and no usage; a hit of LiteLLM's own cache: zero usage and
  ``attributes.litellm_cache_hit``.

A callback must never break the call it observes: usage no mapper can price goes
to the dead-letter topic with its reason (``usage_not_mappable``) and LiteLLM's
usage object as the bytes; anything else unexpected is logged and counted in
:attr:`CostflowLogger.failures`. Sending is asynchronous: call :meth:`flush`
before the process exits (a LiteLLM proxy flushes on its shutdown hook).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from pipeline.config import KafkaSettings, TopicSettings
from pipeline.emit.events import call_event, to_json
from pipeline.errors import InvalidEvent, UsageNotMappable
from pipeline.events.models import CallStatus, Usage
from pipeline.ingest.usage.detect import usage_of
from pipeline.ingest.usage.litellm import reported_cost
from pipeline.ingest.usage.mapped import MappedUsage
from pipeline.kafka.produce import Sender
from pipeline.records import DeadLetterHeaders

log = logging.getLogger("costflow.litellm")

# metadata key (or tag prefix) -> call event field
METADATA_FIELDS = {
    "costflow_task_id": "task_id",
    "costflow_scenario_id": "scenario_id",
    "costflow_owner": "owner",
    "costflow_environment": "environment",
    "costflow_role": "role",
}
SOURCE = "litellm-callback"

_FAILURES = {"RateLimitError": CallStatus.rate_limited, "Timeout": CallStatus.timeout}


class CostflowLogger(CustomLogger):  # type: ignore[misc]
    """LiteLLM ``CustomLogger`` that emits call events (see the module docstring).

    ``kafka``/``topics`` default to the ``COSTFLOW_*`` environment settings."""

    def __init__(
        self, kafka: KafkaSettings | None = None, topics: TopicSettings | None = None
    ) -> None:
        super().__init__()
        self.topics = topics or TopicSettings()
        self.sender = Sender(kafka or KafkaSettings())
        self.emitted = 0
        self.dead_lettered = 0
        self.failures = 0

    def log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._emit(kwargs, response_obj, failed=False)

    def log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._emit(kwargs, response_obj, failed=True)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._emit(kwargs, response_obj, failed=False)

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._emit(kwargs, response_obj, failed=True)

    def flush(self, timeout_s: float = 30) -> None:
        """Wait until the broker acknowledged every event; raises KafkaError if not."""
        self.sender.flush(timeout_s)

    def close(self) -> None:
        """Flush, then release the producer (unregister the logger from LiteLLM first)."""
        try:
            self.flush()
        finally:
            self.sender.close()

    def _emit(self, kwargs: Any, response_obj: Any, failed: bool) -> None:
        payload = kwargs.get("standard_logging_object") or {}
        call_id = str(kwargs.get("litellm_call_id") or payload.get("id") or "")
        try:
            event = call_event(
                _usage(payload, response_obj, failed),
                event_id=call_id or None,
                ts=_time(payload.get("startTime")),
                status=_status(payload) if failed else CallStatus.ok,
                provider=payload.get("custom_llm_provider") or None,
                model=payload.get("model") or None,
                latency_ms=_latency_ms(payload),
                attributes=_attributes(kwargs, payload),
                **_tagged_fields(kwargs, payload),
            )
        except InvalidEvent as error:
            self._dead_letter(call_id, payload, error)
            return
        except Exception:  # never break the call being observed; counted and logged
            self.failures += 1
            log.exception("costflow: could not emit LiteLLM call %s", call_id)
            return
        self.sender.send(self.topics.calls, event.task_id.encode(), to_json(event))
        self.emitted += 1

    def _dead_letter(self, call_id: str, payload: Any, error: InvalidEvent) -> None:
        usage = (payload.get("metadata") or {}).get("usage_object")
        original = json.dumps(
            {"litellm_call_id": call_id, "model": payload.get("model"), "usage": usage},
            default=str,
        ).encode()
        headers: list[tuple[str, str | bytes | None]] = [
            *DeadLetterHeaders(
                reason=error.code,
                detail=str(error),
                source_topic=SOURCE,
                source_partition=-1,
                source_offset=-1,
            ).to_kafka()
        ]
        self.sender.send(self.topics.dead_letter, call_id.encode() or None, original, headers)
        self.dead_lettered += 1
        log.warning("costflow: dead-lettered LiteLLM call %s: %s", call_id, error)


def _usage(payload: Any, response_obj: Any, failed: bool) -> MappedUsage:
    if failed or payload.get("cache_hit"):
        return MappedUsage(usage=Usage())  # nothing billed by the provider
    if response_obj is None or getattr(response_obj, "usage", None) is None:
        raise UsageNotMappable(f"LiteLLM call type {payload.get('call_type')!r} returned no usage")
    return usage_of(response_obj)


def _status(payload: Any) -> CallStatus:
    error_class = str((payload.get("error_information") or {}).get("error_class") or "")
    return _FAILURES.get(error_class, CallStatus.error)


def _attributes(kwargs: Any, payload: Any) -> dict[str, str]:
    cost = kwargs.get("response_cost", payload.get("response_cost"))
    attributes = reported_cost(cost, "LiteLLM response_cost")
    if payload.get("cache_hit"):
        attributes["litellm_cache_hit"] = "true"
    error_class = (payload.get("error_information") or {}).get("error_class")
    if error_class:  # the class only: an error's message may quote the prompt
        attributes["error_class"] = str(error_class)
    return attributes


def _tagged_fields(kwargs: Any, payload: Any) -> dict[str, str]:
    """costflow fields from request metadata, then request tags; the task id falls
    back to LiteLLM's trace id."""
    metadata = dict((kwargs.get("litellm_params") or {}).get("metadata") or {})
    requester = (payload.get("metadata") or {}).get("requester_metadata") or {}
    found: dict[str, str] = {}
    for source in (requester, metadata):
        for key, name in METADATA_FIELDS.items():
            if source.get(key) and name not in found:
                found[name] = str(source[key])
    for tag in payload.get("request_tags") or []:
        key, _, value = str(tag).partition(":")
        if key in METADATA_FIELDS and value and METADATA_FIELDS[key] not in found:
            found[METADATA_FIELDS[key]] = value
    if "task_id" not in found:
        found["task_id"] = str(kwargs.get("litellm_trace_id") or payload.get("trace_id"))
    return found


def _time(epoch_s: Any) -> datetime | None:
    return datetime.fromtimestamp(float(epoch_s), UTC) if epoch_s else None


def _latency_ms(payload: Any) -> int | None:
    start, end = payload.get("startTime"), payload.get("endTime")
    if not start or not end:
        return None
    return max(0, round((float(end) - float(start)) * 1000))
