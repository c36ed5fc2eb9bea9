"""OpenTelemetry GenAI span attributes in the contract's token classes.

Source: the OpenTelemetry GenAI semantic conventions (``gen_ai.*`` attributes, as
``opentelemetry-semantic-conventions`` names them). Their counts are *inclusive*:

- ``gen_ai.usage.input_tokens`` includes every input token, the cached ones too
  (``gen_ai.usage.cache_read.input_tokens``) and those written to the cache
  (``gen_ai.usage.cache_creation.input_tokens``);
- ``gen_ai.usage.output_tokens`` includes ``gen_ai.usage.reasoning.output_tokens``.

An instrumentation that reports input *exclusive* of the cache (some do, for
Anthropic) shows up as cache counts above the input count and is refused with that
reason, not priced wrongly. The deprecated ``gen_ai.usage.prompt_tokens`` /
``completion_tokens`` are read when the new names are absent.

Only model calls are priced: a span whose ``gen_ai.operation.name`` is an agent,
workflow or tool operation may sum its children's usage, and pricing it as well
would count those tokens twice (:func:`is_model_call` tells them apart).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import UsageNotMappable
from pipeline.ingest.usage import openai
from pipeline.ingest.usage.mapped import MappedUsage, count, field, part_of, text, usage

WHERE = "gen_ai span"

# gen_ai.operation.name values that are one model call (the conventions' list)
MODEL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})

# gen_ai.provider.name (the conventions' well-known values) -> the price book's provider
PROVIDERS = {
    "aws.bedrock": "bedrock",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure_ai",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "vertex_ai",
    "mistral_ai": "mistral",
    "x_ai": "xai",
    "ibm.watsonx.ai": "watsonx",
}


_INPUT = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
_OUTPUT = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")


def is_model_call(attributes: Mapping[str, Any]) -> bool:
    """Whether a span with these attributes is one model call: its operation is one of
    :data:`MODEL_OPERATIONS`, or it names none and reports token usage."""
    operation = text(attributes.get("gen_ai.operation.name"))
    if operation is not None:
        return operation in MODEL_OPERATIONS
    return any(attributes.get(name) is not None for name in _INPUT)


def span_usage(attributes: Mapping[str, Any]) -> MappedUsage:
    """A model-call span's attributes (``ReadableSpan.attributes``, or OTLP attributes
    flattened by :func:`otlp_attributes`) in the contract's classes, with provider,
    response model (else request model) and OpenAI's billed tier.

    Raises UsageNotMappable for a span that is not a model call, a missing input or
    output count, and cache or reasoning counts above the totals that include them."""
    if not is_model_call(attributes):
        operation = attributes.get("gen_ai.operation.name")
        raise UsageNotMappable(
            f"{WHERE}: operation {operation!r} is not a model call; its usage, if any, "
            "sums calls that are priced on their own spans"
        )
    where = WHERE
    prompt = count(attributes, *_INPUT, where=where, required=True)
    # an embedding produces vectors, not tokens: its output count may be absent
    embeddings = text(attributes.get("gen_ai.operation.name")) == "embeddings"
    completion = count(attributes, *_OUTPUT, where=where, required=not embeddings)
    cached = count(attributes, "gen_ai.usage.cache_read.input_tokens", where=where)
    written = count(attributes, "gen_ai.usage.cache_creation.input_tokens", where=where)
    reasoning = count(attributes, "gen_ai.usage.reasoning.output_tokens", where=where)
    provider = text(field(attributes, "gen_ai.provider.name", "gen_ai.system"))
    tier = field(attributes, "openai.response.service_tier", "gen_ai.openai.response.service_tier")
    return MappedUsage(
        usage=usage(
            where,
            input_tokens=part_of(
                prompt, {"cache_read": cached, "cache_creation": written}, "input_tokens", where
            ),
            cache_read_tokens=cached,
            cache_write_tokens=written,
            output_tokens=part_of(completion, {"reasoning": reasoning}, "output_tokens", where),
            reasoning_tokens=reasoning,
        ),
        service_tier=openai.service_tier(tier, where) if tier is not None else None,
        provider=PROVIDERS.get(provider, provider) if provider is not None else None,
        model=text(field(attributes, "gen_ai.response.model", "gen_ai.request.model")),
    )


def otlp_attributes(key_values: list[Mapping[str, Any]]) -> dict[str, Any]:
    """OTLP/JSON ``attributes`` (a list of ``{"key", "value": {"intValue": "12"}}``) as a
    flat mapping. OTLP/JSON writes 64-bit integers as strings; they are read back as
    ints. Arrays and maps are kept as lists and dicts of plain values."""
    return {kv["key"]: _any_value(kv.get("value") or {}) for kv in key_values}


def _any_value(value: Mapping[str, Any]) -> Any:
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            raise UsageNotMappable(
                f"OTLP attribute intValue {value['intValue']!r} is not an integer"
            ) from None
    for name in ("stringValue", "boolValue", "doubleValue", "bytesValue"):
        if name in value:
            return value[name]
    if "arrayValue" in value:
        return [_any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return otlp_attributes(value["kvlistValue"].get("values", []))
    return None
