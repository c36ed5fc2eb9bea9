"""The records stages exchange over Kafka, encoded and decoded in one place.

``events`` is the input contract (what gateways send); this is the contract
between costflow's own stages:

- ``costflow.priced-calls``: one :func:`priced_call` record per call event, the
  call with its cost per dimension (``cost_<part>``, Decimal as string, None when
  unpriced) and the price-book version that priced it.
- ``costflow.task-snapshots``, keyed by ``task_id``, told apart by ``kind``:
  ``snapshot`` (:func:`task_snapshot`: the task row and the state it comes from),
  ``evicted`` (:func:`task_evicted`: the last state of a task leaving stage 1) and
  ``reprice`` (:func:`reprice`, from ``costflow reprice``).
- ``costflow.dead-letter``: the original bytes, with :class:`DeadLetterHeaders`.

Every record carries ``v`` (:data:`RECORD_VERSION`). A record without it is
version 1 (before migration 0008): a snapshot with the row only, no state; the
sink still reads those (:class:`TaskRecord` ``state`` is None). Version 3 added the
audio and image token classes and ``cost_audio``/``cost_image`` to priced calls;
the sink reads older priced calls as having none. Version 4 added ``cost_known``,
``cost_known_parts`` and ``unpriced_dimensions`` (a call priced in part); the sink
reads older priced calls as known exactly when priced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from operator import attrgetter
from typing import Any, Literal

import orjson

from pipeline.events.lean import AnyCall
from pipeline.events.models import Usage
from pipeline.join.state import OutcomeWindow, TaskState
from pipeline.json_codec import loads
from pipeline.pricing.engine import CallCost

RECORD_VERSION = 4
# The money dimensions of a call's cost, in CallCost's order: the record's and the
# calls table's ``cost_<part>`` columns.
COST_PARTS: tuple[str, ...] = tuple(
    f.name for f in fields(CallCost) if f.type in (Decimal, "Decimal")
)
# The parts a call is billed for: every cost part but the total and the cache
# baselines (what cache tokens would have cost uncached, not billed).
BILLED_PARTS: tuple[str, ...] = tuple(
    p for p in COST_PARTS if p not in ("total", "cache_read_uncached", "cache_write_uncached")
)
TaskRecordKind = Literal["snapshot", "evicted", "reprice"]
# A priced call's token counts, by class (the contract's Usage): the record's and the
# calls table's columns.
_TOKEN_FIELDS: tuple[str, ...] = tuple(Usage.model_fields)
_tokens_of = attrgetter(*_TOKEN_FIELDS)
_COST_KEYS = tuple(f"cost_{part}" for part in COST_PARTS)
_cost_parts_of = attrgetter(*COST_PARTS)
_billed_parts_of = attrgetter(*BILLED_PARTS)
_UNPRICED_HEAD = {"currency": "", "list_currency": "", "fx_rate": None}
_UNPRICED_PARTS = dict.fromkeys(_COST_KEYS)


def _dumps(record: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(record)
    except TypeError:  # an attribute orjson cannot encode (an integer beyond 64 bits)
        return json.dumps(record, separators=(",", ":")).encode()


def priced_call(
    call: AnyCall,
    cost: CallCost | None,
    pricing_error: str | None,
    price_book_version: str,
    known: CallCost | None = None,
    unpriced_dimensions: tuple[str, ...] = (),
) -> bytes:
    """One row of the call fact table. ``cost`` is None when the call could not be
    priced completely; then ``known`` (if anything could be priced) is the cost of the
    dimensions that could, and ``unpriced_dimensions`` names the others.

    ``cost_known`` is the lower bound every report can add up: the cost when
    complete, the known part when not, None when nothing could be priced.
    ``cost_known_parts`` (only for a partial price) holds the known part of each
    billed dimension; every ``cost_<part>`` stays None until the call is complete,
    so no sum of a dimension ever mixes complete and partial calls."""
    record: dict[str, Any] = {
        "v": RECORD_VERSION,
        "event_id": call.event_id,
        "task_id": call.task_id,
        "ts_ms": call.ts_ms,
        "provider": call.provider,
        "model": call.model,
        "scenario_id": call.scenario_id or "",
        "environment": call.environment or "",
        "owner": call.owner or "",
        "role": call.role or "",
        # Enum members: orjson writes their values.
        "status": call.status,
        "service_tier": call.service_tier,
        "attempt": call.attempt,
        "retry_of": call.retry_of or "",
        "fallback_from": call.fallback_from or "",
        "latency_ms": call.latency_ms,
        "max_output_tokens": call.max_output_tokens,
    }
    # One C call per group of fields instead of a Python step per field (stage 1
    # builds one of these per call).
    record.update(zip(_TOKEN_FIELDS, _tokens_of(call.usage), strict=True))
    record["units"] = (
        {unit: str(quantity) for unit, quantity in call.units.items()} if call.units else {}
    )
    if cost is None:
        record.update(_UNPRICED_HEAD)
    else:
        record["currency"] = cost.currency
        record["list_currency"] = cost.list_currency
        record["fx_rate"] = str(cost.fx_rate) if cost.fx_rate is not None else None
    record["price_book_version"] = price_book_version
    record["price_overlay"] = cost.overlay if cost else ""
    record["pricing_error"] = pricing_error or ""
    record["attributes"] = call.attributes
    if cost is None:
        record.update(_UNPRICED_PARTS)
    else:
        record.update(zip(_COST_KEYS, map(str, _cost_parts_of(cost)), strict=True))
    lower_bound = cost or known
    record["cost_known"] = str(lower_bound.total) if lower_bound else None
    record["cost_known_parts"] = (
        dict(zip(BILLED_PARTS, map(str, _billed_parts_of(known)), strict=True))
        if cost is None and known is not None
        else {}
    )
    record["unpriced_dimensions"] = list(unpriced_dimensions) if cost is None else []
    return _dumps(record)


def _state(
    state: TaskState, window_ms: int, state_json: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {**(state_json or state.to_json()), "window_ms": window_ms}


def task_snapshot(
    state: TaskState,
    window: OutcomeWindow,
    task_alerts: Sequence[Mapping[str, str]] = (),
    state_json: dict[str, Any] | None = None,
) -> bytes:
    """The task row (:meth:`TaskState.row`), and the state it comes from under
    ``state`` (the event ids and every field, with ``window_ms`` of its resolved
    scenario), so the sink can tell which events a row reflects and merge states.

    ``task_alerts``: the caps the task is at or over
    (:func:`pipeline.join.task_caps.crossed_caps`), under ``task_alerts`` when any.
    ``state_json``: ``state.to_json()`` when the caller has it already."""
    window_ms = state.window_ms(window)
    record = state.row(window_ms)
    record["v"] = RECORD_VERSION
    record["kind"] = "snapshot"
    record["state"] = _state(state, window_ms, state_json)
    if task_alerts:
        record["task_alerts"] = [dict(a) for a in task_alerts]
    return _dumps(record)


def task_evicted(state: TaskState, window: OutcomeWindow) -> bytes:
    """The last state of a task leaving stage 1 under retention."""
    window_ms = state.window_ms(window)
    return _dumps(
        {
            "v": RECORD_VERSION,
            "kind": "evicted",
            "task_id": state.task_id,
            "version": state.version,
            "state": _state(state, window_ms),
        }
    )


def reprice(
    reprice_id: str, task_id: str, price_book_version: str, calls: list[dict[str, Any]]
) -> dict[str, Any]:
    """New prices for some of a task's stored calls (see ``pipeline.sink.clickhouse.reprice``)."""
    return {
        "v": RECORD_VERSION,
        "kind": "reprice",
        "reprice_id": reprice_id,
        "task_id": task_id,
        "price_book_version": price_book_version,
        "calls": calls,
    }


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """A decoded record of the task-snapshot topic."""

    kind: TaskRecordKind
    task_id: str
    # The record as sent (for a snapshot: the task row's fields).
    data: dict[str, Any]

    @property
    def state(self) -> dict[str, Any] | None:
        """The stage-1 state (``TaskState.to_json`` plus ``window_ms``); None in a
        version-1 snapshot."""
        state: dict[str, Any] | None = self.data.get("state")
        return state


def decode_task_record(value: bytes | None) -> TaskRecord:
    """Raises ValueError (with the reason) for a record that is not one of ours."""
    data = loads(value or b"{}")
    if not isinstance(data, dict) or not isinstance(data.get("task_id"), str):
        raise ValueError("a task-snapshot record must be a JSON object with a task_id")
    kind = data.get("kind", "snapshot")
    if kind not in ("snapshot", "evicted", "reprice"):
        raise ValueError(f"unknown task record kind {kind!r}")
    if int(data.get("v", 1)) > RECORD_VERSION:
        raise ValueError(
            f"record version {data['v']} is newer than this costflow reads ({RECORD_VERSION}); "
            "upgrade the sink before the worker"
        )
    return TaskRecord(kind, data["task_id"], data)


@dataclass(frozen=True, slots=True)
class DeadLetterHeaders:
    """Why an input record was set aside, and where it came from (Kafka headers)."""

    reason: str
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int

    def to_kafka(self) -> list[tuple[str, bytes]]:
        return [
            ("costflow.reason", self.reason.encode()),
            ("costflow.detail", self.detail.encode()[:1000]),
            ("costflow.source_topic", self.source_topic.encode()),
            ("costflow.source_partition", str(self.source_partition).encode()),
            ("costflow.source_offset", str(self.source_offset).encode()),
        ]

    @classmethod
    def from_kafka(cls, headers: Any) -> DeadLetterHeaders:
        """From a record's headers (pairs of name and bytes); missing ones get defaults."""
        found = {name: value for name, value in headers or ()}

        def text(name: str, default: str = "") -> str:
            raw = found.get(f"costflow.{name}")
            return raw.decode("utf-8", "replace") if raw is not None else default

        return cls(
            reason=text("reason", "unknown"),
            detail=text("detail"),
            source_topic=text("source_topic"),
            source_partition=int(text("source_partition", "-1")),
            source_offset=int(text("source_offset", "-1")),
        )
