"""Stage-1 state: bytes per task held, and how retention bounds the number held.

.venv/bin/python -m benchmarks.state_bench --tasks 20000 --days 30

Runs the worker's own event path (decode, join, price, retention) without Kafka on a
month of generated traffic in event-time order, twice in the same run: with the
configured retention and with retention effectively off (the baseline). Memory per
task is measured with tracemalloc on the table as Faust's memory store holds it
(one JSON-shaped dict per task). Writes benchmarks/results/state.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.agents.base import Stage, consume, new_stage
from pipeline.agents.calls import apply_call
from pipeline.agents.outcomes import apply_outcome
from pipeline.agents.tasks import apply_task
from pipeline.config import WorkerSettings
from pipeline.demo.workload import generate
from pipeline.join.retention import RetentionIndex
from pipeline.pricing import CompiledBook, load_price_book

APPLY = {"call": apply_call, "task": apply_task, "outcome": apply_outcome}
PARTITIONS = 12


@dataclass
class _Message:
    value: bytes
    key: bytes
    partition: int
    topic: str = "bench"
    offset: int = 0


@dataclass
class _Event:
    message: _Message


class _Discard:
    def send_soon(self, key: bytes | None, value: bytes, headers: Any = None) -> None:
        pass


def _context(retention_ms: int) -> Stage:
    book = CompiledBook(load_price_book(WorkerSettings().price_book_dir))
    return new_stage(
        table={},
        priced_calls=_Discard(),
        task_snapshots=_Discard(),
        dead_letter=_Discard(),
        book=book,
        retention=RetentionIndex(retention_ms),
    )


def run(events: list[dict[str, Any]], retention_ms: int, samples: int = 60) -> dict[str, Any]:
    ctx = _context(retention_ms)
    held: list[int] = []
    every = max(1, len(events) // samples)

    async def drive() -> None:
        for n, event in enumerate(events):
            key = event["task_id"].encode()
            message = _Message(json.dumps(event).encode(), key, hash(key) % PARTITIONS)

            async def one(m: _Message = message) -> AsyncIterator[_Event]:
                yield _Event(m)

            await consume(one(), ctx, event["type"], APPLY[event["type"]])
            if n % every == 0:
                held.append(len(ctx.store.table))

    started = time.perf_counter()
    asyncio.run(drive())
    return {
        "events": len(events),
        "seconds": round(time.perf_counter() - started, 2),
        "peak_tasks_held": max(held),
        "final_tasks_held": len(ctx.store.table),
        "evicted": ctx.counters.evicted,
        "too_late": ctx.counters.dead_lettered.get("too_late", 0),
    }


def bytes_per_task(events: list[dict[str, Any]]) -> dict[str, Any]:
    ctx = _context(10**15)
    for event in events:  # warm: build the states, then measure a copy of the table
        key = event["task_id"].encode()
        message = _Message(json.dumps(event).encode(), key, 0)

        async def one(m: _Message = message) -> AsyncIterator[_Event]:
            yield _Event(m)

        asyncio.run(consume(one(), ctx, event["type"], APPLY[event["type"]]))
    stored: dict[str, str] = dict(ctx.store.table)
    # What the store holds (compact JSON text), beside the same states as parsed
    # dicts (what Faust's JSON serializer would otherwise keep): the baseline.
    held = {"as_text": _measure(lambda: {k: "".join(v) for k, v in stored.items()})}
    held["as_dicts_baseline"] = _measure(lambda: {k: json.loads(v) for k, v in stored.items()})
    events_per_task = sum(len(json.loads(v)["seen"]) for v in stored.values()) / len(stored)
    return {
        "tasks": len(stored),
        "events_per_task": round(events_per_task, 2),
        "bytes_per_task": {k: round(v / len(stored)) for k, v in held.items()},
        "changelog_bytes_per_task": round(sum(map(len, stored.values())) / len(stored)),
    }


def _measure(build: Any) -> int:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return after - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--retention-days", type=float, default=7)
    args = parser.parse_args()

    events = sorted(
        generate(args.tasks, seed=3, days=args.days),
        key=lambda e: (str(e["ts"]), e["event_id"]),  # event-time order, as a live feed
    )
    memory = bytes_per_task(events[: len(events) // 10])
    print(
        f"state per task: {memory['bytes_per_task']['as_text']:,} bytes in memory "
        f"(as parsed dicts, the baseline: {memory['bytes_per_task']['as_dicts_baseline']:,}); "
        f"{memory['changelog_bytes_per_task']:,} bytes per changelog record; "
        f"{memory['events_per_task']} events per task, {memory['tasks']:,} tasks"
    )
    retention_ms = int(args.retention_days * 86_400_000)
    bounded = run(events, retention_ms)
    baseline = run(events, 10**15)
    for label, result in (("retention", bounded), ("no retention (baseline)", baseline)):
        print(
            f"{label:>24}: peak {result['peak_tasks_held']:,} tasks held, "
            f"{result['final_tasks_held']:,} at the end, {result['evicted']:,} evicted, "
            f"{result['too_late']:,} too late, {result['events']:,} events in "
            f"{result['seconds']} s"
        )
    out = Path(__file__).parent / "results" / "state.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "args": vars(args),
                "memory": memory,
                "with_retention": bounded,
                "baseline_no_retention": baseline,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
