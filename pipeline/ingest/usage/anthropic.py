"""Anthropic Messages usage in the contract's token classes.

Source: the ``anthropic`` SDK's ``Usage`` (its docstrings) and Anthropic's prompt
caching and pricing pages. Unlike OpenAI's, the counts are *exclusive*:

- ``input_tokens`` is the uncached input only; ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens`` are beside it, not inside it. Treating
  ``input_tokens`` as inclusive (subtracting the cache from it) is the field's most
  common cost bug; here it is taken as it is.
- ``cache_creation`` splits the writes by lifetime (``ephemeral_5m_input_tokens``,
  ``ephemeral_1h_input_tokens``), billed at 1.25x and 2x input; without it every
  write is a 5-minute write, the API's default.
- ``output_tokens`` includes the thinking tokens (``output_tokens_details.
  thinking_tokens``, at most ``output_tokens``), billed at the output rate; they are
  kept apart as ``reasoning_tokens`` so reasoning share can be seen.
- ``server_tool_use.web_search_requests`` are billed per search (the ``web_search``
  unit); web fetches cost only their tokens.

``usage.service_tier`` is ``standard``, ``priority`` or ``batch``. Fast mode
(``speed: fast``) and regional inference (``inference_geo`` other than ``global``)
are billed at premiums a price book cannot express yet: refused, not priced as
standard.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from pipeline.errors import UsageNotMappable
from pipeline.events.models import ServiceTier
from pipeline.ingest.usage.mapped import MappedUsage, count, field, text, usage

PROVIDER = "anthropic"

_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation",
    "output_tokens_details",
    "server_tool_use",
    "service_tier",
    "speed",
    "inference_geo",
)


def message_usage(usage_obj: Any, where: str = "anthropic usage") -> MappedUsage:
    """A Messages ``usage`` (the SDK's ``Usage`` or its JSON) in the contract's classes.

    Raises UsageNotMappable for a missing input or output count, lifetime splits that
    disagree with ``cache_creation_input_tokens``, thinking above output, and the
    premium modes named in the module docstring."""
    if usage_obj is None:
        raise UsageNotMappable(f"{where}: the message has no usage")
    _refuse_premiums(usage_obj, where)
    written = count(usage_obj, "cache_creation_input_tokens", where=where)
    split = field(usage_obj, "cache_creation")
    if split is not None:
        five = count(split, "ephemeral_5m_input_tokens", where=where)
        hour = count(split, "ephemeral_1h_input_tokens", where=where)
        if field(usage_obj, "cache_creation_input_tokens") is not None and five + hour != written:
            raise UsageNotMappable(
                f"{where}: cache_creation splits {five:,} (5m) + {hour:,} (1h) do not add up to "
                f"cache_creation_input_tokens {written:,}"
            )
    else:
        five, hour = written, 0
    output = count(usage_obj, "output_tokens", where=where, required=True)
    thinking = count(field(usage_obj, "output_tokens_details"), "thinking_tokens", where=where)
    if thinking > output:
        raise UsageNotMappable(
            f"{where}: thinking_tokens {thinking:,} exceed output_tokens {output:,}, which "
            "includes them"
        )
    searches = count(field(usage_obj, "server_tool_use"), "web_search_requests", where=where)
    tier = text(field(usage_obj, "service_tier"))
    try:
        billed = ServiceTier(tier) if tier is not None else None
    except ValueError:
        raise UsageNotMappable(
            f"{where}: service_tier {tier!r} is not one costflow prices"
        ) from None
    return MappedUsage(
        usage=usage(
            where,
            input_tokens=count(usage_obj, "input_tokens", where=where, required=True),
            cache_read_tokens=count(usage_obj, "cache_read_input_tokens", where=where),
            cache_write_tokens=five,
            cache_write_1h_tokens=hour,
            output_tokens=output - thinking,
            reasoning_tokens=thinking,
        ),
        units={"web_search": searches} if searches else {},
        service_tier=billed,
        provider=PROVIDER,
    )


def _refuse_premiums(usage_obj: Any, where: str) -> None:
    speed = text(field(usage_obj, "speed"))
    if speed not in (None, "standard"):
        raise UsageNotMappable(
            f"{where}: speed {speed!r} (fast mode) is billed at a premium price books cannot "
            "express yet; the call is refused rather than priced as standard"
        )
    geo = text(field(usage_obj, "inference_geo"))
    if geo not in (None, "global"):
        raise UsageNotMappable(
            f"{where}: inference_geo {geo!r} is billed at a regional premium price books "
            "cannot express yet; the call is refused rather than priced as global"
        )


def message(msg: Any) -> MappedUsage:
    """A whole ``Message`` (or its JSON): usage, billed tier and model."""
    mapped = message_usage(field(msg, "usage"), "anthropic message")
    return replace(mapped, model=text(field(msg, "model")))


def message_stream(events: Iterable[Any]) -> MappedUsage:
    """The usage of a streamed message, from its server-sent events.

    ``message_start`` carries the input side (and a provisional output count);
    each ``message_delta`` carries *cumulative* counts, its non-null fields replacing
    the earlier ones. The last delta therefore holds the final output count."""
    merged: dict[str, Any] = {}
    model = None
    started = False
    for event in events:
        kind = text(field(event, "type"))
        if kind == "message_start":
            msg = field(event, "message")
            model = text(field(msg, "model"))
            merged = _usage_dict(field(msg, "usage"))
            started = True
        elif kind == "message_delta":
            merged.update(_usage_dict(field(event, "usage")))
    if not started:
        raise UsageNotMappable("anthropic stream: no message_start event, so no input usage")
    return replace(message_usage(merged, "anthropic stream"), model=model)


def _usage_dict(usage_obj: Any) -> dict[str, Any]:
    return {name: value for name in _USAGE_FIELDS if (value := field(usage_obj, name)) is not None}
