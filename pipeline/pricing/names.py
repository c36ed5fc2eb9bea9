"""Provider and model names as gateways send them, normalised before lookup.

One table, applied in this order, each rule tested in ``tests/unit/test_names.py``
and listed in docs/pricing.md:

1. **Provider spelling.** Lower-cased, then :data:`PROVIDER_ALIASES` (LiteLLM's
   ``gemini`` and ``vertex_ai-language-models``, OpenTelemetry's ``gcp.gemini`` and
   ``aws.bedrock``, ...) gives costflow's name: ``google`` is the Gemini API,
   ``vertex_ai`` Google Cloud's, ``bedrock`` AWS's, ``azure`` Azure OpenAI.
2. **Routing prefixes.** ``openai/gpt-4o`` sent as provider ``openai``, and
   ``models/gemini-2.5-pro`` (the Gemini API's own form), lose the prefix when it names
   the same provider. A router's own ids (provider ``openrouter``, model
   ``openai/gpt-4o``) are kept: the router has its own prices.
3. **Dated ids.** A model id not in the book is tried again without a trailing
   release date (``-2025-04-14``, ``-20251001``, ``@20240620``).
4. **Same model, sister provider.** A model neither ``vertex_ai`` nor ``google`` lists
   is tried under the other (Gemini's list prices are the same on both).
5. **Case.** A model id still not found is tried lower-cased, with rules 2-4 again
   (the providers' ids are lower-case; some gateways send ``GPT-4o``).

The entry that priced a call is recorded on its row (``entry_model``), so a
normalised match is always visible.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# gateway spelling -> costflow's provider name
PROVIDER_ALIASES: dict[str, str] = {
    "gemini": "google",
    "google_ai_studio": "google",
    "google-ai-studio": "google",
    "gcp.gemini": "google",
    "vertex": "vertex_ai",
    "vertexai": "vertex_ai",
    "google-vertex": "vertex_ai",
    "gcp.vertex_ai": "vertex_ai",
    "gcp.gen_ai": "vertex_ai",
    "aws.bedrock": "bedrock",
    "amazon-bedrock": "bedrock",
    "bedrock_converse": "bedrock",
    "azure_openai": "azure",
    "azure-openai": "azure",
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "x_ai": "xai",
    "x.ai": "xai",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "deepseek-ai": "deepseek",
}
# LiteLLM suffixes its providers by family (vertex_ai-language-models,
# vertex_ai-anthropic_models, ...): all are Vertex AI.
_FAMILY = re.compile(r"^(?P<base>vertex_ai|bedrock)[-_].+$")
# Prefixes that name the provider itself, per provider.
_SELF_PREFIXES: dict[str, tuple[str, ...]] = {
    "google": ("models/", "gemini/", "google/"),
    "vertex_ai": ("vertex_ai/", "publishers/google/models/", "google/"),
}
_DATE_SUFFIX = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8})$")
_SISTERS = {"vertex_ai": "google", "google": "vertex_ai"}


def canonical_provider(provider: str) -> str:
    """costflow's name for a provider as a gateway or a price list spells it."""
    lowered = provider.strip().lower()
    family = _FAMILY.match(lowered)
    if family:
        return family.group("base")
    return PROVIDER_ALIASES.get(lowered, lowered)


def strip_self_prefix(provider: str, model: str) -> str:
    """``openai/gpt-4o`` under provider ``openai`` -> ``gpt-4o`` (rule 2)."""
    for prefix in (f"{provider}/", *_SELF_PREFIXES.get(provider, ())):
        if model.startswith(prefix) and len(model) > len(prefix):
            return model[len(prefix) :]
    return model


def candidates(provider: str, model: str) -> Iterator[tuple[str, str]]:
    """The (provider, model) keys to try, in order, for a call's provider and model.

    The first is the normalised name itself; the rest are the fallbacks of rules 3
    and 4. Pure and cheap; the book memoises what it finds.
    """
    canonical = canonical_provider(provider)
    name = strip_self_prefix(canonical, model)
    undated = _DATE_SUFFIX.sub("", name)
    yield canonical, name
    if undated != name:
        yield canonical, undated
    sister = _SISTERS.get(canonical)
    if sister is not None:
        yield sister, name
        if undated != name:
            yield sister, undated
    lowered = undated.lower()
    if lowered != undated:
        yield from candidates(canonical, lowered)
