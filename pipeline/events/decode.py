"""Bytes off a topic to a validated event, or a typed, explainable error."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from pipeline.errors import NotJson, SchemaViolation, WrongTopic
from pipeline.events.models import CallEvent, Event, OutcomeEvent, TaskEvent

_EVENT = TypeAdapter[CallEvent | TaskEvent | OutcomeEvent](Event)
_MAX_REASON = 500
# 19 digits in a row: possibly an integer beyond 64 bits (or a long digit run in a
# string, which only costs the slower parse).
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


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
        # orjson turns integers beyond 64 bits into floats (lossy): leave those to the
        # standard library, as everything orjson refuses (NaN, ...), so what is
        # accepted, its values and the reasons stay the standard library's.
        if _LONG_DIGITS.search(raw):
            raise orjson.JSONDecodeError("a long integer", "", 0)
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            data = json.loads(raw)
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
