"""The HTTP collector's bodies: JSON lines or an array, each record decoded as stage 1
decodes it, bad ones named by number and reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from pipeline.runtime.collector_input import contract_events, json_entries, records_of

CALL = {"type": "call", "event_id": "c1", "task_id": "t1", "ts": "2026-12-01T10:00:00Z",
        "provider": "openai", "model": "gpt-4o-mini", "usage": {"input_tokens": 3}}  # fmt: skip


def test_lines_and_arrays_are_the_same_records() -> None:
    lines = b"\n".join([json.dumps(CALL).encode(), b"", b"  ", json.dumps(CALL).encode()])
    array = json.dumps([CALL, CALL]).encode()
    assert len(records_of(lines, 10)) == len(records_of(array, 10)) == 2
    events, rejected = contract_events(array, 10)
    assert rejected == [] and [e.event_id for e, _raw in events] == ["c1", "c1"]


def test_bad_records_are_named_by_number_and_reason() -> None:
    body = b"\n".join([json.dumps(CALL).encode(), b"{oops", json.dumps([1]).encode()])
    events, rejected = contract_events(body, 10)
    assert len(events) == 1
    assert [(r["record"], r["reason"]) for r in rejected] == [
        (2, "not_json"), (3, "schema_violation")
    ]  # fmt: skip


def test_limits_and_unreadable_bodies_are_refused() -> None:
    with pytest.raises(web.HTTPRequestEntityTooLarge) as too_many:
        records_of(json.dumps([CALL, CALL, CALL]).encode(), 2)
    assert "at most 2" in (too_many.value.text or "")
    with pytest.raises(web.HTTPBadRequest) as unreadable:
        records_of(b"[1, 2", 10)
    assert "not a JSON array" in (unreadable.value.text or "")
    with pytest.raises(web.HTTPBadRequest) as second:
        json_entries(b'{"a": 1}\n{nope', 10)
    assert "record 2 is not JSON" in (second.value.text or "")
    assert json_entries(b'{"a": 1}', 10) == [{"a": 1}]  # one object: one entry


def test_records_too_large_for_the_broker_and_odd_bodies() -> None:
    big = json.dumps({**CALL, "attributes": {"note": "x" * 2_000}}).encode()
    events, rejected = contract_events(big + b"\n" + json.dumps(CALL).encode(), 10, 1_500)
    assert len(events) == 1 and rejected[0]["record"] == 1
    assert rejected[0]["reason"] == "record_too_large"
    pretty = json.dumps(CALL, indent=2).encode()  # one object over several lines
    assert [e.event_id for e, _ in contract_events(pretty, 10)[0]] == ["c1"]
    with pytest.raises(web.HTTPBadRequest):
        records_of(b"[" * 100_000 + b"]" * 100_000, 10)


def test_settings_refuse_an_empty_token_file_and_a_request_that_cannot_fit(tmp_path: Any) -> None:
    from pipeline.config import IngestSettings
    from pipeline.errors import ConfigError

    empty = tmp_path / "token"
    empty.write_text("  \n")
    with pytest.raises(ConfigError, match="is empty"):
        IngestSettings(http_token_file=empty).bearer_token()
    with pytest.raises(ValueError, match="a full request could never be taken"):
        IngestSettings(http_max_records=150, http_max_inflight_records=100)


def test_events_stamped_beyond_stage_1s_future_bound_are_refused_up_front() -> None:
    """What stage 1 would dead-letter as future_timestamp is a 400 here, not a 200."""
    now_ms = 1_796_119_200_000  # 2026-12-01T10:00:00Z
    soon = {"type": "task", "event_id": "a", "task_id": "t", "ts": "2026-12-01T10:59:59Z",
            "phase": "started"}  # fmt: skip
    late = {**soon, "event_id": "b", "ts": "2026-12-01T12:00:00Z"}  # 2 h ahead
    body = b"\n".join(json.dumps(e).encode() for e in (soon, late))
    events, rejected = contract_events(body, 10, max_future_ms=3_600_000, now_ms=now_ms)
    assert [e.event_id for e, _ in events] == ["a"]
    assert [(r["record"], r["reason"]) for r in rejected] == [(2, "future_timestamp")]
    assert "2.0 h ahead" in rejected[0]["detail"]
    assert rejected[0]["detail"].endswith("then send it again")  # nothing was dead-lettered
    # Without the bound (other callers), both pass.
    assert len(contract_events(body, 10, now_ms=now_ms)[0]) == 2
