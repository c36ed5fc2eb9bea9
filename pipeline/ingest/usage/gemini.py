"""Gemini ``usageMetadata`` in the contract's token classes.

Source: the ``google-genai`` SDK's ``GenerateContentResponseUsageMetadata`` (its
field docs) and the Gemini API pricing page. Read in either spelling: the REST
JSON's camelCase (``promptTokenCount``) or the SDK's snake_case.

- ``promptTokenCount`` *includes* ``cachedContentTokenCount``;
- ``toolUsePromptTokenCount`` (tool results fed back, e.g. search grounding) is
  *outside* ``promptTokenCount`` and billed as input;
- ``candidatesTokenCount`` is the response; ``thoughtsTokenCount`` is *outside* it
  and billed at the output rate;
- ``promptTokensDetails`` / ``cacheTokensDetails`` / ``candidatesTokensDetails`` split
  each count by modality. Audio input (and cached audio) is billed at its own rate,
  and so is generated image output; text, image, video and document input are
  billed at the text input rate and stay in ``input_tokens``.

``trafficType`` (Vertex AI) names the tier: ``ON_DEMAND_PRIORITY`` and
``ON_DEMAND_FLEX`` are priority and flex; ``PROVISIONED_THROUGHPUT`` is paid by
reservation, not per token, and is refused (count it as a fixed cost); so is any
other type (``ON_DEMAND_OFFPEAK``), whose discount no price book expresses yet.
Grounding with Google Search is billed per search query: the ``web_search`` unit,
one per ``groundingMetadata.webSearchQueries`` entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from pipeline.errors import UsageNotMappable
from pipeline.events.models import ServiceTier
from pipeline.ingest.usage.mapped import MappedUsage, count, field, items, part_of, text, usage

PROVIDER = "google"

_TIERS: dict[str | None, ServiceTier | None] = {
    None: None,
    "TRAFFIC_TYPE_UNSPECIFIED": None,
    "ON_DEMAND": ServiceTier.standard,
    "ON_DEMAND_PRIORITY": ServiceTier.priority,
    "ON_DEMAND_FLEX": ServiceTier.flex,
}


def _by_modality(details: list[Any], modality: str, where: str) -> int:
    return sum(
        count(entry, "tokenCount", "token_count", where=where)
        for entry in details
        if text(field(entry, "modality")) == modality
    )


def usage_metadata(meta: Any, where: str = "gemini usage_metadata") -> MappedUsage:
    """A response's ``usageMetadata`` (SDK object, or REST or SDK-shaped JSON).

    Raises UsageNotMappable when cached tokens exceed the prompt, a modality's count
    exceeds its total, or the traffic type is paid by reservation."""
    if meta is None:
        raise UsageNotMappable(f"{where}: the response has no usage metadata")
    prompt = count(meta, "promptTokenCount", "prompt_token_count", where=where, required=True)
    cached = count(meta, "cachedContentTokenCount", "cached_content_token_count", where=where)
    tool_use = count(meta, "toolUsePromptTokenCount", "tool_use_prompt_token_count", where=where)
    candidates = count(meta, "candidatesTokenCount", "candidates_token_count", where=where)
    thoughts = count(meta, "thoughtsTokenCount", "thoughts_token_count", where=where)
    prompt_audio = _by_modality(
        items(meta, "promptTokensDetails", "prompt_tokens_details"), "AUDIO", where
    )
    cached_audio = _by_modality(
        items(meta, "cacheTokensDetails", "cache_tokens_details"), "AUDIO", where
    )
    out_details = items(meta, "candidatesTokensDetails", "candidates_tokens_details")
    out_audio = _by_modality(out_details, "AUDIO", where)
    out_image = _by_modality(out_details, "IMAGE", where)
    # The prompt's audio count includes its cached audio, as the prompt includes the cache.
    fresh_audio = part_of(prompt_audio, {"cached audio": cached_audio}, "prompt audio", where)
    uncached = part_of(prompt, {"cachedContentTokenCount": cached}, "promptTokenCount", where)
    fresh_text = part_of(uncached, {"uncached audio": fresh_audio}, "uncached prompt", where)
    return MappedUsage(
        usage=usage(
            where,
            input_tokens=fresh_text + tool_use,
            cache_read_tokens=part_of(cached, {"cached audio": cached_audio}, "cached", where),
            cache_audio_read_tokens=cached_audio,
            input_audio_tokens=fresh_audio,
            output_tokens=part_of(
                candidates, {"audio": out_audio, "image": out_image}, "candidatesTokenCount", where
            ),
            output_audio_tokens=out_audio,
            output_image_tokens=out_image,
            reasoning_tokens=thoughts,
        ),
        service_tier=_tier(field(meta, "trafficType", "traffic_type"), where),
        provider=PROVIDER,
    )


def _tier(value: Any, where: str) -> ServiceTier | None:
    name = text(value)
    if name in _TIERS:
        return _TIERS[name]
    if name == "PROVISIONED_THROUGHPUT":
        raise UsageNotMappable(
            f"{where}: trafficType {name!r} is paid by reservation, not per token (count it "
            "as a fixed cost), so the call is not priced"
        )
    raise UsageNotMappable(
        f"{where}: trafficType {name!r} is billed at rates no service tier of a price book "
        f"expresses yet (priced: {', '.join(str(k) for k in _TIERS if k)}); the call is "
        "refused rather than priced as on-demand"
    )


def _searches(response: Any) -> int:
    total = 0
    for candidate in items(response, "candidates"):
        grounding = field(candidate, "groundingMetadata", "grounding_metadata")
        total += len(items(grounding, "webSearchQueries", "web_search_queries"))
    return total


def generate_content_response(response: Any, provider: str = PROVIDER) -> MappedUsage:
    """A whole ``GenerateContentResponse`` (or its JSON): usage, tier, model version
    and grounding searches. ``provider`` is ``google`` for the Gemini API and
    ``vertex_ai`` for Gemini on Vertex AI: the same response, two price lists."""
    mapped = usage_metadata(field(response, "usageMetadata", "usage_metadata"), "gemini response")
    searches = _searches(response)
    return replace(
        mapped,
        units={"web_search": searches} if searches else {},
        provider=provider,
        model=text(field(response, "modelVersion", "model_version")),
    )


def generate_content_stream(chunks: Iterable[Any], provider: str = PROVIDER) -> MappedUsage:
    """The usage of a streamed response. Every chunk may carry ``usageMetadata``, each
    a running total; the last one is the call's. Grounding queries are reported once,
    usually in the last chunk: the last chunk that names any counts."""
    last_meta, searches, model = None, 0, None
    for chunk in chunks:
        meta = field(chunk, "usageMetadata", "usage_metadata")
        if meta is not None:
            last_meta = meta
        searches = _searches(chunk) or searches
        model = text(field(chunk, "modelVersion", "model_version")) or model
    if last_meta is None:
        raise UsageNotMappable("gemini stream: no chunk carried usage metadata")
    mapped = usage_metadata(last_meta, "gemini stream")
    units = {"web_search": searches} if searches else {}
    return replace(mapped, units=units, provider=provider, model=model)
