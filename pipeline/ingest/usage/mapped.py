"""What a usage mapper returns, and the checked reads every mapper shares.

Sources report usage as SDK objects (pydantic models of ``openai``, ``anthropic``,
``google-genai``, ``litellm``), as the JSON those SDKs parse (dicts, in the REST API's
own spelling), or as span attributes. :func:`field` reads any of them without
importing an SDK, so the mappers stay pure and the SDKs stay test dependencies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from pipeline.errors import UsageNotMappable
from pipeline.events.models import MAX_TOKENS_PER_CLASS, ServiceTier, Usage


@dataclass(frozen=True, slots=True)
class MappedUsage:
    """One call's usage in the contract's terms.

    ``usage`` holds the disjoint token classes (each token in exactly one); ``units``
    the non-token quantities a price book prices per unit (``web_search``: searches
    the provider ran and bills per search); ``service_tier`` the tier that billed the
    call, or None when the source does not say (the contract's default, standard,
    then applies); ``provider`` and ``model`` as the source named them, when it did;
    ``attributes`` what the source reported that costflow keeps beside the call
    (``provider_reported_cost``: the source's own cost figure, for reconciliation).
    """

    usage: Usage
    units: Mapping[str, int] = dataclass_field(default_factory=dict)
    service_tier: ServiceTier | None = None
    provider: str | None = None
    model: str | None = None
    attributes: Mapping[str, str] = dataclass_field(default_factory=dict)

    def call_fields(self) -> dict[str, Any]:
        """The contract-v1 call event fields this usage fills: ``usage`` (the classes
        with tokens), ``units`` and ``service_tier`` when known, ``provider`` and
        ``model`` when the source named them, and ``attributes``. Merge them into an
        event that already has ``event_id``, ``task_id`` and ``ts``."""
        out: dict[str, Any] = {
            "usage": {k: v for k, v in self.usage.model_dump().items() if v},
        }
        if self.units:
            out["units"] = dict(self.units)
        if self.service_tier is not None:
            out["service_tier"] = self.service_tier.value
        if self.provider is not None:
            out["provider"] = self.provider
        if self.model is not None:
            out["model"] = self.model
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        return out


def field(source: Any, *names: str) -> Any:
    """The first of ``names`` that ``source`` (a mapping or an object) has and is not
    None; None when it has none of them. Several names cover one field's spellings
    (``cachedContentTokenCount`` in Gemini's REST JSON, ``cached_content_token_count``
    in its SDK)."""
    if source is None:
        return None
    for name in names:
        value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
        if value is not None:
            return value
    return None


def items(source: Any, *names: str) -> list[Any]:
    """A list field (None or absent: empty)."""
    value = field(source, *names)
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise UsageNotMappable(f"{names[0]} should be a list, got {type(value).__name__}")
    return list(value)


def count(source: Any, *names: str, where: str, required: bool = False) -> int:
    """A token or request count: a non-negative integer (an integral float, as some
    JSON encoders write it, is taken). Absent is 0 unless ``required``.

    Raises :class:`UsageNotMappable` naming ``where`` and the field for a missing
    required count, a negative one, a fraction, a boolean or a count above the
    contract's per-class cap."""
    value = field(source, *names)
    if value is None:
        if required:
            raise UsageNotMappable(f"{where}: {names[0]} is missing; the call cannot be priced")
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageNotMappable(f"{where}: {names[0]} is {value!r}, not a token count")
    if isinstance(value, float):
        if not value.is_integer():
            raise UsageNotMappable(f"{where}: {names[0]} is {value!r}, not a whole count")
        value = int(value)
    if value < 0 or value > MAX_TOKENS_PER_CLASS:
        raise UsageNotMappable(f"{where}: {names[0]} is {value}, outside 0..{MAX_TOKENS_PER_CLASS}")
    return int(value)


def part_of(total: int, parts: Mapping[str, int], total_name: str, where: str) -> int:
    """``total`` less the ``parts`` it includes: what is left for the plain class.

    Raises :class:`UsageNotMappable` when the parts exceed the total (cached tokens
    above the prompt's, say): an impossible count is refused, never clamped."""
    rest = total - sum(parts.values())
    if rest < 0:
        named = " + ".join(f"{name} {n:,}" for name, n in parts.items() if n)
        raise UsageNotMappable(
            f"{where}: {named} exceed {total_name} {total:,}, which includes them; "
            "the usage is inconsistent (check the source's token accounting)"
        )
    return rest


def text(value: Any) -> str | None:
    """An enum member's value or a string; None stays None."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def usage(where: str, **classes: int) -> Usage:
    """A contract :class:`Usage` of the given classes (the caps are already checked)."""
    try:
        return Usage(**classes)
    except ValueError as exc:  # a class above the cap after adding parts
        raise UsageNotMappable(f"{where}: {exc}") from None
