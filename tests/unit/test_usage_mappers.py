"""The usage mappers against the providers' own SDK objects: each response is built
the way the SDK builds it (``model_validate`` of the API's JSON, botocore's parser
for Bedrock, real spans of the OpenTelemetry SDK), and every expected class is
worked by hand in the test from the counts the response states."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from anthropic.types import Message, RawMessageDeltaEvent, RawMessageStartEvent
from anthropic.types import Usage as AnthropicUsage
from botocore.parsers import RestJSONParser
from google.genai import types as genai
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseCompletedEvent

from pipeline.errors import UsageNotMappable
from pipeline.events.models import CallEvent, ServiceTier, prompt_tokens
from pipeline.ingest.usage import anthropic, bedrock, gemini, openai


def _classes(mapped: Any) -> dict[str, int]:
    return {k: v for k, v in mapped.usage.model_dump().items() if v}


# -- OpenAI ------------------------------------------------------------------------


def _chat(usage: dict[str, Any], service_tier: str | None = "default") -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_764_000_000,
            "model": "gpt-4o-2024-08-06",
            "service_tier": service_tier,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": None},
                }
            ],
            "usage": usage,
        }
    )


def test_openai_chat_takes_cached_and_reasoning_out_of_their_totals() -> None:
    completion = _chat(
        {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 192, "audio_tokens": 0},
        }
    )
    mapped = openai.chat_completion(completion)
    # 2006 - 1920 cached = 86 fresh input; 300 - 192 reasoning = 108 visible output
    assert _classes(mapped) == {
        "input_tokens": 86,
        "cache_read_tokens": 1920,
        "output_tokens": 108,
        "reasoning_tokens": 192,
    }
    assert (mapped.provider, mapped.model) == ("openai", "gpt-4o-2024-08-06")
    assert mapped.service_tier is ServiceTier.standard
    assert prompt_tokens(mapped.usage) == 2006


def test_openai_chat_audio_is_its_own_class_on_both_sides() -> None:
    completion = _chat(
        {
            "prompt_tokens": 500,
            "completion_tokens": 400,
            "total_tokens": 900,
            "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 300},
            "completion_tokens_details": {"audio_tokens": 350},
        },
        service_tier="flex",
    )
    mapped = openai.chat_completion(completion)
    # 500 - 100 cached - 300 audio = 100 text input; 400 - 350 audio = 50 text output
    assert _classes(mapped) == {
        "input_tokens": 100,
        "cache_read_tokens": 100,
        "input_audio_tokens": 300,
        "output_tokens": 50,
        "output_audio_tokens": 350,
    }
    assert mapped.service_tier is ServiceTier.flex


@pytest.mark.parametrize("tier", ["scale", "fast", "auto"])
def test_openai_tiers_no_price_book_expresses_are_refused(tier: str) -> None:
    completion = _chat({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}, tier)
    with pytest.raises(UsageNotMappable, match=f"service_tier '{tier}'"):
        openai.chat_completion(completion)


def test_openai_cached_above_prompt_is_refused_not_clamped() -> None:
    completion = _chat(
        {
            "prompt_tokens": 100,
            "completion_tokens": 5,
            "total_tokens": 105,
            "prompt_tokens_details": {"cached_tokens": 128},
        }
    )
    with pytest.raises(UsageNotMappable, match="cached_tokens 128 exceed prompt_tokens 100"):
        openai.chat_completion(completion)


def _chunk(usage: dict[str, Any] | None, content: str | None = "") -> ChatCompletionChunk:
    choices = [] if content is None else [{"index": 0, "delta": {"content": content}}]
    return ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-2",
            "object": "chat.completion.chunk",
            "created": 1_764_000_000,
            "model": "gpt-4o-mini",
            "service_tier": "priority",
            "choices": choices,
            "usage": usage,
        }
    )


def test_openai_chat_stream_reads_the_final_usage_chunk() -> None:
    chunks = [_chunk(None, "Hel"), _chunk(None, "lo")]
    with pytest.raises(UsageNotMappable, match="include_usage"):
        openai.chat_completion_stream(chunks)
    chunks.append(
        _chunk({"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42}, content=None)
    )
    mapped = openai.chat_completion_stream(chunks)
    assert _classes(mapped) == {"input_tokens": 40, "output_tokens": 2}
    assert (mapped.model, mapped.service_tier) == ("gpt-4o-mini", ServiceTier.priority)


def _response(output: list[dict[str, Any]], usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1_764_000_000,
        "model": "gpt-5-2025-08-07",
        "service_tier": "default",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


_SEARCH = {
    "type": "web_search_call",
    "status": "completed",
    "action": {"type": "search", "query": "q"},
}


def test_openai_response_counts_cache_writes_and_each_web_search() -> None:
    body = _response(
        [
            {**_SEARCH, "id": "ws_1"},
            {**_SEARCH, "id": "ws_2"},
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "", "annotations": []}],
            },
        ],
        {
            "input_tokens": 1000,
            "input_tokens_details": {"cached_tokens": 200, "cache_write_tokens": 300},
            "output_tokens": 500,
            "output_tokens_details": {"reasoning_tokens": 100},
            "total_tokens": 1500,
        },
    )
    mapped = openai.response(Response.model_validate(body))
    # 1000 - 200 read - 300 written = 500 fresh; 500 - 100 reasoning = 400
    expected = {
        "input_tokens": 500,
        "cache_read_tokens": 200,
        "cache_write_tokens": 300,
        "output_tokens": 400,
        "reasoning_tokens": 100,
    }
    assert _classes(mapped) == expected
    assert mapped.units == {"web_search": 2}
    assert mapped.model == "gpt-5-2025-08-07"
    completed = ResponseCompletedEvent.model_validate(
        {"type": "response.completed", "sequence_number": 9, "response": body}
    )
    assert openai.response_stream([completed]) == mapped
    assert openai.response(body) == mapped  # the JSON reads as the SDK object does


# -- Anthropic ---------------------------------------------------------------------


def _anthropic_usage(**overrides: Any) -> dict[str, Any]:
    return {
        "input_tokens": 50,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 300,
        "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
        "output_tokens": 400,
        "output_tokens_details": {"thinking_tokens": 150},
        "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 1},
        "service_tier": "batch",
        **overrides,
    }


def _message(usage: dict[str, Any]) -> Message:
    return Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [],
            "stop_reason": "end_turn",
            "usage": usage,
        }
    )


def test_anthropic_counts_are_exclusive_and_writes_split_by_lifetime() -> None:
    mapped = anthropic.message(_message(_anthropic_usage()))
    # input_tokens is already the uncached part: nothing is subtracted from it;
    # 400 output includes 150 thinking
    assert _classes(mapped) == {
        "input_tokens": 50,
        "cache_read_tokens": 1000,
        "cache_write_tokens": 100,
        "cache_write_1h_tokens": 200,
        "output_tokens": 250,
        "reasoning_tokens": 150,
    }
    assert mapped.units == {"web_search": 3}
    assert mapped.service_tier is ServiceTier.batch
    assert mapped.model == "claude-sonnet-4-5-20250929"
    assert prompt_tokens(mapped.usage) == 50 + 1000 + 300


def test_anthropic_writes_without_a_split_are_five_minute_writes() -> None:
    mapped = anthropic.message_usage(
        AnthropicUsage.model_validate(_anthropic_usage(cache_creation=None))
    )
    assert (mapped.usage.cache_write_tokens, mapped.usage.cache_write_1h_tokens) == (300, 0)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"speed": "fast"}, "fast mode"),
        ({"inference_geo": "us"}, "regional premium"),
        ({"cache_creation_input_tokens": 299}, "do not add up"),
        ({"output_tokens_details": {"thinking_tokens": 401}}, "thinking_tokens 401 exceed"),
        ({"input_tokens": -1}, "outside 0"),
    ],
)
def test_anthropic_refusals_say_why(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(UsageNotMappable, match=reason):
        anthropic.message_usage(_anthropic_usage(**overrides))


def test_anthropic_stream_merges_start_and_cumulative_deltas() -> None:
    start = RawMessageStartEvent.model_validate(
        {
            "type": "message_start",
            "message": _message(
                _anthropic_usage(output_tokens=1, service_tier="standard")
            ).model_dump(),
        }
    )
    deltas = [
        RawMessageDeltaEvent.model_validate(
            {
                "type": "message_delta",
                "delta": {"stop_reason": None, "stop_sequence": None},
                "usage": {"output_tokens": n, "output_tokens_details": {"thinking_tokens": 150}},
            }
        )
        for n in (200, 400)  # cumulative: the last one is the call's
    ]
    mapped = anthropic.message_stream([start, *deltas])
    assert (mapped.usage.output_tokens, mapped.usage.reasoning_tokens) == (250, 150)
    assert (mapped.usage.input_tokens, mapped.usage.cache_read_tokens) == (50, 1000)
    assert mapped.service_tier is ServiceTier.standard


# -- Gemini ------------------------------------------------------------------------


def _gemini_meta(traffic: str = "ON_DEMAND_PRIORITY") -> dict[str, Any]:
    """REST JSON, camelCase, as the Gemini API returns it."""
    return {
        "promptTokenCount": 1200,
        "promptTokensDetails": [
            {"modality": "TEXT", "tokenCount": 900},
            {"modality": "AUDIO", "tokenCount": 300},
        ],
        "cachedContentTokenCount": 500,
        "cacheTokensDetails": [
            {"modality": "TEXT", "tokenCount": 400},
            {"modality": "AUDIO", "tokenCount": 100},
        ],
        "toolUsePromptTokenCount": 50,
        "candidatesTokenCount": 300,
        "candidatesTokensDetails": [
            {"modality": "TEXT", "tokenCount": 200},
            {"modality": "IMAGE", "tokenCount": 100},
        ],
        "thoughtsTokenCount": 80,
        "totalTokenCount": 1630,
        "trafficType": traffic,
    }


def _gemini_expected() -> dict[str, int]:
    # prompt 1200 holds 500 cached (100 of them audio) and 300 audio (100 cached):
    # fresh audio 300 - 100 = 200; fresh text 1200 - 500 - 200 = 500, plus 50 tool use.
    # candidates 300 hold 100 image; thoughts 80 are beside them.
    return {
        "input_tokens": 550,
        "cache_read_tokens": 400,
        "cache_audio_read_tokens": 100,
        "input_audio_tokens": 200,
        "output_tokens": 200,
        "output_image_tokens": 100,
        "reasoning_tokens": 80,
    }


def test_gemini_sdk_object_and_rest_json_map_alike() -> None:
    body = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "x"}]},
                "groundingMetadata": {"webSearchQueries": ["a", "b"]},
            }
        ],
        "modelVersion": "gemini-2.5-flash",
        "usageMetadata": _gemini_meta(),
    }
    sdk = genai.GenerateContentResponse.model_validate(body)
    assert sdk.usage_metadata is not None and sdk.usage_metadata.cached_content_token_count == 500
    for source in (sdk, body):
        mapped = gemini.generate_content_response(source)
        assert _classes(mapped) == _gemini_expected()
        assert mapped.units == {"web_search": 2}
        assert (mapped.provider, mapped.model) == ("google", "gemini-2.5-flash")
        assert mapped.service_tier is ServiceTier.priority
    vertex = gemini.generate_content_response(sdk, provider="vertex_ai")
    assert vertex.provider == "vertex_ai"
    # every input token once: the prompt and the tool-use prompt
    assert prompt_tokens(vertex.usage) == 1200 + 50


@pytest.mark.parametrize(
    ("traffic", "reason"),
    [("PROVISIONED_THROUGHPUT", "paid by reservation"), ("ON_DEMAND_OFFPEAK", "refused")],
)
def test_gemini_traffic_types_without_a_tier_are_refused(traffic: str, reason: str) -> None:
    meta = genai.GenerateContentResponseUsageMetadata.model_validate(_gemini_meta(traffic))
    with pytest.raises(UsageNotMappable, match=reason):
        gemini.usage_metadata(meta)


def test_gemini_stream_takes_the_last_running_total() -> None:
    first = {**_gemini_meta(), "candidatesTokenCount": 10, "candidatesTokensDetails": []}
    chunks = [
        genai.GenerateContentResponse.model_validate({"usageMetadata": first}),
        genai.GenerateContentResponse.model_validate(
            {"usageMetadata": _gemini_meta(), "modelVersion": "gemini-2.5-flash"}
        ),
    ]
    assert _classes(gemini.generate_content_stream(chunks)) == _gemini_expected()


# -- Bedrock -----------------------------------------------------------------------


def _converse(body: dict[str, Any], operation: str = "Converse") -> dict[str, Any]:
    """The dict boto3 returns: the service's JSON through botocore's own parser."""
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    shape = model.operation_model(operation).output_shape
    raw = {"status_code": 200, "headers": {}, "body": json.dumps(body).encode()}
    parsed: dict[str, Any] = RestJSONParser().parse(raw, shape)
    return parsed


_OUTPUT = {"message": {"role": "assistant", "content": [{"text": "x"}]}}
_BEDROCK_USAGE = {
    "inputTokens": 100,
    "outputTokens": 50,
    "cacheReadInputTokens": 400,
    "cacheWriteInputTokens": 300,
    "totalTokens": 850,
    "cacheDetails": [{"ttl": "5m", "inputTokens": 100}, {"ttl": "1h", "inputTokens": 200}],
}


def test_bedrock_converse_counts_are_exclusive_and_total_checked() -> None:
    response = _converse(
        {
            "output": _OUTPUT,
            "stopReason": "end_turn",
            "usage": _BEDROCK_USAGE,
            "metrics": {"latencyMs": 10},
            "serviceTier": {"type": "priority"},
        }
    )
    mapped = bedrock.converse(response, model_id="anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert _classes(mapped) == {
        "input_tokens": 100,
        "cache_read_tokens": 400,
        "cache_write_tokens": 100,
        "cache_write_1h_tokens": 200,
        "output_tokens": 50,
    }
    assert mapped.service_tier is ServiceTier.priority
    assert mapped.model == "anthropic.claude-sonnet-4-5-20250929-v1:0"
    wrong_total = _converse(
        {
            "output": _OUTPUT,
            "stopReason": "end_turn",
            "usage": {**_BEDROCK_USAGE, "totalTokens": 150},
        }
    )
    with pytest.raises(UsageNotMappable, match="totalTokens"):
        bedrock.converse(wrong_total)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"serviceTier": {"type": "reserved"}}, "reservation"),
        ({"performanceConfig": {"latency": "optimized"}}, "premium"),
    ],
)
def test_bedrock_refuses_capacity_it_cannot_price(extra: dict[str, Any], reason: str) -> None:
    response = _converse(
        {"output": _OUTPUT, "stopReason": "end_turn", "usage": _BEDROCK_USAGE, **extra}
    )
    with pytest.raises(UsageNotMappable, match=reason):
        bedrock.converse(response)


def test_bedrock_stream_reads_the_metadata_event() -> None:
    events = [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "x"}, "contentBlockIndex": 0}},
        {"metadata": {"usage": _BEDROCK_USAGE, "metrics": {"latencyMs": 3}}},
    ]
    mapped = bedrock.converse_stream(events, model_id="m")
    assert mapped.usage.cache_write_1h_tokens == 200
    with pytest.raises(UsageNotMappable, match="no metadata event"):
        bedrock.converse_stream(events[:2])


# -- into the contract -------------------------------------------------------------


def test_call_fields_make_a_valid_contract_event() -> None:
    mapped = anthropic.message(_message(_anthropic_usage()))
    event = CallEvent.model_validate(
        {
            "event_id": "e1",
            "task_id": "t1",
            "ts": 1_764_000_000_000,
            "type": "call",
            "status": "ok",
            **mapped.call_fields(),
        }
    )
    assert event.usage == mapped.usage
    assert event.units == {"web_search": 3}
    assert (event.provider, event.service_tier) == ("anthropic", ServiceTier.batch)
