"""Event contract v1: the pydantic models are the source of truth."""

from __future__ import annotations

from pipeline.events.decode import decode_event
from pipeline.events.models import (
    CallEvent,
    Event,
    OutcomeEvent,
    TaskEvent,
    Usage,
)

__all__ = ["CallEvent", "Event", "OutcomeEvent", "TaskEvent", "Usage", "decode_event"]
