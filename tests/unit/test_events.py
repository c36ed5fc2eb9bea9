from __future__ import annotations

import calendar
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import NotJson, SchemaViolation, WrongTopic
from pipeline.events import CallEvent, OutcomeEvent, TaskEvent, decode_event
from pipeline.events.models import MAX_TOKENS_PER_CLASS


def call(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "call",
        "event_id": "e-1",
        "task_id": "t-1",
        "ts": "2026-11-02T10:00:00.250Z",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "usage": {"input_tokens": 120, "output_tokens": 30},
    }
    base.update(overrides)
    return base


def raw(data: object) -> bytes:
    return json.dumps(data).encode()


def test_call_event_defaults_and_types() -> None:
    event = decode_event(raw(call()), "call")
    assert isinstance(event, CallEvent)
    assert event.ts == datetime(2026, 11, 2, 10, 0, 0, 250_000, tzinfo=UTC)
    assert event.usage.input_tokens == 120
    assert event.usage.cache_read_tokens == 0
    assert event.status.value == "ok"
    assert event.attempt == 1
    assert event.schema_version == 1


def test_epoch_milliseconds_are_exact() -> None:
    epoch_s = calendar.timegm((2026, 11, 3, 10, 0, 0))
    event = decode_event(raw(call(ts=epoch_s * 1000 + 123)), "call")
    assert event.ts == datetime(2026, 11, 3, 10, 0, 0, 123_000, tzinfo=UTC)


def test_offsets_are_normalised_to_utc() -> None:
    event = decode_event(raw(call(ts="2026-11-02T12:00:00+02:00")), "call")
    assert event.ts == datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def test_unknown_fields_are_kept_in_attributes() -> None:
    event = decode_event(raw(call(gateway="edge-1", region={"zone": "b"})), "call")
    assert event.attributes == {"gateway": "edge-1", "region": '{"zone":"b"}'}
    # null is absent, never the string "null".
    event = decode_event(raw(call(experiment=None, attributes={"a": None, "b": 1})), "call")
    assert event.attributes == {"b": "1"}


def test_type_may_be_omitted_on_a_typed_topic() -> None:
    data = call()
    del data["type"]
    assert isinstance(decode_event(raw(data), "call"), CallEvent)


def test_task_and_outcome_events() -> None:
    task = decode_event(
        raw(
            {
                "type": "task",
                "event_id": "e",
                "task_id": "t",
                "ts": 1_793_620_800_000,
                "phase": "started",
                "scenario_id": "s",
                "owner": "o",
                "environment": "prod",
            }
        ),
        "task",
    )
    assert isinstance(task, TaskEvent) and task.owner == "o"
    outcome = decode_event(
        raw(
            {
                "type": "outcome",
                "event_id": "e2",
                "task_id": "t",
                "ts": 1_793_620_800_000,
                "outcome": "accepted",
                "source": "user",
                "score": 0.9,
            }
        ),
        "outcome",
    )
    assert isinstance(outcome, OutcomeEvent) and outcome.score == 0.9


@pytest.mark.parametrize(
    ("payload", "error", "fragment"),
    [
        (b"not json at all", NotJson, "not JSON"),
        (b"\xff\xfe", NotJson, "not JSON"),
        (b"[1, 2]", SchemaViolation, "expected an object"),
        (raw(call(usage={"input_tokens": -1})), SchemaViolation, "usage.input_tokens"),
        (
            raw(call(usage={"input_tokens": MAX_TOKENS_PER_CLASS + 1})),
            SchemaViolation,
            "usage.input_tokens",
        ),
        (raw(call(usage={"input_tokens": 1.5})), SchemaViolation, "usage.input_tokens"),
        (
            raw(call(usage={"input_tokens": 1, "prompt_tokens": 3})),
            SchemaViolation,
            "prompt_tokens",
        ),
        (raw(call(event_id="")), SchemaViolation, "event_id"),
        (raw({k: v for k, v in call().items() if k != "task_id"}), SchemaViolation, "task_id"),
        (raw(call(ts="yesterday")), SchemaViolation, "ts"),
        (raw(call(ts="2026-11-02T10:00:00")), SchemaViolation, "UTC offset"),
        (raw(call(ts=1_793_620_800)), SchemaViolation, "epoch seconds"),
        (raw(call(ts=1.5e12)), SchemaViolation, "integer"),
        (raw(call(status="exploded")), SchemaViolation, "status"),
        (raw(call(prompt="tell me a secret")), SchemaViolation, "prompt or completion"),
        # nested in attributes, in any case, or under the GenAI conventions' names
        (raw(call(attributes={"messages": "[...]"})), SchemaViolation, "prompt or completion"),
        (raw(call(Prompt="a secret")), SchemaViolation, "prompt or completion"),
        (raw(call(**{"gen_ai.input.messages": "x"})), SchemaViolation, "prompt or completion"),
        (
            raw(call(attributes={"gen_ai.prompt.0.content": "x"})),
            SchemaViolation,
            "prompt or completion",
        ),
        (raw(call(schema_version=2)), SchemaViolation, "schema_version"),
        (raw(call(type="task")), WrongTopic, "'task' event on the 'call' topic"),
    ],
)
def test_bad_input_is_refused_with_a_reason(payload: bytes, error: type, fragment: str) -> None:
    with pytest.raises(error) as info:
        decode_event(payload, "call")
    assert fragment in str(info.value)
    assert info.value.code in {"not_json", "schema_violation", "wrong_topic"}


def _reference_decode(raw: bytes, expected_type: str) -> object:
    """The contract's own decode, with the standard library's JSON: the reference the
    fast path (orjson first) must agree with, accept for accept, value for value."""
    from pydantic import ValidationError

    from pipeline.events.decode import _EVENT

    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "not_json"
    if not isinstance(data, dict):
        return "schema_violation"
    if data.setdefault("type", expected_type) != expected_type:
        return "wrong_topic"
    try:
        return _EVENT.validate_python(data)
    except ValidationError:
        return "schema_violation"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
_CALL = {"type": "call", "event_id": "e", "task_id": "t", "ts": "2026-11-02T10:00:00Z",
         "provider": "openai", "model": "m", "usage": {"input_tokens": 5}}  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    field=st.sampled_from([*_CALL, "usage.input_tokens", "attributes", "extra"]),
    value=_JSON,
    mangle=st.sampled_from(["none", "truncate", "garbage", "nan_literal"]),
)
def test_the_fast_decode_accepts_and_refuses_exactly_as_the_contract(
    field: str, value: object, mangle: str
) -> None:
    body: dict[str, object] = json.loads(json.dumps(_CALL))
    if field == "usage.input_tokens":
        body["usage"] = {"input_tokens": value}
    else:
        body[field] = value
    raw = json.dumps(body).encode()  # NaN and huge integers included, as json writes them
    if mangle == "truncate":
        raw = raw[: len(raw) // 2]
    elif mangle == "garbage":
        raw = b"\xff" + raw
    elif mangle == "nan_literal":
        raw = raw.replace(b'"e"', b"NaN", 1)
    expected = _reference_decode(raw, "call")
    try:
        got: object = decode_event(raw, "call")
    except (NotJson, SchemaViolation, WrongTopic) as error:
        got = error.code
    assert got == expected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        # A timestamp in epoch microseconds: a date out of range, not a crash.
        (json.dumps({**_CALL, "ts": 1796108317000000}).encode(), "schema_violation"),
        (json.dumps({**_CALL, "ts": -(10**20)}).encode(), "schema_violation"),
        # An integer beyond Python's 4,300-digit limit for text conversion.
        (json.dumps(_CALL).encode()[:-1] + b', "trace": ' + b"9" * 4400 + b"}", "not_json"),
        # Nesting deeper than any parser recurses.
        (
            json.dumps(_CALL).encode()[:-1]
            + b', "deep": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}",
            "not_json",
        ),
    ],
)
def test_input_out_of_every_range_is_bad_input_not_a_crash(raw: bytes, code: str) -> None:
    with pytest.raises((NotJson, SchemaViolation)) as raised:
        decode_event(raw, "call")
    assert raised.value.code == code
