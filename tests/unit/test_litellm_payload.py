"""LiteLLM's log payload (StandardLoggingPayload) as a call event: labels, cache hits,
failures, and usage that cannot be told apart. Payloads as LiteLLM 1.110 writes them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from pipeline.errors import UsageNotMappable
from pipeline.events.models import CallStatus
from pipeline.ingest.litellm_payload import call_event_of


def payload(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "litellm_call_id": "call-1",
        "trace_id": "trace-1",
        "call_type": "acompletion",
        "status": "success",
        "custom_llm_provider": "openai",
        "model": "gpt-4o-mini",
        "response_cost": 0.0012,
        "startTime": 1_764_000_000.0,
        "endTime": 1_764_000_000.25,
        "request_tags": [],
        "metadata": {
            "usage_object": {
                "prompt_tokens": 1000,
                "completion_tokens": 100,
                "prompt_tokens_details": {"cached_tokens": 400},
            },
            "requester_metadata": {"costflow_task_id": "t1", "costflow_owner": "team-a"},
        },
        "messages": [{"role": "user", "content": "never read"}],
        **overrides,
    }


def test_a_successful_call() -> None:
    event = call_event_of(payload())
    assert (event.event_id, event.task_id, event.owner) == ("call-1", "t1", "team-a")
    # 1000 prompt includes 400 cached
    assert (event.usage.input_tokens, event.usage.cache_read_tokens) == (600, 400)
    assert event.latency_ms == 250
    assert Decimal(event.attributes["provider_reported_cost"]) == Decimal("0.0012")
    assert "never read" not in event.model_dump_json()


def test_litellms_own_cache_hit_is_a_call_at_zero_usage() -> None:
    event = call_event_of(payload(cache_hit=True, response_cost=0.0))
    assert event.usage.prompt_tokens == 0 and event.usage.output_tokens == 0
    assert event.attributes["litellm_cache_hit"] == "true"


@pytest.mark.parametrize(
    ("error_class", "status"),
    [("RateLimitError", CallStatus.rate_limited), ("Timeout", CallStatus.timeout),
     ("BadRequestError", CallStatus.error)],
)  # fmt: skip
def test_failures_keep_the_class_not_the_message(error_class: str, status: CallStatus) -> None:
    failed = payload(
        status="failure",
        error_str="the prompt was: secret",
        error_information={"error_class": error_class, "error_message": "secret"},
    )
    event = call_event_of(failed)
    assert event.status is status and event.usage.prompt_tokens == 0
    assert event.attributes["error_class"] == error_class
    assert "secret" not in event.model_dump_json()


def test_labels_from_tags_and_the_trace_when_nothing_names_the_task() -> None:
    tagged = payload(request_tags=["costflow_task_id:t9", "costflow_role:planner"])
    tagged["metadata"] = {"usage_object": tagged["metadata"]["usage_object"]}
    event = call_event_of(tagged)
    assert (event.task_id, event.role) == ("t9", "planner")
    bare = payload(request_tags=[])
    bare["metadata"] = {"usage_object": bare["metadata"]["usage_object"]}
    assert call_event_of(bare).task_id == "trace-1"


def test_totals_without_the_usage_object_are_refused() -> None:
    totals_only = payload(prompt_tokens=1000, completion_tokens=100)
    totals_only["metadata"] = {}
    with pytest.raises(UsageNotMappable, match="cached and fresh input cannot be told apart"):
        call_event_of(totals_only)
