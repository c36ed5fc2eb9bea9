"""Ingest adapters: a source's own records in, contract events out.

Platform teams should not have to translate provider usage into the contract's
disjoint token classes by hand; an adapter owns that translation for one source
(a provider's usage object, an OpenTelemetry GenAI span, a LiteLLM callback).

An adapter is a module here with a pure function that maps one source record to
contract events (no I/O: the transports that feed it live in ``runtime/``), and is
registered in :data:`ADAPTERS` under the name the CLI and settings use (import the
module at the end of this file and add it to the dict). The record is the whole
source object the transport received; what the contract needs and the source lacks
(a task id from a header, an event time in milliseconds) the transport adds to it. Bad input
raises an :class:`~pipeline.errors.InvalidEvent` subclass, so it is dead-lettered
with the same reasons as a malformed contract event. None is registered: the sources
built so far (``usage/`` mappers, ``otlp``, ``litellm_payload``) need more than one
record in and are called by their own transports (``runtime.ingest_otlp``,
``runtime.collector``, ``emit``); a plain record-to-events source belongs here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeline.errors import ConfigError
from pipeline.events.models import CallEvent, OutcomeEvent, TaskEvent

# The contract's event types (events.models.Event is the same union, discriminated).
Event = CallEvent | TaskEvent | OutcomeEvent

# One source record (a decoded JSON object) -> the contract events it stands for.
Adapter = Callable[[Mapping[str, Any]], list[Event]]

# adapter name -> its mapping function
ADAPTERS: dict[str, Adapter] = {}


def adapter(name: str) -> Adapter:
    """The adapter registered as ``name``. Raises ConfigError naming the ones there are."""
    try:
        return ADAPTERS[name]
    except KeyError:
        have = ", ".join(sorted(ADAPTERS)) or "none yet"
        raise ConfigError(f"no ingest adapter {name!r}; registered: {have}") from None


__all__ = ["ADAPTERS", "Adapter", "Event", "adapter"]
