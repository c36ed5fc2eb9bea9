"""Contract-v1 events from what an application has at hand: a provider response, a
task id, an outcome. Pure: nothing here talks to Kafka.

Every builder returns the contract's own pydantic model, so an event that would be
dead-lettered by stage 1 is refused here, at the call site, with the same reason.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pipeline.events.models import (
    CallEvent,
    CallStatus,
    OutcomeEvent,
    OutcomeKind,
    OutcomeSource,
    TaskEvent,
    TaskPhase,
)
from pipeline.ingest.usage.detect import usage_of
from pipeline.ingest.usage.mapped import MappedUsage


def call_event(
    response_or_usage: Any,
    *,
    task_id: str,
    event_id: str | None = None,
    ts: datetime | None = None,
    status: CallStatus | str = CallStatus.ok,
    provider: str | None = None,
    model: str | None = None,
    **fields: Any,
) -> CallEvent:
    """A call event for one model call.

    ``response_or_usage``: what the client returned (see
    :func:`pipeline.ingest.usage.detect.usage_of`) or a :class:`MappedUsage`.
    ``provider``/``model`` override what the response names (Gemini on Vertex AI is
    ``vertex_ai``; Bedrock responses name no model). ``fields``: any other contract
    field (``role``, ``attempt``, ``retry_of``, ``latency_ms``, ``scenario_id`` …).
    ``event_id`` defaults to a random UUID: pass a stable one (the response id) when
    the same call may be emitted twice, so it counts once.

    Raises UsageNotMappable for usage no mapper can put into classes, and pydantic's
    ValidationError for a field the contract refuses."""
    unknown = sorted(set(fields) - _CALL_FIELDS)
    if unknown:
        raise TypeError(
            f"call event has no field {', '.join(unknown)}; its fields are "
            f"{', '.join(sorted(_CALL_FIELDS))} (anything else goes in attributes={{...}})"
        )
    mapped: MappedUsage = usage_of(response_or_usage)
    body = mapped.call_fields()
    if provider is not None:
        body["provider"] = provider
    if model is not None:
        body["model"] = model
    for name in ("provider", "model"):
        if name not in body:
            raise ValueError(
                f"the response names no {name}: pass {name}=... (Bedrock responses name no "
                "model; a Gemini response without model_version neither)"
            )
    attributes = {**body.pop("attributes", {}), **fields.pop("attributes", {})}
    return CallEvent.model_validate(
        {
            **body,
            **fields,
            "event_id": event_id or str(uuid.uuid4()),
            "task_id": task_id,
            "ts": ts or datetime.now(UTC),
            "status": status,
            "attributes": attributes,
        }
    )


# What ``call_event`` takes as keywords beside its own: the contract's call fields.
_CALL_FIELDS = frozenset(CallEvent.model_fields) - {
    "event_id", "task_id", "ts", "status", "provider", "model", "usage", "type",
    "schema_version",
}  # fmt: skip


def task_event(
    task_id: str,
    phase: TaskPhase | str = TaskPhase.started,
    *,
    scenario_id: str | None = None,
    owner: str | None = None,
    environment: str | None = None,
    event_id: str | None = None,
    ts: datetime | None = None,
) -> TaskEvent:
    """A task starting (or completing), with what it is for and who owns it."""
    return TaskEvent(
        event_id=event_id or f"{task_id}:{phase}",
        task_id=task_id,
        ts=ts or datetime.now(UTC),
        phase=_member(TaskPhase, phase, "phase"),
        scenario_id=scenario_id,
        owner=owner,
        environment=environment,
    )


def outcome_event(
    task_id: str,
    outcome: OutcomeKind | str,
    *,
    source: OutcomeSource | str = OutcomeSource.user,
    score: float | None = None,
    event_id: str | None = None,
    ts: datetime | None = None,
) -> OutcomeEvent:
    """Whether the task's result was accepted; the latest by (ts, event_id) wins."""
    return OutcomeEvent(
        event_id=event_id or str(uuid.uuid4()),
        task_id=task_id,
        ts=ts or datetime.now(UTC),
        outcome=_member(OutcomeKind, outcome, "outcome"),
        source=_member(OutcomeSource, source, "source"),
        score=score,
    )


def _member(kind: Any, value: Any, name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ValueError(f"{name} {value!r} is not one of {allowed}") from None


def to_json(event: CallEvent | TaskEvent | OutcomeEvent) -> bytes:
    """The event as the input topics carry it (JSON, ``ts`` in RFC 3339)."""
    return event.model_dump_json(exclude_none=True).encode()
