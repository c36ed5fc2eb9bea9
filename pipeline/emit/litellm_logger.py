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
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from pipeline.config import KafkaSettings, TopicSettings
from pipeline.emit.events import to_json
from pipeline.errors import InvalidEvent, UsageNotMappable
from pipeline.ingest.litellm_payload import call_event_of, call_id_of
from pipeline.ingest.usage.detect import usage_of
from pipeline.kafka.produce import Sender
from pipeline.records import DeadLetterHeaders

log = logging.getLogger("costflow.litellm")

SOURCE = "litellm-callback"


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
        payload = dict(kwargs.get("standard_logging_object") or {})
        payload.setdefault("litellm_call_id", kwargs.get("litellm_call_id"))
        payload.setdefault("trace_id", kwargs.get("litellm_trace_id"))
        if failed:
            payload["status"] = "failure"
        call_id = call_id_of(payload)
        try:
            usage = None
            if not failed and not payload.get("cache_hit"):
                if response_obj is None or getattr(response_obj, "usage", None) is None:
                    raise UsageNotMappable(
                        f"LiteLLM call type {payload.get('call_type')!r} returned no usage"
                    )
                usage = usage_of(response_obj)
            metadata = (kwargs.get("litellm_params") or {}).get("metadata")
            event = call_event_of(payload, usage, metadata)
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
