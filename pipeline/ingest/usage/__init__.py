"""Usage mappers: a provider's own usage report in, the contract's token classes out.

Each source counts tokens its own way. OpenAI's and OpenTelemetry's input counts
*include* the cached tokens; Anthropic's and Bedrock's *exclude* them; Gemini counts
cached audio inside the cached count and tool-use prompts beside the prompt. Mapping
by hand is where cost figures go silently wrong, so a mapper per source owns it:

=====================  ==========================================================
module                 source
=====================  ==========================================================
``openai``             Chat Completions and Responses (objects, JSON, streams)
``anthropic``          Messages (objects, JSON, streams)
``gemini``             Gemini API / Vertex AI ``GenerateContentResponse``
``bedrock``            Bedrock Converse and ConverseStream
``litellm``            ``litellm.Usage`` (what every LiteLLM call returns)
``otel_genai``         OpenTelemetry GenAI span attributes
=====================  ==========================================================

Every mapper returns a :class:`MappedUsage` whose classes are disjoint (each token
in exactly one) and raises :class:`~pipeline.errors.UsageNotMappable` for an
impossible count or a billing mode no price book expresses: refused visibly, never
priced at standard rates. The mappers import no SDK; they read SDK objects and
their JSON alike.
"""

from __future__ import annotations

from pipeline.ingest.usage.mapped import MappedUsage

__all__ = ["MappedUsage"]
