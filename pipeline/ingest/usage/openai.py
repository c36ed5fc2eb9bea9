"""OpenAI usage (Chat Completions and Responses) in the contract's token classes.

Source: the ``openai`` SDK's ``CompletionUsage`` and ``ResponseUsage`` (their
docstrings) and OpenAI's pricing page. Both usage objects are *inclusive*:

- ``prompt_tokens`` (Responses: ``input_tokens``) includes the cached tokens
  (``prompt_tokens_details.cached_tokens``), the tokens written to the cache
  (``cache_write_tokens``) and the audio tokens (``audio_tokens``);
- ``completion_tokens`` (``output_tokens``) includes ``reasoning_tokens`` and the
  audio output tokens, and the rejected prediction tokens, which are billed as output.

Each part is taken out once, so a token lands in exactly one class. Image tokens
stay in ``input_tokens``: chat models bill them at the text input rate.

``service_tier`` on the response is the tier that billed the call: ``default`` is
standard; ``scale`` (Scale Tier, prepaid capacity) is refused, as no per-token
price describes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from pipeline.errors import UsageNotMappable
from pipeline.events.models import ServiceTier
from pipeline.ingest.usage.mapped import MappedUsage, count, field, items, part_of, text, usage

PROVIDER = "openai"

_TIERS = {
    "default": ServiceTier.standard,
    "flex": ServiceTier.flex,
    "priority": ServiceTier.priority,
    "batch": ServiceTier.batch,
}


def service_tier(value: Any, where: str = "openai response") -> ServiceTier | None:
    """The billed tier of a response's ``service_tier``; None when absent.

    Raises UsageNotMappable for ``scale`` (prepaid capacity) and ``auto`` (a request
    setting: the response should say which tier served it)."""
    name = text(value)
    if name is None:
        return None
    tier = _TIERS.get(name)
    if tier is None:
        raise UsageNotMappable(
            f"{where}: service_tier {name!r} is not billed per token at a tier costflow "
            f"prices ({', '.join(sorted(_TIERS))}); set the call's service_tier yourself "
            "or leave it out of the cost"
        )
    return tier


def chat_completion_usage(usage_obj: Any, where: str = "openai chat usage") -> MappedUsage:
    """A Chat Completions ``usage`` object (``CompletionUsage`` or its JSON) in the
    contract's classes. Raises UsageNotMappable when a part exceeds its total."""
    return _mapped(usage_obj, where, "prompt_tokens", "completion_tokens")


def responses_usage(usage_obj: Any, where: str = "openai responses usage") -> MappedUsage:
    """A Responses API ``usage`` object (``ResponseUsage`` or its JSON)."""
    return _mapped(usage_obj, where, "input_tokens", "output_tokens")


def _mapped(usage_obj: Any, where: str, prompt_name: str, completion_name: str) -> MappedUsage:
    """Both APIs' usage: the totals under their names, the details beside them as
    ``<total>_details``."""
    if usage_obj is None:
        raise UsageNotMappable(f"{where}: the response has no usage")
    prompt = count(usage_obj, prompt_name, where=where, required=True)
    completion = count(usage_obj, completion_name, where=where, required=True)
    prompt_details = field(usage_obj, f"{prompt_name}_details")
    completion_details = field(usage_obj, f"{completion_name}_details")
    cached = count(prompt_details, "cached_tokens", where=where)
    written = count(prompt_details, "cache_write_tokens", where=where)
    audio_in = count(prompt_details, "audio_tokens", where=where)
    parts = {"cached_tokens": cached, "cache_write_tokens": written, "audio_tokens": audio_in}
    reasoning = count(completion_details, "reasoning_tokens", where=where)
    audio_out = count(completion_details, "audio_tokens", where=where)
    out_parts = {"reasoning_tokens": reasoning, "audio_tokens": audio_out}
    return MappedUsage(
        usage=usage(
            where,
            input_tokens=part_of(prompt, parts, prompt_name, where),
            cache_read_tokens=cached,
            cache_write_tokens=written,
            input_audio_tokens=audio_in,
            output_tokens=part_of(completion, out_parts, completion_name, where),
            reasoning_tokens=reasoning,
            output_audio_tokens=audio_out,
        )
    )


def chat_completion(response: Any) -> MappedUsage:
    """A whole ``ChatCompletion`` (or its JSON): usage, billed tier and model."""
    mapped = chat_completion_usage(field(response, "usage"), "openai chat completion")
    return _with(mapped, response, units={})


def chat_completion_stream(chunks: Iterable[Any]) -> MappedUsage:
    """The usage of a streamed chat completion, from its ``ChatCompletionChunk``\\ s.

    OpenAI sends usage only in the last chunk, and only when the request set
    ``stream_options={"include_usage": True}``; without it the stream cannot be
    priced and UsageNotMappable says so."""
    last_usage = None
    for chunk in chunks:
        if field(chunk, "usage") is not None:
            last_usage = chunk
    if last_usage is None:
        raise UsageNotMappable(
            "openai chat stream: no chunk carried usage; request it with "
            "stream_options={'include_usage': True}"
        )
    mapped = chat_completion_usage(field(last_usage, "usage"), "openai chat stream")
    return _with(mapped, last_usage, units={})


def response(resp: Any) -> MappedUsage:
    """A whole Responses API ``Response`` (or its JSON): usage, billed tier, model, and
    its web searches (``web_search_call`` output items, billed per search)."""
    mapped = responses_usage(field(resp, "usage"), "openai response")
    searches = sum(
        1 for item in items(resp, "output") if text(field(item, "type")) == "web_search_call"
    )
    return _with(mapped, resp, units={"web_search": searches} if searches else {})


def response_stream(events: Iterable[Any]) -> MappedUsage:
    """The usage of a streamed response: its last ``response.completed`` (or
    ``response.incomplete`` / ``response.failed``) event carries the whole response."""
    final = None
    for event in events:
        if text(field(event, "type")) in {
            "response.completed",
            "response.incomplete",
            "response.failed",
        }:
            final = field(event, "response")
    if final is None:
        raise UsageNotMappable("openai response stream: it ended without a final response event")
    return response(final)


def _with(mapped: MappedUsage, resp: Any, units: dict[str, int]) -> MappedUsage:
    return replace(
        mapped,
        units=units,
        service_tier=service_tier(field(resp, "service_tier")),
        provider=PROVIDER,
        model=text(field(resp, "model")),
    )
