"""Lean events equal what the models build, on every record the lean decoder accepts.

The models (``pipeline.events.models``, through ``decode_event``) are the contract.
``lean_event`` may only ever answer "the models accept this, with these values" or
"not the common shape" (None); these tests hold it to that on generated, mutated and
malformed records, and check that the common shape really takes the lean path.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.demo.workload import generate
from pipeline.errors import InvalidEvent
from pipeline.events import lean
from pipeline.events.decode import decode_event
from pipeline.events.lean import MAX_SHAPES_PER_TYPE, LeanCall, LeanOutcome, LeanTask, lean_event
from pipeline.events.models import CallEvent, OutcomeEvent, TaskEvent, Usage

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LEAN_OF = {"call": LeanCall, "task": LeanTask, "outcome": LeanOutcome}


@pytest.fixture(autouse=True)
def _fresh_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test learns unknown-field shapes from nothing."""
    fresh = {name: lean._Decoders(d.lean) for name, d in lean._DECODERS.items()}
    monkeypatch.setattr(lean, "_DECODERS", fresh)


def _same(lean: Any, model: Any) -> None:
    """Every field of the model's, equal and of the same type, and ts_ms from ts."""
    for name in type(model).model_fields:
        mine, theirs = getattr(lean, name), getattr(model, name)
        if isinstance(theirs, Usage):
            _same(mine, theirs)
            assert mine.prompt_tokens == theirs.prompt_tokens
            continue
        assert mine == theirs, name
        assert type(mine) is type(theirs), name
    if not isinstance(model, Usage):
        assert lean.ts_ms == (model.ts - _EPOCH) // timedelta(milliseconds=1)


def _models(raw: bytes, event_type: str) -> CallEvent | TaskEvent | OutcomeEvent | None:
    try:
        return decode_event(raw, event_type)
    except InvalidEvent:
        return None


def _check(raw: bytes, event_type: str) -> Any:
    lean = lean_event(raw, event_type)
    if lean is not None:
        model = _models(raw, event_type)
        assert model is not None, f"lean accepted what the models refuse: {raw!r}"
        assert isinstance(lean, _LEAN_OF[event_type])
        _same(lean, model)
    return lean


def test_every_demo_event_takes_the_lean_path_with_the_models_values() -> None:
    events = generate(300)
    assert any("gateway" in e for e in events)  # unknown fields folded on this path too
    for event in events:
        raw = json.dumps(event).encode()
        lean = _check(raw, event["type"])
        assert lean is not None, event


def test_unknown_field_shapes_are_learned_and_bounded() -> None:
    """Records switch between sets of unknown fields, with and without them; every one
    decodes lean with the models' values until more sets than the bound were seen."""
    base = {"type": "task", "event_id": "t", "task_id": "k", "ts": "2026-11-01T04:09:08Z",
            "phase": "started", "attributes": {"a": "1"}}  # fmt: skip
    variants = [
        {}, {"gateway": "edge-1"}, {"gateway": "edge-2", "region": 3}, {}, {"region": None},
        {"gateway": "edge-1"}, {"a": "attributes' a wins"},
    ]  # fmt: skip
    for extra in variants * 2:
        assert _check(json.dumps({**base, **extra}).encode(), "task") is not None, extra
    learned = len(lean._DECODERS["task"].shapes)
    for n in range(MAX_SHAPES_PER_TYPE - learned):
        assert _check(json.dumps({**base, f"field{n}": n}).encode(), "task") is not None
    one_too_many = json.dumps({**base, "field_beyond": 1}).encode()
    assert lean_event(one_too_many, "task") is None
    assert _models(one_too_many, "task") is not None  # the models still take it
    assert _check(json.dumps({**base, "gateway": "edge-9"}).encode(), "task") is not None


@pytest.mark.parametrize(
    "record",
    [
        # ts in epoch ms, score as an integer, type omitted, every optional call field
        {"event_id": "o", "task_id": "t", "ts": 1_790_000_000_123, "outcome": "rejected",
         "source": "user", "score": 1},
        {"type": "call", "event_id": "c", "task_id": "t", "ts": "2026-11-01T04:09:08+05:30",
         "provider": "openai", "model": "gpt-4o", "usage": {"input_tokens": 0},
         "service_tier": "flex", "status": "timeout", "attempt": 3, "retry_of": "c0",
         "fallback_from": "gpt-4.1", "role": "planner", "latency_ms": 0,
         "max_output_tokens": 1, "scenario_id": "s", "environment": "e", "owner": "o",
         "units": {}, "attributes": {"k": ""}, "schema_version": 1, "nested": {"b": [1, 2.5]},
         "blank": None},
        {"type": "task", "event_id": "t1", "task_id": "t", "ts": "2026-11-01T04:09:08Z",
         "phase": "completed", "scenario_id": "x" * 256},
    ],
)  # fmt: skip
def test_the_common_shape_is_lean(record: dict[str, Any]) -> None:
    event_type = record.get("type", "outcome")
    assert _check(json.dumps(record).encode(), event_type) is not None


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ({"service_tier": "default"}, "a provider's spelling the models translate"),
        ({"model": " gpt-4o"}, "edge whitespace the models strip"),
        ({"model": "gpt-4o\u2003"}, "Unicode whitespace"),
        ({"attributes": {"k": 3}}, "an attribute the models turn into text"),
        ({"attributes": {"k": None}}, "an attribute the models drop"),
        ({"units": {"tool_call": 3}}, "unit quantities"),
        ({"latency_ms": 5.0}, "a float where the models coerce to an integer"),
        ({"ts": "2026-11-01T04:09:08"}, "a ts without an offset"),
        ({"ts": 1_790_000_000}, "epoch seconds"),
        ({"prompt": "secret"}, "prompt text"),
        ({"gateway": " edge"}, "an unknown field the models would strip"),
        ({"type": "task"}, "another topic's type"),
        ({"costflow:ts_ms (computed)": 5}, "a name lean uses for what it computes"),
        ({"costflow:ts_ms (computed)": -(2**62) - 7}, "... with its default's value"),
        ({"costflow:ts (computed)": "2026-11-01T04:09:08Z"}, "... the other one"),
    ],
)
def test_anything_else_is_left_to_the_models(record: dict[str, Any], why: str) -> None:
    base = {"type": "call", "event_id": "c", "task_id": "t", "ts": "2026-11-01T04:09:08Z",
            "provider": "openai", "model": "gpt-4o", "usage": {"input_tokens": 5}}  # fmt: skip
    assert lean_event(json.dumps({**base, **record}).encode(), "call") is None, why


@pytest.mark.parametrize("learned_first", [False, True])
def test_unknown_fields_lean_cannot_declare_or_nest_are_left_to_the_models(
    learned_first: bool,
) -> None:
    """From a new-user review: names msgspec cannot declare as fields, values nested
    near Python's recursion limit, and a computed field's name sent with its default
    value. Each goes to the models, on a fresh decoder and after a shape was learned,
    and lean never raises."""
    base = (b'{"event_id":"e","task_id":"t","ts":"2026-11-01T04:09:08Z","phase":"started"')
    if learned_first:
        assert _check(base + b',"gateway":"edge-1"}', "task") is not None
    for name in (b'"a\\"b"', b'"a\\\\b"', b'"a\\nb"', b'"u\\u0000"', b'"u\\u001c"'):
        raw = base + b"," + name + b':"v"}'
        assert lean_event(raw, "task") is None, raw
        assert _models(raw, "task") is not None, raw
    def nested(depth: int) -> bytes:
        return base + b',"deep":' + b"[" * depth + b"1" + b"]" * depth + b"}"

    assert _check(nested(64), "task") is not None  # as deep as lean folds itself
    for depth in (65, 990):
        assert lean_event(nested(depth), "task") is None, depth
    raw = base + b',"costflow:ts_m\\u0073 (computed)":-1}'
    assert lean_event(raw, "task") is None
    assert _models(raw, "task").attributes == {"costflow:ts_ms (computed)": "-1"}  # type: ignore[union-attr]
    assert lean_event(base + b"}", "no such topic") is None


# --- the property -------------------------------------------------------------

_SPACES = ["", " ", "\t", "\u00a0", "\u2003", "\u3000", "\x1c", "\u200b", "\u180e", "\n"]
_strings = st.one_of(
    st.text(min_size=0, max_size=8),
    st.tuples(st.sampled_from(_SPACES), st.text("abc-_.", min_size=0, max_size=4),
              st.sampled_from(_SPACES)).map("".join),
    st.sampled_from(["a" * 256, "a" * 257, "ok", "gpt-4o", "\ud800", "é"]),
)  # fmt: skip
_numbers = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0, 1, 1000, 1001, 86_400_000, 86_400_001, 100_000_000, 100_000_001,
                     2**63, -(2**63) - 1, 2**70, 1_790_000_000_000, 10**20, 1.0, 2.5, 1e400]),
    st.booleans(),
)  # fmt: skip
_values = st.one_of(
    _strings, _numbers, st.none(), st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text("ab", max_size=2), st.integers(0, 2), max_size=2),
)  # fmt: skip
_ts = st.one_of(
    st.sampled_from(["2026-11-01T04:09:08.192Z", "2026-11-01T04:09:08+05:30", "2026-11-01",
                     " 2026-11-01T04:09:08Z", "2026-11-01T04:09:08", "1999-12-31T23:59:59Z",
                     "2200-12-31T23:59:59Z", "2201-01-01T00:00:00Z", "2026-11-01 04:09:08z",
                     "2026-11-01T04:09:08.1234567Z", "2026-13-01T00:00:00Z", "2026-11-01Z",
                     "2026-11-01T04:09:08+05:30Z", "2026-11-01T04:09:08-00:00",
                     "2026-11-01T04:09:08.192z", "2026-11-01T04:09:08Z\n", "20261101T040908Z",
                     "2026-11-01T04:09:08.192+14:00", "2000-01-01T00:30:00+01:00"]),
    st.integers(0, 8_000_000_000_000), st.integers(-(10**20), 10**20), _values,
)  # fmt: skip


def _enum(*names: str) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from([*names, " ok", "OK", "default", "auto", ""]), _values)


_FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "call": {
        "provider": _strings, "model": _strings,
        "usage": st.dictionaries(
            st.sampled_from([*Usage.model_fields, "cached_tokens"]), _numbers, max_size=4
        ) | _values,
        "service_tier": _enum("standard", "batch", "flex", "priority"),
        "status": _enum("ok", "error", "timeout", "rate_limited", "invalid_output"),
        "attempt": _numbers, "retry_of": _strings | st.none(),
        "fallback_from": _strings | st.none(), "role": _strings | st.none(),
        "latency_ms": _numbers | st.none(), "max_output_tokens": _numbers | st.none(),
        "scenario_id": _strings | st.none(), "environment": _strings | st.none(),
        "owner": _strings | st.none(),
        "units": st.just({}) | st.dictionaries(st.sampled_from(["tool_call", "X"]), _numbers,
                                               max_size=1),
    },
    "task": {"phase": _enum("started", "completed"), "scenario_id": _strings | st.none(),
             "owner": _strings | st.none(), "environment": _strings | st.none()},
    "outcome": {"outcome": _enum("accepted", "rejected", "failed"),
                "source": _enum("user", "quality_gate", "business", "system"),
                "score": _numbers | st.none()},
}  # fmt: skip
_COMMON = {
    "event_id": _strings, "task_id": _strings, "ts": _ts,
    "schema_version": st.sampled_from([1, 2, True, "1", None]),
    "attributes": st.dictionaries(_strings, _values, max_size=3) | _values,
    "type": st.sampled_from(["call", "task", "outcome", "", None]),
}  # fmt: skip
_UNKNOWN = st.dictionaries(
    st.sampled_from(["gateway", "region", " pad", "prompt", "content", "n", "é"]),
    _values, max_size=2,
)


_REQUIRED = {
    name: {f for f, info in model.model_fields.items() if info.is_required()}
    for name, model in (("call", CallEvent), ("task", TaskEvent), ("outcome", OutcomeEvent))
}


@st.composite
def _records(draw: st.DrawFn) -> tuple[bytes, str]:
    event_type = draw(st.sampled_from(["call", "task", "outcome"]))
    fields = {**_COMMON, **_FIELDS[event_type]}
    # A plain record with some optional fields left out, then a few fields drawn from
    # anything: accepted records are common, not rare.
    record: dict[str, Any] = {
        name: _plain(name, event_type) for name in fields
        if name in _REQUIRED[event_type] or draw(st.booleans())
    }  # fmt: skip
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3)):
        record[name] = draw(fields[name])
    record.update(draw(_UNKNOWN))
    raw = json.dumps(record, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    mutation = draw(st.integers(0, 15))
    if mutation == 0 and raw.endswith(b"}") and len(record) > 1:
        name = draw(st.sampled_from(sorted(record)))  # a duplicate key: the last wins
        raw = raw[:-1] + b", " + json.dumps(name).encode() + b": " + json.dumps(
            draw(_values), ensure_ascii=True).encode() + b"}"
    elif mutation == 1:
        raw = b"\xef\xbb\xbf" + raw
    elif mutation == 2:
        raw = raw + b" x"
    elif mutation == 3:
        raw = raw.replace(b'"ok"', b'"\xff"')
    elif mutation == 4:
        raw = raw.replace(b"1", b"NaN", 1)
    return raw, event_type


def _plain(name: str, event_type: str) -> Any:
    plain: dict[str, Any] = {
        "event_id": "e-1", "task_id": "t-1", "ts": "2026-11-01T04:09:08.192Z",
        "schema_version": 1, "attributes": {"experiment": "a"}, "type": event_type,
        "provider": "openai", "model": "gpt-4o", "usage": {"input_tokens": 5},
        "service_tier": "batch", "status": "ok", "attempt": 1, "phase": "started",
        "outcome": "accepted", "source": "user", "score": 0.5, "units": {},
    }  # fmt: skip
    return plain.get(name, "x")


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_records())
@example((b'{"event_id":"a","task_id":"t","ts":1,"outcome":"accepted","source":"user"}',
          "outcome"))  # fmt: skip
def test_lean_events_equal_the_models_whenever_lean_accepts(case: tuple[bytes, str]) -> None:
    raw, event_type = case
    _check(raw, event_type)


def test_the_property_sees_both_paths() -> None:
    """The generator above makes records of both kinds, so the property is not vacuous."""
    seen = {"lean": 0, "models only": 0, "refused": 0}

    @settings(max_examples=400, deadline=None, database=None)
    @given(_records())
    def count(case: tuple[bytes, str]) -> None:
        raw, event_type = case
        if lean_event(raw, event_type) is not None:
            seen["lean"] += 1
        elif _models(raw, event_type) is not None:
            seen["models only"] += 1
        else:
            seen["refused"] += 1

    count()
    assert all(n >= 10 for n in seen.values()), seen
