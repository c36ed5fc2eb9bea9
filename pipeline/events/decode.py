"""Bytes off a topic to a validated event, or a typed, explainable error."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from pipeline.errors import NotJson, SchemaViolation, WrongTopic
from pipeline.events.models import CallEvent, Event, OutcomeEvent, TaskEvent
from pipeline.json_codec import loads

_EVENT = TypeAdapter[CallEvent | TaskEvent | OutcomeEvent](Event)
_MAX_REASON = 500


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    text = "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
    return text[:_MAX_REASON]


def decode_event(
    raw: bytes | None, expected_type: str | None = None
) -> CallEvent | TaskEvent | OutcomeEvent:
    """Parse one record. ``expected_type`` is the type its topic carries.

    A record without ``type`` on a typed topic is taken as that type, so gateways
    may omit it; a record whose ``type`` names another topic's events is refused
    rather than silently joined on the wrong stream.
    """
    if raw is None:
        raise NotJson("record has no value (a tombstone); produce the event's JSON")
    data: Any
    try:
        data = loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, digit limits
        raise NotJson(f"record is not JSON we can read: {exc}"[:_MAX_REASON]) from None
    if not isinstance(data, dict):
        raise SchemaViolation(f"record is JSON {type(data).__name__}, expected an object")
    if expected_type is not None:
        declared = data.setdefault("type", expected_type)
        if declared != expected_type:
            raise WrongTopic(f"a {declared!r} event on the {expected_type!r} topic")
    try:
        return _EVENT.validate_python(data)
    except ValidationError as exc:
        raise SchemaViolation(_explain(exc)) from None
    except Exception as exc:  # from the input: set it aside, never crash
        # A value out of any range (a timestamp in microseconds overflowing a date, an
        # attribute nested too deep): bad input like the rest, never the worker's end.
        raise SchemaViolation(f"{type(exc).__name__}: {exc}"[:_MAX_REASON]) from None
