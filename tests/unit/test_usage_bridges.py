"""Usage that reaches costflow second-hand: through LiteLLM's ``Usage`` and through
OpenTelemetry GenAI spans. LiteLLM's own provider transformation builds the usage
(so the test follows LiteLLM's real accounting), and the property says a call
mapped through LiteLLM equals the same call mapped from the provider's response."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import given, settings
from hypothesis import strategies as st
from litellm.llms.anthropic.chat.transformation import AnthropicConfig
from litellm.types.utils import Usage as LiteLLMUsage
from openai.types.completion_usage import CompletionUsage
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from pipeline.errors import UsageNotMappable
from pipeline.events.models import ServiceTier, prompt_tokens
from pipeline.ingest.usage import anthropic, openai, otel_genai
from pipeline.ingest.usage.litellm import litellm_usage

_count = st.integers(min_value=0, max_value=200_000)


@st.composite
def anthropic_usages(draw: st.DrawFn) -> dict[str, Any]:
    five, hour = draw(_count), draw(_count)
    output = draw(_count)
    body: dict[str, Any] = {
        "input_tokens": draw(_count),
        "output_tokens": output,
        "cache_read_input_tokens": draw(_count),
        "cache_creation_input_tokens": five + hour,
        "cache_creation": {"ephemeral_5m_input_tokens": five, "ephemeral_1h_input_tokens": hour},
    }
    if draw(st.booleans()):
        body["output_tokens_details"] = {"thinking_tokens": draw(st.integers(0, output))}
    searches = draw(st.integers(0, 20))
    if searches:
        body["server_tool_use"] = {"web_search_requests": searches, "web_fetch_requests": 0}
    return body


@settings(max_examples=200, deadline=None)
@given(anthropic_usages())
def test_litellm_usage_maps_as_the_anthropic_response_it_came_from(raw: dict[str, Any]) -> None:
    through_litellm = litellm_usage(AnthropicConfig().calculate_usage(raw, reasoning_content=None))
    direct = anthropic.message_usage(raw)
    assert through_litellm.usage == direct.usage
    assert through_litellm.units == direct.units


def test_litellm_usage_worked_by_hand() -> None:
    usage = LiteLLMUsage(
        prompt_tokens=1000,
        completion_tokens=300,
        total_tokens=1300,
        prompt_tokens_details={
            "cached_tokens": 600,
            "cache_write_tokens": 150,
            "audio_tokens": 120,
            "cached_tokens_details": {"audio_tokens": 20},
            "cache_creation_token_details": {
                "ephemeral_5m_input_tokens": 50,
                "ephemeral_1h_input_tokens": 100,
            },
        },
        completion_tokens_details={"reasoning_tokens": 90, "image_tokens": 10},
        cost=0.0123,
    )
    mapped = litellm_usage(usage)
    # 600 cached = 580 text + 20 audio; 120 audio = 20 cached + 100 fresh;
    # fresh text = 1000 - 600 - 150 - 100 = 150; output 300 - 90 - 10 = 200
    assert {k: v for k, v in mapped.usage.model_dump().items() if v} == {
        "input_tokens": 150,
        "cache_read_tokens": 580,
        "cache_audio_read_tokens": 20,
        "cache_write_tokens": 50,
        "cache_write_1h_tokens": 100,
        "input_audio_tokens": 100,
        "output_tokens": 200,
        "reasoning_tokens": 90,
        "output_image_tokens": 10,
    }
    assert prompt_tokens(mapped.usage) == 1000
    assert mapped.attributes == {"provider_reported_cost": "0.0123"}


@pytest.mark.parametrize(
    ("details", "reason"),
    [
        ({"cached_tokens": 1001}, "exceed prompt_tokens 1,000"),
        (
            {
                "cache_write_tokens": 10,
                "cache_creation_token_details": {"ephemeral_30m_input_tokens": 10},
            },
            "ephemeral_30m_input_tokens",
        ),
        (
            {
                "cache_write_tokens": 10,
                "cache_creation_token_details": {"ephemeral_5m_input_tokens": 9},
            },
            "do not add up",
        ),
    ],
)
def test_litellm_refusals_say_why(details: dict[str, Any], reason: str) -> None:
    usage = LiteLLMUsage(
        prompt_tokens=1000, completion_tokens=1, total_tokens=1001, prompt_tokens_details=details
    )
    with pytest.raises(UsageNotMappable, match=reason):
        litellm_usage(usage)


@settings(max_examples=200, deadline=None)
@given(
    cached=_count, written=_count, audio=_count, fresh=_count,
    reasoning=_count, audio_out=_count, visible=_count,
)  # fmt: skip
def test_openai_every_token_lands_in_exactly_one_class(
    cached: int, written: int, audio: int, fresh: int, reasoning: int, audio_out: int, visible: int
) -> None:
    prompt, completion = fresh + cached + written + audio, visible + reasoning + audio_out
    usage = CompletionUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details={
            "cached_tokens": cached,
            "cache_write_tokens": written,
            "audio_tokens": audio,
        },
        completion_tokens_details={"reasoning_tokens": reasoning, "audio_tokens": audio_out},
    )
    mapped = openai.chat_completion_usage(usage)
    assert prompt_tokens(mapped.usage) == prompt
    u = mapped.usage
    assert u.output_tokens + u.reasoning_tokens + u.output_audio_tokens == completion
    assert (u.input_tokens, u.output_tokens) == (fresh, visible)


# -- OpenTelemetry GenAI -----------------------------------------------------------


def _span(attributes: dict[str, Any]) -> ReadableSpan:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("chat", attributes=attributes):
        pass
    (span,) = exporter.get_finished_spans()
    return span


_CHAT = {
    gen_ai.GEN_AI_OPERATION_NAME: "chat",
    gen_ai.GEN_AI_PROVIDER_NAME: "aws.bedrock",
    gen_ai.GEN_AI_REQUEST_MODEL: "claude",
    gen_ai.GEN_AI_RESPONSE_MODEL: "anthropic.claude-sonnet-4-5-20250929-v1:0",
    gen_ai.GEN_AI_USAGE_INPUT_TOKENS: 1000,
    gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 600,
    gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 100,
    gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: 200,
    gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 50,
}


def test_otel_span_counts_are_inclusive() -> None:
    span = _span(_CHAT)
    assert span.attributes is not None
    mapped = otel_genai.span_usage(span.attributes)
    # 1000 input includes 600 read and 100 written; 200 output includes 50 reasoning
    assert {k: v for k, v in mapped.usage.model_dump().items() if v} == {
        "input_tokens": 300,
        "cache_read_tokens": 600,
        "cache_write_tokens": 100,
        "output_tokens": 150,
        "reasoning_tokens": 50,
    }
    assert (mapped.provider, mapped.model) == (
        "bedrock",
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
    )


def test_otlp_json_reads_as_the_span_did() -> None:
    """OTLP/JSON (what an otlp/http exporter posts with JSON encoding) writes ints as
    strings; flattened, its attributes map exactly as the span's own."""
    span = _span({**_CHAT, gen_ai.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER: "flex"})
    request = MessageToDict(encode_spans([span]))
    (otlp_span,) = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert otlp_span["attributes"][4]["value"] == {"intValue": "1000"}  # a string on the wire
    flat = otel_genai.otlp_attributes(otlp_span["attributes"])
    mapped = otel_genai.span_usage(flat)
    assert span.attributes is not None
    assert mapped == otel_genai.span_usage(span.attributes)
    assert mapped.service_tier is ServiceTier.flex


def test_otel_agent_spans_are_not_priced_twice() -> None:
    agent = _span({**_CHAT, gen_ai.GEN_AI_OPERATION_NAME: "invoke_agent"})
    assert agent.attributes is not None
    assert not otel_genai.is_model_call(agent.attributes)
    with pytest.raises(UsageNotMappable, match="not a model call"):
        otel_genai.span_usage(agent.attributes)


def test_otel_input_reported_without_the_cache_is_refused() -> None:
    exclusive = _span({**_CHAT, gen_ai.GEN_AI_USAGE_INPUT_TOKENS: 300})
    assert exclusive.attributes is not None
    with pytest.raises(UsageNotMappable, match="exceed input_tokens 300"):
        otel_genai.span_usage(exclusive.attributes)


def test_otel_deprecated_names_are_read() -> None:
    old = _span(
        {
            gen_ai.GEN_AI_SYSTEM: "openai",
            gen_ai.GEN_AI_REQUEST_MODEL: "gpt-4o",
            gen_ai.GEN_AI_USAGE_PROMPT_TOKENS: 12,
            gen_ai.GEN_AI_USAGE_COMPLETION_TOKENS: 3,
        }
    )
    assert old.attributes is not None
    mapped = otel_genai.span_usage(old.attributes)
    assert (mapped.usage.input_tokens, mapped.usage.output_tokens) == (12, 3)
    assert (mapped.provider, mapped.model) == ("openai", "gpt-4o")


# -- telling responses apart, and building the event -------------------------------


def test_usage_of_tells_the_sdk_objects_apart() -> None:
    from anthropic.types import Message
    from openai.types.chat import ChatCompletion

    from pipeline.ingest.usage.detect import usage_of

    chat = ChatCompletion.model_validate_json(_chat_json())
    message = Message.model_validate(
        {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-4-5",
            "content": [],
            "usage": {"input_tokens": 7, "output_tokens": 3},
        }
    )
    assert usage_of(chat).provider == "openai"
    assert usage_of(message).provider == "anthropic"
    with pytest.raises(UsageNotMappable, match="cannot tell which provider"):
        usage_of({"tokens": 3})


def test_litellm_model_response_keeps_litellms_price_beside_the_usage() -> None:
    from litellm.types.utils import ModelResponse

    from pipeline.ingest.usage.detect import usage_of

    response = ModelResponse(
        model="gpt-4o-mini",
        choices=[],
        usage=LiteLLMUsage(prompt_tokens=7, completion_tokens=3, total_tokens=10),
    )
    response._hidden_params = {"custom_llm_provider": "openai", "response_cost": 0.5}
    mapped = usage_of(response)
    assert (mapped.provider, mapped.model) == ("openai", "gpt-4o-mini")
    assert mapped.attributes == {"provider_reported_cost": "0.5"}


def _chat_json() -> str:
    from openai.types.chat import ChatCompletion

    return ChatCompletion.model_validate(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        }
    ).model_dump_json()


def test_call_event_overrides_and_refuses_content() -> None:
    from pydantic import ValidationError

    from pipeline.emit.events import call_event, to_json
    from pipeline.events.models import CallEvent
    from pipeline.ingest.usage.mapped import MappedUsage
    from pipeline.ingest.usage.otel_genai import span_usage

    mapped = span_usage(dict(_CHAT))
    event = call_event(mapped, task_id="t", event_id="e", provider="anthropic", role="planner")
    assert (event.provider, event.model, event.role) == (
        "anthropic",
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "planner",
    )
    assert CallEvent.model_validate_json(to_json(event)) == event  # the wire form reads back
    with pytest.raises(TypeError, match="no field messages"):  # not silently an attribute
        call_event(mapped, task_id="t", messages=[{"role": "user", "content": "secret"}])
    with pytest.raises(TypeError, match=r"no field scenario; .* scenario_id"):
        call_event(mapped, task_id="t", scenario="typo")
    with pytest.raises(ValueError, match="names no provider: pass provider="):
        call_event(MappedUsage(usage=mapped.usage), task_id="t")
    with pytest.raises(ValidationError, match="task_id"):
        call_event(mapped, task_id="")
    as_text = call_event(_chat_json(), task_id="t", event_id="e")  # the response's JSON text
    assert as_text.usage.input_tokens == 7
