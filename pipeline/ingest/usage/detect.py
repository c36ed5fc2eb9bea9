"""Which mapper reads a response: told from the object itself.

Applications hand the emitter whatever their client returned; the shape says which
provider's it is. SDK objects are recognised by their package and their type tag
(``object`` / ``type``), JSON by the same tags or by Gemini's ``usageMetadata``. An
object none of these describe is refused (pass a :class:`MappedUsage` instead),
never guessed at.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from pipeline.errors import UsageNotMappable
from pipeline.ingest.usage import anthropic, gemini, litellm, openai
from pipeline.ingest.usage.mapped import MappedUsage, field, text


def usage_of(response: Any) -> MappedUsage:
    """The :class:`MappedUsage` of a provider response (SDK object or its JSON):
    OpenAI ``ChatCompletion`` and ``Response``, Anthropic ``Message``, Gemini
    ``GenerateContentResponse``, LiteLLM ``ModelResponse``; a MappedUsage is returned
    as it is. Bedrock responses do not name their model: map them with
    :func:`pipeline.ingest.usage.bedrock.converse`.

    Raises UsageNotMappable for anything else, and whatever the chosen mapper raises."""
    if isinstance(response, MappedUsage):
        return response
    if isinstance(response, str | bytes):  # the response's JSON text (model_dump_json)
        try:
            response = json.loads(response)
        except ValueError as exc:
            raise UsageNotMappable(f"the response text is not JSON: {exc}") from None
    package = type(response).__module__.split(".")[0]
    if package == "litellm":
        return _litellm(response)
    if field(response, "usageMetadata", "usage_metadata") is not None:
        return gemini.generate_content_response(response)
    tag = text(field(response, "object"))
    if tag == "chat.completion":
        return openai.chat_completion(response)
    if tag == "response":
        return openai.response(response)
    if text(field(response, "type")) == "message" and package in ("anthropic", "builtins"):
        return anthropic.message(response)
    raise UsageNotMappable(
        f"cannot tell which provider's response this {type(response).__name__} is (known: "
        "OpenAI ChatCompletion and Response, Anthropic Message, Gemini "
        "GenerateContentResponse, LiteLLM ModelResponse, their JSON); map its usage with a "
        "mapper of pipeline.ingest.usage (docs/integrations/usage-mappers.md) and pass the "
        "MappedUsage"
    )


def _litellm(response: Any) -> MappedUsage:
    hidden = getattr(response, "_hidden_params", None) or {}
    mapped = litellm.litellm_usage(field(response, "usage"))
    provider = hidden.get("custom_llm_provider") if isinstance(hidden, dict) else None
    tier = text(field(response, "service_tier"))
    attributes = dict(mapped.attributes)
    if isinstance(hidden, dict) and "provider_reported_cost" not in attributes:
        # LiteLLM's own price of the call: kept beside ours, for reconciliation
        attributes.update(litellm.reported_cost(hidden.get("response_cost")))
    return replace(
        mapped,
        attributes=attributes,
        provider=provider,
        model=text(field(response, "model")),
        service_tier=litellm.service_tier(tier) if tier is not None else None,
    )
