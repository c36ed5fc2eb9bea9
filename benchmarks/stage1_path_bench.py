"""Stage 1's own work per event, without Kafka: decode, join, price, records, state.

Not a test: it prints figures and writes JSON. The generated workload goes through
``apply_batch`` in fetches of 2,000 records, as the worker applies them, alternating
in the same run between the lean decode (msgspec, ``pipeline/events/lean.py``) and
the baseline that decodes every record through the pydantic models; then each decode
path alone. Rounds alternate so that a noisy shared machine slows both alike; the
median of the rounds is reported.

    .venv/bin/python -m benchmarks.stage1_path_bench --tasks 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.results_file import write_result
from pipeline.agents import base
from pipeline.agents.base import Stage, new_stage
from pipeline.agents.batch import InputRecord, apply_batch
from pipeline.agents.batch_output import CollectingTopic
from pipeline.config import WorkerSettings
from pipeline.demo.workload import generate
from pipeline.events.decode import decode_event
from pipeline.events.lean import lean_event
from pipeline.pricing import CompiledBook, load_price_book
from pipeline.runtime.gc_tuning import tune_for_streaming

FETCH = 2_000
PARTITIONS = 4
# A clock past every generated event: the future-timestamp check never refuses one.
CLOCK_MS = 4_102_444_800_000


def _records(tasks: int) -> list[InputRecord]:
    records = []
    for offset, event in enumerate(generate(tasks, seed=42)):
        key = event["task_id"].encode()
        value = json.dumps(event, separators=(",", ":")).encode()
        kind = event["type"]
        records.append(InputRecord(kind, f"{kind}s", zlib.crc32(key) % PARTITIONS, offset,
                                   key, value))  # fmt: skip
    return records


def _stage(book: CompiledBook) -> tuple[Stage, list[CollectingTopic]]:
    outputs = [CollectingTopic("priced"), CollectingTopic("snapshots"), CollectingTopic("dead")]
    stage = new_stage(table={}, priced_calls=outputs[0], task_snapshots=outputs[1],
                      dead_letter=outputs[2], book=book, changelog=lambda *_: None)  # fmt: skip
    stage.store.clock_ms = lambda: CLOCK_MS
    return stage, outputs


def _apply_all(records: list[InputRecord], book: CompiledBook) -> float:
    """Seconds to apply every record in fetches, outputs built and dropped per fetch."""
    stage, outputs = _stage(book)
    started = time.perf_counter()
    for i in range(0, len(records), FETCH):
        apply_batch(stage, records[i : i + FETCH])
        for topic in outputs:
            topic.sent.clear()
    return time.perf_counter() - started


def _models_only(raw: bytes | None, event_type: str) -> None:
    return None  # lean says "not the common shape": every record goes through the models


def _decode_all(records: list[InputRecord], decode: Callable[[bytes, str], Any]) -> float:
    started = time.perf_counter()
    for record in records:
        decode(record.value or b"", record.event_type)
    return time.perf_counter() - started


def run(tasks: int, rounds: int, out: Path) -> dict[str, Any]:
    records = _records(tasks)
    book = CompiledBook(load_price_book(WorkerSettings().price_book_dir))
    tune_for_streaming()  # as the worker runs
    lean_decode = base.lean_event
    seconds: dict[str, list[float]] = {"lean": [], "models": [], "decode_lean": [],
                                       "decode_models": []}  # fmt: skip
    for n in range(rounds):
        print(f"round {n + 1}/{rounds}", flush=True)
        base.lean_event = _models_only  # type: ignore[assignment]
        seconds["models"].append(_apply_all(records, book))
        base.lean_event = lean_decode
        seconds["lean"].append(_apply_all(records, book))
        seconds["decode_models"].append(_decode_all(records, decode_event))
        seconds["decode_lean"].append(_decode_all(records, lean_event))
    per_event = {
        name: round(statistics.median(values) / len(records) * 1e6, 2)
        for name, values in seconds.items()
    }
    result = {
        "benchmark": "stage1_path",
        "events": len(records),
        "tasks": tasks,
        "rounds": rounds,
        "fetch_records": FETCH,
        "us_per_event_median": per_event,
        "events_per_s_one_core": {
            name: round(1e6 / per_event[name]) for name in ("lean", "models")
        },
        "seconds_per_round": seconds,
    }
    return write_result(out, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path,
                        default=Path("benchmarks/results/stage1_path.json"))  # fmt: skip
    args = parser.parse_args()
    r = run(args.tasks, args.rounds, args.out)
    us = r["us_per_event_median"]
    print(f"events                              {r['events']:>10,}")
    print(f"stage 1's work, lean decode         {us['lean']:>10} µs/event")
    print(f"stage 1's work, models decode only  {us['models']:>10} µs/event (the baseline)")
    print(f"decode alone, lean                  {us['decode_lean']:>10} µs/event")
    print(f"decode alone, models                {us['decode_models']:>10} µs/event")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
