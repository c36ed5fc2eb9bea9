"""AWS Bedrock Converse usage in the contract's token classes.

Source: the ``bedrock-runtime`` service model botocore ships (``Converse`` and
``ConverseStream`` output shapes) and the Bedrock prompt-caching guide. The counts
are *exclusive*: ``inputTokens`` is the uncached input, beside
``cacheReadInputTokens`` and ``cacheWriteInputTokens``, and ``totalTokens`` is the
sum of all four (checked: a total that disagrees means the counts are not what
this mapping assumes, and the call is refused rather than priced wrongly).
``cacheDetails`` splits the writes by ``ttl`` (``5m``, ``1h``).

``serviceTier.type`` is ``default``, ``priority``, ``flex`` or ``reserved``;
reserved capacity is paid by reservation and refused, as is latency-optimized
inference (``performanceConfig.latency: optimized``), billed at a premium a price
book cannot express yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from pipeline.errors import UsageNotMappable
from pipeline.events.models import ServiceTier
from pipeline.ingest.usage.mapped import MappedUsage, count, field, items, text, usage

PROVIDER = "bedrock"

_TIERS = {
    "default": ServiceTier.standard,
    "priority": ServiceTier.priority,
    "flex": ServiceTier.flex,
}


def converse_usage(usage_obj: Any, where: str = "bedrock usage") -> MappedUsage:
    """A Converse ``usage`` structure (a dict, as boto3 returns it).

    Raises UsageNotMappable for missing counts, a ``totalTokens`` that is not the sum
    of the four counts, and ``cacheDetails`` that do not add up to the writes."""
    if usage_obj is None:
        raise UsageNotMappable(f"{where}: the response has no usage")
    fresh = count(usage_obj, "inputTokens", where=where, required=True)
    output = count(usage_obj, "outputTokens", where=where, required=True)
    read = count(usage_obj, "cacheReadInputTokens", where=where)
    written = count(usage_obj, "cacheWriteInputTokens", where=where)
    total = field(usage_obj, "totalTokens")
    if total is not None and count(usage_obj, "totalTokens", where=where) != (
        fresh + output + read + written
    ):
        raise UsageNotMappable(
            f"{where}: totalTokens {total:,} is not inputTokens + outputTokens + "
            f"cacheReadInputTokens + cacheWriteInputTokens ({fresh + output + read + written:,})"
        )
    five, hour = written, 0
    details = items(usage_obj, "cacheDetails")
    if details:
        by_ttl: dict[str, int] = {}
        for entry in details:
            ttl = text(field(entry, "ttl")) or "5m"
            by_ttl[ttl] = by_ttl.get(ttl, 0) + count(entry, "inputTokens", where=where)
        unknown = set(by_ttl) - {"5m", "1h"}
        if unknown or sum(by_ttl.values()) != written:
            raise UsageNotMappable(
                f"{where}: cacheDetails {by_ttl} do not split cacheWriteInputTokens "
                f"{written:,} into 5m and 1h writes"
            )
        five, hour = by_ttl.get("5m", 0), by_ttl.get("1h", 0)
    return MappedUsage(
        usage=usage(
            where,
            input_tokens=fresh,
            cache_read_tokens=read,
            cache_write_tokens=five,
            cache_write_1h_tokens=hour,
            output_tokens=output,
        ),
        provider=PROVIDER,
    )


def _tier(holder: Any, where: str) -> ServiceTier | None:
    latency = text(field(field(holder, "performanceConfig"), "latency"))
    if latency not in (None, "standard"):
        raise UsageNotMappable(
            f"{where}: performanceConfig latency {latency!r} is billed at a premium price "
            "books cannot express yet; the call is refused rather than priced as standard"
        )
    name = text(field(field(holder, "serviceTier"), "type"))
    if name is None:
        return None
    if name not in _TIERS:
        raise UsageNotMappable(
            f"{where}: serviceTier {name!r} is not billed per token at a tier costflow "
            "prices (reserved capacity is paid by reservation: count it as a fixed cost)"
        )
    return _TIERS[name]


def converse(response: Any, model_id: str | None = None) -> MappedUsage:
    """A whole Converse response (boto3's dict). The response does not name the
    model; pass the ``modelId`` the request used."""
    mapped = converse_usage(field(response, "usage"), "bedrock converse")
    return replace(mapped, service_tier=_tier(response, "bedrock converse"), model=model_id)


def converse_stream(events: Iterable[Any], model_id: str | None = None) -> MappedUsage:
    """The usage of a ``ConverseStream``: its ``metadata`` event carries it."""
    meta = None
    for event in events:
        meta = field(event, "metadata") or meta
    if meta is None:
        raise UsageNotMappable("bedrock stream: no metadata event, so no usage")
    mapped = converse_usage(field(meta, "usage"), "bedrock stream")
    return replace(mapped, service_tier=_tier(meta, "bedrock stream"), model=model_id)
