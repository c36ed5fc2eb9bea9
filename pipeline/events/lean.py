"""Stage 1's events in the common shape, decoded by msgspec, checked against the models.

Stage 1 decodes every record it reads. Through the pydantic models that costs about
7 µs an event on this machine (more for a call), most of it pydantic calling the
models' Python validators; here it costs about 2 µs, ``ts`` parsed included
(``benchmarks/stage1_path_bench.py``, the demo workload). A record
in the common shape (every field plainly valid: strings without edge whitespace,
integers in range, known enum values, string attributes, no unit quantities) becomes
a lean event here: a struct with the model's field names, values and value types
(``ts`` an aware UTC datetime, enums the models' enums, ``usage`` with
``prompt_tokens``). Anything else, valid or not, gives None, and the caller
validates with the models, which stay the contract's source of truth: this module
only ever says "the models would accept this, with these values", never "reject".

``tests/unit/test_lean_events.py`` holds the property that keeps the two equal: on
generated, mutated and malformed records, whenever :func:`lean_event` builds an
event, the models accept the same bytes and build one with equal field values of the
same types. msgspec is pinned exactly in ``pyproject.toml`` for that reason.

Unknown top-level fields are folded into ``attributes`` as the models fold them.
Each set of unknown field names is learned once (a struct extended by them, at most
:data:`MAX_SHAPES_PER_TYPE` per event type), so a producer that adds the same fields
to every record still costs one decode a record.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Raw, Struct
from pydantic import BaseModel

from pipeline.events.models import (
    MAX_TOKENS_PER_CLASS,
    CallEvent,
    CallStatus,
    OutcomeEvent,
    OutcomeKind,
    OutcomeSource,
    ServiceTier,
    TaskEvent,
    TaskPhase,
    Usage,
    _compact,
    _parse_ts,
    epoch_ms,
    is_content_field,
    prompt_tokens,
)

# The models' constraints as msgspec states them. The models strip edge whitespace
# from strings; a string with any is left to them (checked after decoding).
_Name = Annotated[str, Meta(min_length=1, max_length=256)]
_Tokens = Annotated[int, Meta(ge=0, le=MAX_TOKENS_PER_CLASS)]
_YEARS = range(2000, 2201)  # the models' plausible event years


# Defaults of the computed fields that no decoded value is identical to (checked with
# ``is``: JSON can send any value, never these objects; ints outside CPython's small-int
# cache are never shared).
_NOT_SET_TS = datetime(1, 1, 1, tzinfo=UTC)
_NOT_SET_MS = -(2**62) - 7
# Unknown values nested deeper than this are left to the models (whose JSON text of
# them fails near Python's recursion limit, at a depth that depends on the caller).
_MAX_UNKNOWN_DEPTH = 64
_COMPUTED = ("ts", "ts_ms")  # lean fields the models do not have (set after decoding)


class _NotCommon(ValueError):
    """Raised in ``__post_init__``: msgspec reports it as a ValidationError."""


def _plain(text: str) -> bool:
    """True if the models keep ``text`` as it is. ``str.strip`` returns the same
    object when it strips nothing, and strips everything pydantic's trim strips."""
    return text.strip() is text


def _check_strings(values: tuple[Any, ...], attributes: dict[str, str]) -> None:
    # _plain's test written out: this runs for every string of every event.
    for value in values:
        if value is not None and value.strip() is not value:
            raise _NotCommon("edge whitespace")
    for key, text in attributes.items():
        if key.strip() is not key or text.strip() is not text:
            raise _NotCommon("edge whitespace")
        if is_content_field(key):
            raise _NotCommon("content attribute: the models refuse it, with their reason")


class LeanUsage(Struct, forbid_unknown_fields=True, frozen=True):
    """:class:`~pipeline.events.models.Usage`'s token counts."""

    input_tokens: _Tokens = 0
    cache_read_tokens: _Tokens = 0
    cache_write_tokens: _Tokens = 0
    cache_write_1h_tokens: _Tokens = 0
    output_tokens: _Tokens = 0
    reasoning_tokens: _Tokens = 0
    input_audio_tokens: _Tokens = 0
    cache_audio_read_tokens: _Tokens = 0
    output_audio_tokens: _Tokens = 0
    input_image_tokens: _Tokens = 0
    output_image_tokens: _Tokens = 0

    @property
    def prompt_tokens(self) -> int:
        """As :attr:`pipeline.events.models.Usage.prompt_tokens`."""
        return prompt_tokens(self)


class _LeanBase(Struct, kw_only=True, forbid_unknown_fields=True):
    event_id: _Name
    task_id: _Name
    # The record's ts as sent; ``ts`` (an aware UTC datetime, as the models give it)
    # and ``ts_ms`` (epoch milliseconds) are set from it after decoding. They are
    # fields (slots: read several times per event) under names no producer sends; a
    # record that sends one anyway is left to the models.
    ts_sent: int | str = msgspec.field(name="ts")
    schema_version: Literal[1] = 1
    attributes: dict[str, str] = {}
    ts: datetime = msgspec.field(default=_NOT_SET_TS, name="costflow:ts (computed)")
    ts_ms: int = msgspec.field(default=_NOT_SET_MS, name="costflow:ts_ms (computed)")

    def _set_ts(self) -> None:
        if self.ts is not _NOT_SET_TS or self.ts_ms is not _NOT_SET_MS:
            raise _NotCommon("a computed field was sent")
        sent = self.ts_sent
        try:
            # Python 3.11 reads RFC 3339's Z itself; the models' parser (for every
            # other form, and the judge of this one in the tests) rewrites it first.
            ts = datetime.fromisoformat(sent) if type(sent) is str else _parse_ts(sent)
        except ValueError:
            raise _NotCommon("ts") from None
        zone = ts.tzinfo
        if zone is not UTC:
            if zone is None:
                raise _NotCommon("ts")
            ts = ts.astimezone(UTC)
        if ts.year not in _YEARS:
            raise _NotCommon("ts")
        self.ts = ts
        self.ts_ms = epoch_ms(ts)


class LeanCall(_LeanBase, kw_only=True, forbid_unknown_fields=True):
    """A :class:`~pipeline.events.models.CallEvent` in the common shape."""

    type: Literal["call"] = "call"
    provider: _Name
    model: _Name
    usage: LeanUsage
    service_tier: ServiceTier = ServiceTier.standard
    status: CallStatus = CallStatus.ok
    attempt: Annotated[int, Meta(ge=1, le=1000)] = 1
    retry_of: _Name | None = None
    fallback_from: _Name | None = None
    role: _Name | None = None
    latency_ms: Annotated[int, Meta(ge=0, le=86_400_000)] | None = None
    max_output_tokens: Annotated[int, Meta(ge=1, le=MAX_TOKENS_PER_CLASS)] | None = None
    scenario_id: _Name | None = None
    environment: _Name | None = None
    owner: _Name | None = None
    # Quantities are Decimals with limits of their own: a call with units is left to
    # the models (the field exists so such a record is not an unknown field).
    units: dict[str, Any] = {}

    def __post_init__(self) -> None:
        if self.units:
            raise _NotCommon("units")
        _check_strings(
            (self.event_id, self.task_id, self.provider, self.model, self.retry_of,
             self.fallback_from, self.role, self.scenario_id, self.environment, self.owner),
            self.attributes,
        )  # fmt: skip
        self._set_ts()


class LeanTask(_LeanBase, kw_only=True, forbid_unknown_fields=True):
    """A :class:`~pipeline.events.models.TaskEvent` in the common shape."""

    type: Literal["task"] = "task"
    phase: TaskPhase
    scenario_id: _Name | None = None
    owner: _Name | None = None
    environment: _Name | None = None

    def __post_init__(self) -> None:
        _check_strings(
            (self.event_id, self.task_id, self.scenario_id, self.owner, self.environment),
            self.attributes,
        )
        self._set_ts()


class LeanOutcome(_LeanBase, kw_only=True, forbid_unknown_fields=True):
    """An :class:`~pipeline.events.models.OutcomeEvent` in the common shape."""

    type: Literal["outcome"] = "outcome"
    outcome: OutcomeKind
    source: OutcomeSource
    score: float | None = None

    def __post_init__(self) -> None:
        if self.score is not None and not math.isfinite(self.score):
            raise _NotCommon("score")
        _check_strings((self.event_id, self.task_id), self.attributes)
        self._set_ts()


LeanEvent = LeanCall | LeanTask | LeanOutcome
# What stage 1 handles: an event as the models built it, or its lean twin.
AnyCall = CallEvent | LeanCall
AnyTask = TaskEvent | LeanTask
AnyOutcome = OutcomeEvent | LeanOutcome
AnyEvent = AnyCall | AnyTask | AnyOutcome
_MIRRORS: tuple[tuple[type[Struct], type[BaseModel]], ...] = (
    (LeanCall, CallEvent), (LeanTask, TaskEvent), (LeanOutcome, OutcomeEvent), (LeanUsage, Usage),
)  # fmt: skip
for _lean, _model in _MIRRORS:
    _fields = tuple(
        "ts" if f == "ts_sent" else f for f in _lean.__struct_fields__ if f not in _COMPUTED
    )
    if _fields != tuple(_model.model_fields):  # a field added to a model and not here
        raise TypeError(f"{_lean.__name__} does not mirror {_model.__name__}'s fields")


_UNKNOWN_FIELD = "Object contains unknown field"
_TOP_LEVEL = msgspec.json.Decoder(dict[str, Raw])
# Sets of unknown field names learned per event type (one per producer shape, say);
# records with yet another set are left to the models.
MAX_SHAPES_PER_TYPE = 16
# (struct attribute, field name as sent) of a learned shape's unknown fields
_Extras = tuple[tuple[str, str], ...]


class _Decoders:
    """One event type's decoders: the contract's fields only, and the same struct
    extended by each set of unknown field names seen (learned at run time), so a
    producer that adds the same fields to every record costs one decode a record.

    Unknown fields are folded into ``attributes`` as the models fold them (null means
    absent; any other value as JSON text; a name or text the models would strip, or a
    prompt/completion field, leaves the record to the models)."""

    def __init__(self, lean: type[LeanEvent]) -> None:
        self.lean = lean
        self.strict: msgspec.json.Decoder[Any] = msgspec.json.Decoder(lean)
        self.known = frozenset(info.encode_name for info in msgspec.structs.fields(lean))
        self.shapes: dict[frozenset[str], tuple[msgspec.json.Decoder[Any], _Extras]] = {}
        # The shape of the latest record with unknown fields: tried first.
        self.latest: tuple[msgspec.json.Decoder[Any], _Extras] | None = None

    def decode(self, raw: bytes) -> LeanEvent | None:
        latest = self.latest
        try:
            if latest is None:
                event: LeanEvent = self.strict.decode(raw)
                return event
            event = latest[0].decode(raw)
            return _fold(event, latest[1])
        except msgspec.ValidationError as exc:
            if not str(exc).startswith(_UNKNOWN_FIELD):
                return None
        except Exception:
            return None
        return self._learn(raw)

    def _learn(self, raw: bytes) -> LeanEvent | None:
        """Decode a record whose unknown fields the latest shape does not name."""
        try:
            top = _TOP_LEVEL.decode(raw)
        except Exception:
            return None
        names = tuple(name for name in top if name not in self.known)
        # A name the models would strip, or prompt/completion text: theirs to decide.
        if not names or any(is_content_field(name) for name in names):
            return None
        if not all(_plain(name) for name in names):
            return None
        key = frozenset(names)
        shape = self.shapes.get(key)
        try:
            if shape is None:
                if len(self.shapes) >= MAX_SHAPES_PER_TYPE:
                    return None
                # Refused for names msgspec cannot declare (quotes, backslashes,
                # control characters): such records are left to the models.
                shape = self.shapes[key] = self._extended(names)
            self.latest = shape
            event: LeanEvent = shape[0].decode(raw)
            return _fold(event, shape[1])
        except Exception:
            return None

    def _extended(self, names: tuple[str, ...]) -> tuple[msgspec.json.Decoder[Any], _Extras]:
        extras = tuple((f"extra{i}", name) for i, name in enumerate(names))
        struct = msgspec.defstruct(
            f"{self.lean.__name__}With{len(self.shapes)}",
            [(attr, Any, msgspec.field(default=msgspec.UNSET, name=name)) for attr, name in extras],
            bases=(self.lean,),
            kw_only=True,
            forbid_unknown_fields=True,
        )
        return msgspec.json.Decoder(struct), extras


def _fold(event: LeanEvent, extras: _Extras) -> LeanEvent | None:
    folded: dict[str, str] | None = None
    for attribute, name in extras:
        value = getattr(event, attribute)
        if value is msgspec.UNSET or value is None:  # null means absent, as for known fields
            continue
        if type(value) is str:
            text = value
        elif _nested_at_most(value, _MAX_UNKNOWN_DEPTH):
            text = _compact(value)
        else:
            return None
        if not _plain(text):  # names were checked when their shape was learned
            return None
        if folded is None:
            folded = dict(event.attributes)
        folded.setdefault(name, text)
    if folded is not None:
        event.attributes = folded
    return event


def _nested_at_most(value: Any, limit: int) -> bool:
    """True if ``value`` (decoded JSON) nests lists and objects at most ``limit`` deep."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if type(item) is dict else item if type(item) is list else ()
        if children and depth > limit:
            return False
        pending.extend((child, depth + 1) for child in children)
    return True


_DECODERS = {"call": _Decoders(LeanCall), "task": _Decoders(LeanTask),
             "outcome": _Decoders(LeanOutcome)}  # fmt: skip


def lean_event(raw: bytes, event_type: str) -> LeanEvent | None:
    """The event on ``event_type``'s topic (``call``, ``task`` or ``outcome``) the
    models would build from ``raw``, as a lean struct; None when ``raw`` is not in
    the common shape (then :func:`pipeline.events.decode.decode_event` validates it
    with the models, as for a type not named here)."""
    decoders = _DECODERS.get(event_type)
    return None if decoders is None else decoders.decode(raw)
