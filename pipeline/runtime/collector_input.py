"""Reading the HTTP collector's request bodies: JSON lines or a JSON array, each
record checked by the contract's own decoder. Pure."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from pipeline.agents.task_store import future_timestamp
from pipeline.errors import InvalidEvent
from pipeline.events.decode import decode_event
from pipeline.events.models import CallEvent, OutcomeEvent, TaskEvent


def records_of(body: bytes, max_records: int) -> list[bytes]:
    """The records of a body: the elements of a JSON array, else its non-blank lines.

    Raises 413 above ``max_records`` and 400 for an array that is not JSON."""
    text = body.strip().removeprefix(b"\xef\xbb\xbf")
    if text.startswith(b"["):
        try:
            items = json.loads(text)
            records = [json.dumps(item).encode() for item in items]
        except (ValueError, RecursionError) as exc:
            raise web.HTTPBadRequest(text=f"the body is not a JSON array: {exc}"[:500]) from None
    elif text.startswith(b"{") and b"\n" in text and (single := _one_object(text)) is not None:
        records = [single]  # one pretty-printed object, not lines
    else:
        records = [line for line in text.split(b"\n") if line.strip()]
    if len(records) > max_records:
        raise web.HTTPRequestEntityTooLarge(
            max_size=max_records, actual_size=len(records),
            text=f"{len(records):,} records; send at most {max_records:,} per request",
        )  # fmt: skip
    return records


def _one_object(text: bytes) -> bytes | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return json.dumps(value).encode() if isinstance(value, dict) else None


def json_entries(body: bytes, max_records: int) -> list[Any]:
    """The decoded entries of a JSON array, NDJSON or single-object body (400 when one
    is not JSON: a LiteLLM logger never sends that)."""
    entries = []
    for number, record in enumerate(records_of(body, max_records), start=1):
        try:
            entries.append(json.loads(record))
        except (ValueError, RecursionError) as exc:
            raise web.HTTPBadRequest(text=f"record {number} is not JSON: {exc}"[:500]) from None
    return entries


def contract_events(
    body: bytes,
    max_records: int,
    max_record_bytes: int = 1_000_000,
    max_future_ms: int | None = None,
    now_ms: int | None = None,
) -> tuple[list[tuple[CallEvent | TaskEvent | OutcomeEvent, bytes]], list[dict[str, Any]]]:
    """Each record decoded as stage 1 decodes it, with its original bytes; and, for
    the bad ones, ``{"record": n, "reason": code, "detail": why}`` (1-based). A record
    above ``max_record_bytes`` (the broker's limit) is bad: ``record_too_large``; so is
    one stamped more than ``max_future_ms`` after ``now_ms`` (epoch ms; default: the
    clock), which stage 1 would dead-letter as ``future_timestamp``."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    events, rejected = [], []
    for number, raw in enumerate(records_of(body, max_records), start=1):
        if len(raw) > max_record_bytes:
            rejected.append({"record": number, "reason": "record_too_large",
                             "detail": f"{len(raw):,} bytes; the broker takes at most "
                                       f"{max_record_bytes:,}"})  # fmt: skip
            continue
        try:
            event = decode_event(raw)
            if max_future_ms is not None and event.ts_ms > now + max_future_ms:
                # Refused here, never sent: the client sends it again itself.
                raise future_timestamp(event, now, then="send it again")
            events.append((event, raw))
        except InvalidEvent as error:
            rejected.append({"record": number, "reason": error.code, "detail": str(error)})
    return events, rejected
