"""LiteLLM's ``Usage`` (what every ``litellm.completion`` returns) in the contract's
token classes.

Source: ``litellm.types.utils.Usage`` and the providers' transformations in
LiteLLM's source (``llms/anthropic/chat/transformation.py``,
``llms/vertex_ai/gemini/vertex_and_google_ai_studio_gemini.py``). LiteLLM puts
every provider into OpenAI's *inclusive* shape:

- ``prompt_tokens`` includes ``prompt_tokens_details.cached_tokens`` and the cache
  writes (``cache_write_tokens``, mirrored as ``cache_creation_tokens``; for
  Anthropic LiteLLM adds both to the provider's exclusive ``input_tokens``), and the
  audio tokens (``audio_tokens``, which include the cached audio that
  ``cached_tokens_details.audio_tokens`` names).
- ``cache_creation_token_details`` splits the writes by lifetime: 5-minute and
  1-hour writes are priced; 30-minute and 12-hour writes have no price class yet and
  are refused.
- ``completion_tokens`` includes ``completion_tokens_details.reasoning_tokens``,
  ``audio_tokens`` and ``image_tokens`` (LiteLLM adds Gemini's thoughts when
  Gemini counted them apart).
- Web searches: ``server_tool_use.web_search_requests`` or
  ``prompt_tokens_details.web_search_requests``.
- ``cost``, a provider-reported cost (OpenRouter's, say), is kept as the
  ``provider_reported_cost`` attribute for reconciliation, never used as the price.

LiteLLM's normalisation is trusted as it stands (for Gemini it leaves
grounding tool-use tokens out of ``prompt_tokens``); with the provider's own
response at hand, that provider's mapper reads the source of truth.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from pipeline.errors import UsageNotMappable
from pipeline.events.models import ServiceTier
from pipeline.ingest.usage.mapped import MappedUsage, count, field, part_of, usage

WHERE = "litellm usage"


def litellm_usage(usage_obj: Any, where: str = WHERE) -> MappedUsage:
    """A ``litellm.Usage`` (or its ``model_dump()``) in the contract's classes.

    Provider, model and tier are not in the usage: take them from the response
    (``response.model``, ``response._hidden_params``) or the callback's kwargs.
    Raises UsageNotMappable for a missing count, parts above their total, the two
    cache-write spellings disagreeing, and cache lifetimes no price class covers."""
    if usage_obj is None:
        raise UsageNotMappable(f"{where}: the response has no usage")
    prompt = count(usage_obj, "prompt_tokens", where=where, required=True)
    completion = count(usage_obj, "completion_tokens", where=where, required=True)
    details = field(usage_obj, "prompt_tokens_details")
    cached = count(details, "cached_tokens", where=where)
    written = _cache_writes(details, where)
    five, hour = _write_lifetimes(details, written, where)
    audio = count(details, "audio_tokens", where=where)
    cached_audio = count(field(details, "cached_tokens_details"), "audio_tokens", where=where)
    fresh_audio = part_of(audio, {"cached audio": cached_audio}, "audio_tokens", where)
    cached_text = part_of(cached, {"cached audio": cached_audio}, "cached_tokens", where)
    out_details = field(usage_obj, "completion_tokens_details")
    reasoning = count(out_details, "reasoning_tokens", where=where)
    out_audio = count(out_details, "audio_tokens", where=where)
    out_image = count(out_details, "image_tokens", where=where)
    searches = count(field(usage_obj, "server_tool_use"), "web_search_requests", where=where)
    if not searches:
        searches = count(details, "web_search_requests", where=where)
    parts = {"cached_tokens": cached, "cache writes": written, "uncached audio": fresh_audio}
    out_parts = {"reasoning": reasoning, "audio": out_audio, "image": out_image}
    return MappedUsage(
        usage=usage(
            where,
            input_tokens=part_of(prompt, parts, "prompt_tokens", where),
            cache_read_tokens=cached_text,
            cache_audio_read_tokens=cached_audio,
            cache_write_tokens=five,
            cache_write_1h_tokens=hour,
            input_audio_tokens=fresh_audio,
            output_tokens=part_of(completion, out_parts, "completion_tokens", where),
            reasoning_tokens=reasoning,
            output_audio_tokens=out_audio,
            output_image_tokens=out_image,
        ),
        units={"web_search": searches} if searches else {},
        attributes=reported_cost(field(usage_obj, "cost"), where),
    )


_TIERS = {
    "default": ServiceTier.standard,
    "standard": ServiceTier.standard,
    "priority": ServiceTier.priority,
    "flex": ServiceTier.flex,
    "batch": ServiceTier.batch,
}


def service_tier(name: str, where: str = WHERE) -> ServiceTier:
    """The tier a LiteLLM response reports (OpenAI's ``default`` or Anthropic's
    ``standard`` spelling). Raises UsageNotMappable for tiers no price book expresses
    (``scale``, ``fast``, ``auto``)."""
    tier = _TIERS.get(name)
    if tier is None:
        raise UsageNotMappable(
            f"{where}: service_tier {name!r} is not billed at a tier costflow prices "
            f"({', '.join(sorted(_TIERS))})"
        )
    return tier


def _cache_writes(details: Any, where: str) -> int:
    write = count(details, "cache_write_tokens", where=where)
    creation = count(details, "cache_creation_tokens", where=where)
    if write and creation and write != creation:
        raise UsageNotMappable(
            f"{where}: cache_write_tokens {write:,} and cache_creation_tokens {creation:,} "
            "name the same writes and disagree"
        )
    return write or creation


def _write_lifetimes(details: Any, written: int, where: str) -> tuple[int, int]:
    split = field(details, "cache_creation_token_details")
    if split is None:
        return written, 0  # the providers' default lifetime is 5 minutes
    for name in ("ephemeral_30m_input_tokens", "ephemeral_12h_input_tokens"):
        if count(split, name, where=where):
            raise UsageNotMappable(
                f"{where}: {name} are cache writes of a lifetime no price class covers "
                "(5m and 1h are priced); the call is refused rather than priced as 5m writes"
            )
    five = count(split, "ephemeral_5m_input_tokens", where=where)
    hour = count(split, "ephemeral_1h_input_tokens", where=where)
    if five + hour != written:
        raise UsageNotMappable(
            f"{where}: cache_creation_token_details {five:,} (5m) + {hour:,} (1h) do not add "
            f"up to the cache writes {written:,}"
        )
    return five, hour


def reported_cost(cost: Any, where: str = WHERE) -> dict[str, str]:
    """A source's own cost figure (USD, a float or a numeric string) as the
    ``provider_reported_cost`` attribute; empty when there is none. Raises
    UsageNotMappable for a non-number or a non-finite one."""
    if cost is None:
        return {}
    try:
        # str() first: the float's shortest repr, not its binary expansion
        amount = Decimal(str(cost))
    except InvalidOperation:
        raise UsageNotMappable(f"{where}: cost {cost!r} is not a number") from None
    if not amount.is_finite():
        raise UsageNotMappable(f"{where}: cost {cost!r} is not a finite number")
    return {"provider_reported_cost": str(amount)}
