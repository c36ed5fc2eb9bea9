"""The fast JSON parse returns exactly what the standard library returns."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.json_codec import loads

_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


def _outcome(parse: object, raw: bytes) -> str:
    """repr of the value (types and float signs included), or the error's type."""
    try:
        return repr(parse(raw))  # type: ignore[operator]
    except (ValueError, RecursionError) as error:
        return type(error).__name__


@settings(max_examples=500, deadline=None)
@given(
    value=_VALUES,
    mangle=st.sampled_from(["none", "truncate", "bad_utf8", "bom", "lone_surrogate", "dup_key"]),
)
def test_same_values_and_refusals_as_the_standard_library(value: object, mangle: str) -> None:
    raw = json.dumps(value).encode()  # NaN, Infinity and huge integers as json writes them
    if mangle == "truncate":
        raw = raw[: len(raw) // 2]
    elif mangle == "bad_utf8":
        raw = raw + b"\xff"
    elif mangle == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif mangle == "lone_surrogate":
        raw = b'["\\ud800", ' + raw + b"]"
    elif mangle == "dup_key":
        raw = b'{"a": 1, "a": ' + raw + b"}"
    assert _outcome(loads, raw) == _outcome(json.loads, raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"18446744073709551616",  # 2**64: a float in orjson, an int here
        b'{"n": -9223372036854775809}',
        b"NaN",
        b"[Infinity, -Infinity]",
        b'"\xc3\xa9t\xc3\xa9"',
    ],
)
def test_values_orjson_would_change_or_refuse(raw: bytes) -> None:
    assert repr(loads(raw)) == repr(json.loads(raw))
    assert repr(loads(raw.decode())) == repr(json.loads(raw.decode()))


def test_a_huge_integer_stays_exact() -> None:
    assert loads(b"[123456789012345678901234567890]") == [123456789012345678901234567890]
