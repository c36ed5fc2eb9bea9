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

import asyncio
import json
import logging
import time
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from pipeline.config import KafkaSettings, TopicSettings
from pipeline.emit.events import to_json
from pipeline.errors import CallbacksPending, InvalidEvent, UsageNotMappable
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

    def close(self, timeout_s: float = 30) -> None:
        """Wait until LiteLLM has run the callbacks of every call made so far (it runs
        them on its own logging threads, after the call returns), then until the
        broker acknowledged every event, then release the producer.

        Raises CallbacksPending when LiteLLM's callbacks are still queued after
        ``timeout_s``, and KafkaError for events not acknowledged."""
        try:
            pending = _wait_for_litellm_logging(timeout_s)
            self.flush(timeout_s)
            if pending:
                raise CallbacksPending(
                    f"{pending} LiteLLM logging callbacks were still queued after "
                    f"{timeout_s:.0f} s; their calls were not emitted"
                )
        finally:
            self.sender.close()

    async def aclose(self, timeout_s: float = 30) -> None:
        """:meth:`close` for asyncio code: first waits for LiteLLM's async logging
        worker (``acompletion`` callbacks) to run what it holds."""
        pending = await _wait_for_async_litellm_logging(timeout_s)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.close, timeout_s)
        if pending:
            raise CallbacksPending(
                f"{pending} LiteLLM async logging callbacks were still queued after "
                f"{timeout_s:.0f} s; their calls were not emitted"
            )

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


def _wait_for_litellm_logging(timeout_s: float) -> int:
    """Until LiteLLM's logging thread pool is idle; the tasks left after ``timeout_s``.

    LiteLLM exposes no way to wait for it: its executor's semaphore of pending slots
    is read (LiteLLM 1.110's ``BoundedLoggingThreadPoolExecutor``); without it, nothing
    is waited for and a warning says so."""
    from litellm.litellm_core_utils import thread_pool_executor

    executor = thread_pool_executor.executor
    slots = getattr(executor, "_pending_slots", None)
    most = getattr(executor, "_max_pending_tasks", None)
    if slots is None or most is None:
        log.warning("costflow: cannot see LiteLLM's logging backlog; not waiting for it")
        return 0
    deadline = time.monotonic() + timeout_s
    while (pending := int(most) - int(slots._value)) > 0 and time.monotonic() < deadline:
        time.sleep(0.01)  # LiteLLM offers nothing to wait on: poll its backlog
    return max(0, pending)


async def _wait_for_async_litellm_logging(timeout_s: float) -> int:
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    deadline = time.monotonic() + timeout_s
    while (pending := int(GLOBAL_LOGGING_WORKER.pending_count)) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # nothing to await on: poll the worker's queue
    return pending
