"""Pipeline throughput on the embedded stack, beside the raw consume rate of the same broker.

Not a test: it prints figures and writes JSON. Same run, same broker, same
records, so the ratio is meaningful on a noisy shared machine.

    .venv/bin/python -m benchmarks.pipeline_bench --tasks 4000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.results_file import write_result
from pipeline.config import (
    ClickHouseSettings,
    KafkaSettings,
    Settings,
    SinkSettings,
    StackSettings,
    TopicSettings,
    WorkerSettings,
)
from pipeline.demo.workload import generate, write_jsonl
from pipeline.embedded.broker import EmbeddedBroker
from pipeline.kafka.offsets import LagProbe
from pipeline.kafka.produce import produce_file
from pipeline.kafka.topics import ensure_topics
from pipeline.runtime.progress import PipelineProgress
from pipeline.runtime.supervisor import Stack


def _rate_after_first_batch(batches: list[tuple[float, int]]) -> float:
    """Records per second from the first batch's arrival on: fetch start-up is not throughput."""
    (t0, _first), rest = batches[0], batches[1:]
    if not rest:
        return float("nan")
    return sum(n for _, n in rest) / (rest[-1][0] - t0)


def raw_aiokafka_rate(bootstrap: str, ends: dict[tuple[str, int], int]) -> float:
    """The client Faust uses, without Faust: the ceiling for stage 1 on this machine."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as AioTP

    async def run() -> float:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        consumer.assign([AioTP(t, p) for (t, p) in ends])
        total, seen, batches = sum(ends.values()), 0, []
        while seen < total:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=2_000)
            got = sum(len(v) for v in fetched.values())
            if got:
                seen += got
                batches.append((time.perf_counter(), got))
        await consumer.stop()
        return _rate_after_first_batch(batches)

    return asyncio.run(run())


def run(tasks: int, warmup_tasks: int, out: Path, durable: bool = False) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="costflow-bench-"))
    events = generate(tasks, seed=42)
    main_file = work / "events.jsonl"
    main_file.write_bytes(b"\n".join(write_jsonl(events)) + b"\n")
    warm = generate(warmup_tasks, seed=43)
    warm_file = work / "warmup.jsonl"
    warm_file.write_bytes(b"\n".join(write_jsonl(warm)) + b"\n")

    with EmbeddedBroker(storage_dir=work / "broker" if durable else None) as broker:
        kafka = KafkaSettings(bootstrap=broker.bootstrap)
        # Baseline: the same records, raw, from the same broker.
        raw_topics = TopicSettings.with_prefix("bench-raw.")
        ensure_topics(kafka, raw_topics)
        produce_file(kafka, raw_topics, main_file)
        probe = LagProbe(kafka, "bench-probe")
        raw_ends = probe.end_offsets(raw_topics.inputs())
        aiokafka_rate = raw_aiokafka_rate(broker.bootstrap, raw_ends)

        settings = Settings(
            stack=StackSettings(data_dir=work / "data"),
            kafka=kafka,
            topics=TopicSettings.with_prefix("bench."),
            clickhouse=ClickHouseSettings(database="bench"),
            worker=WorkerSettings(app_id="bench-stage1"),
            sink=SinkSettings(group_id="bench-sink"),
        )
        with (
            Stack(settings, log_dir=work / "logs") as stack,
            PipelineProgress(settings) as progress,
        ):
            produce_file(kafka, settings.topics, warm_file)
            # Start-up, group joins and recovery are not throughput.
            progress.wait_flushed(1800, stack.check_alive)
            started = time.perf_counter()
            produce_file(kafka, settings.topics, main_file)
            produced_s = time.perf_counter() - started
            flushed = progress.wait_flushed(1800, stack.check_alive)
            total_s = time.perf_counter() - started
        probe.close()

    n = len(events)
    result = {
        "benchmark": "pipeline",
        "broker": "durable (file-backed object store)" if durable else "in memory",
        "events": n,
        "tasks": tasks,
        "pipeline_events_per_s": n / total_s,
        "pipeline_seconds": total_s,
        "produce_seconds": produced_s,
        "stage1_done_after_s": produced_s + flushed.stage1_s,
        "stage2_extra_s": flushed.stage2_s,
        "raw_consume_aiokafka_per_s": aiokafka_rate,
        "pipeline_share_of_raw_aiokafka": (n / total_s) / aiokafka_rate,
    }
    return write_result(out, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=4000)
    parser.add_argument("--warmup-tasks", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pipeline.json"))
    parser.add_argument(
        "--durable", action="store_true", help="the broker as the stack runs it: on disk"
    )
    args = parser.parse_args()
    result = run(args.tasks, args.warmup_tasks, args.out, args.durable)
    print()
    print(f"events                      {result['events']:>12,}")
    print(
        f"pipeline end to end         {result['pipeline_events_per_s']:>12,.0f} events/s "
        f"({result['pipeline_seconds']:.1f} s)"
    )
    print(f"raw consume, aiokafka       {result['raw_consume_aiokafka_per_s']:>12,.0f} records/s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
