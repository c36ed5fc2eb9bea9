"""Stage-1 and pipeline throughput on one broker, beside that broker's plain consume rate.

Not a test: it prints figures and writes JSON. One run, one broker, the same records,
so the ratios are meaningful on a noisy shared machine:

- the ceiling: a plain aiokafka consumer reading the records and parsing each value
  with ``json.loads`` (and, beside it, the same consumer without the parse);
- stage 1 alone: one worker and the broker (the sink not running);
- the sink alone: stage 1's outputs of that run, as a backlog, into ClickHouse, in
  records per second beside the rate stage 1 produced them at;
- the whole embedded pipeline: broker, worker and sink on this machine;
- two workers on one topic set, against one worker on the same records;
- event-to-queryable latency at a steady produce rate: from producing a call to its
  row in ClickHouse (``calls.ingested_at``; the sink writes a task's row in the same
  batch, and ``v_cost_per_outcome`` reads it at once);
- the worker's peak resident memory, with the settings that bound it.

    .venv/bin/python -m benchmarks.pipeline_bench --tasks 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
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
from pipeline.kafka.produce import produce_file, produce_lines
from pipeline.kafka.topics import ensure_topics
from pipeline.runtime.progress import PipelineProgress, wait_for_group
from pipeline.runtime.supervisor import Stack


def _rate_after_first_batch(batches: list[tuple[float, int]]) -> float:
    """Records per second from the first batch's arrival on: fetch start-up is not throughput."""
    (t0, _first), rest = batches[0], batches[1:]
    if not rest:
        return float("nan")
    return sum(n for _, n in rest) / (rest[-1][0] - t0)


def raw_aiokafka_rate(bootstrap: str, ends: dict[tuple[str, int], int], decode: bool) -> float:
    """The client Faust uses, without Faust: the ceiling for stage 1 on this machine.

    With ``decode`` every value is parsed with the standard library's ``json.loads``
    (the plain consumer the throughput issue measured: consume + JSON decode)."""
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
            if decode:
                for records in fetched.values():
                    for record in records:
                        json.loads(record.value)
            if got:
                seen += got
                batches.append((time.perf_counter(), got))
        await consumer.stop()
        return _rate_after_first_batch(batches)

    return asyncio.run(run())


def _settings(work: Path, kafka: KafkaSettings, name: str) -> Settings:
    return Settings(
        stack=StackSettings(data_dir=work / name),
        kafka=kafka,
        topics=TopicSettings.with_prefix(f"bench-{name}."),
        clickhouse=ClickHouseSettings(database=f"bench_{name.replace('-', '_')}"),
        worker=WorkerSettings(app_id=f"bench-{name}-stage1"),
        sink=SinkSettings(group_id=f"bench-{name}-sink"),
    )


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def _stacks(settings: Settings, workers: int, sink: bool) -> Iterator[list[Stack]]:
    """``workers`` worker processes in one group (each its own data directory), and the
    sink if asked."""
    stacks = []
    try:
        for n in range(workers):
            own = settings.replace(stack=StackSettings(data_dir=settings.stack.data_dir / f"w{n}"))
            roles = ("sink", "worker") if sink and n == 0 else ("worker",)
            stacks.append(Stack(own, log_dir=own.stack.data_dir / "logs", roles=roles).start())
        yield stacks
    finally:
        for stack in reversed(stacks):
            stack.stop()


def _check(stacks: list[Stack]) -> None:
    for stack in stacks:
        stack.check_alive()


def _consumed_rate(probe: LagProbe, targets: dict[tuple[str, int], int], check: Any) -> float:
    """Records per second the group commits, from its first commit after the wait
    began to the last: a backlog consumed, start-up (group join, recovery) left out."""
    total = sum(targets.values())
    first: tuple[float, int] | None = None
    # Offsets committed before the wait (the warm-up's) are not this backlog's.
    before = total - probe.remaining(targets)
    deadline = time.monotonic() + 1800
    while True:
        check()
        done = total - probe.remaining(targets)
        now = time.perf_counter()
        if first is None and done > before:
            first = (now, done)
        if done >= total:
            break
        assert time.monotonic() < deadline, "stage 1 did not finish the backlog in 30 min"
        time.sleep(0.05)
    if first is None or now == first[0]:
        return float("nan")
    return (total - first[1]) / (now - first[0])


def stage1_rate(
    work: Path, kafka: KafkaSettings, name: str, warm: Path, main: Path, workers: int
) -> dict[str, Any]:
    """Events per second ``workers`` stage-1 workers alone consume from a backlog: the
    workers warm up, stop, the records are produced, the workers start again, and the
    rate is taken over their commits (so neither producing nor start-up is in it)."""
    settings = _settings(work, kafka, name)
    ensure_topics(kafka, settings.topics)
    probe = LagProbe(kafka, settings.worker.app_id)
    with _stacks(settings, workers, sink=False) as stacks:
        produce_file(kafka, settings.topics, warm)
        wait_for_group(probe, probe.end_offsets(settings.topics.inputs()), "warm-up", 600,
                       lambda: _check(stacks))  # fmt: skip
        for stack in stacks:
            stack.stop_role("worker")
        produce_file(kafka, settings.topics, main)
        targets = probe.end_offsets(settings.topics.inputs())
        for stack in stacks:
            stack.respawn("worker")
        rate = _consumed_rate(probe, targets, lambda: _check(stacks))
        peak = max(_peak_rss_mb(s.children["worker"].pid) for s in stacks)
    probe.close()
    return {"events_per_s": rate, "worker_peak_rss_mb": peak}


def sink_rate(
    work: Path, kafka: KafkaSettings, stage1: dict[str, Any], inputs: int
) -> dict[str, Any]:
    """Records per second the sink alone stores from stage 1's outputs (the backlog
    ``stage1_rate(name="stage1")`` left), against the rate stage 1 produced them at:
    stage 1's events per second times its output records per input event."""
    settings = _settings(work, kafka, "stage1")
    settings = settings.replace(stack=StackSettings(data_dir=work / "stage1-sink"))
    probe = LagProbe(kafka, settings.sink.group_id)
    targets = probe.end_offsets(settings.topics.sink_inputs())
    outputs = sum(targets.values())
    stack = Stack(settings, log_dir=settings.stack.data_dir / "logs", roles=("sink",))
    try:
        stack.start()
        rate = _consumed_rate(probe, targets, stack.check_alive)
        peak = _peak_rss_mb(stack.children["sink"].pid)
    finally:
        stack.stop()
        probe.close()
    produced = stage1["events_per_s"] * outputs / inputs
    return {
        "records_per_s": rate,
        "output_records": outputs,
        "outputs_per_input_event": outputs / inputs,
        "stage1_outputs_per_s": produced,
        "sink_over_stage1": rate / produced,
        "sink_peak_rss_mb": peak,
    }


def pipeline_rate(
    work: Path, kafka: KafkaSettings, warm: Path, main: Path, n: int
) -> dict[str, Any]:
    """Events per second through worker and sink into ClickHouse, warm."""
    settings = _settings(work, kafka, "pipeline")
    ensure_topics(kafka, settings.topics)
    with (
        _stacks(settings, 1, sink=True) as stacks,
        PipelineProgress(settings) as progress,
    ):
        produce_file(kafka, settings.topics, warm)
        progress.wait_flushed(1800, lambda: _check(stacks))
        started = time.perf_counter()
        produce_file(kafka, settings.topics, main)
        produced_s = time.perf_counter() - started
        flushed = progress.wait_flushed(1800, lambda: _check(stacks))
        seconds = time.perf_counter() - started
    return {
        "events_per_s": n / seconds,
        "seconds": seconds,
        "produce_seconds": produced_s,
        "stage1_done_after_s": produced_s + flushed.stage1_s,
        "stage2_extra_s": flushed.stage2_s,
    }


def latency(work: Path, kafka: KafkaSettings, rate: int, seconds: int) -> dict[str, Any]:
    """Produce-to-row latency of calls at a steady ``rate`` events/s for ``seconds``."""
    settings = _settings(work, kafka, "latency")
    ensure_topics(kafka, settings.topics)
    events = generate(max(1, rate * seconds // 12), seed=44)[: rate * seconds]
    with (
        _stacks(settings, 1, sink=True) as stacks,
        PipelineProgress(settings) as progress,
    ):
        produce_lines(kafka, settings.topics, write_jsonl(generate(50, seed=45)))
        progress.wait_flushed(600, lambda: _check(stacks))
        chunk = max(1, rate // 10)  # every 0.1 s
        wall_start = datetime.now(UTC)
        started = time.perf_counter()
        for i in range(0, len(events), chunk):
            now = datetime.now(UTC).isoformat()
            lines = [json.dumps({**e, "ts": now}).encode() for e in events[i : i + chunk]]
            produce_lines(kafka, settings.topics, lines)
            pause = started + (i + chunk) / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        achieved = len(events) / (time.perf_counter() - started)
        progress.wait_flushed(1800, lambda: _check(stacks))
        sink_settings = stacks[0].settings
    from pipeline.clickhouse.client import connect

    client = connect(sink_settings.clickhouse, sink_settings.stack, create=False)
    p50, p99, n = client.query(
        "SELECT quantileExact(0.5)(d), quantileExact(0.99)(d), count() FROM "
        "(SELECT dateDiff('millisecond', ts, ingested_at) AS d FROM calls "
        "WHERE ts >= %(t)s)",
        parameters={"t": wall_start},
    ).result_rows[0]
    return {"target_events_per_s": rate, "achieved_events_per_s": achieved,
            "calls_measured": n, "latency_p50_ms": p50, "latency_p99_ms": p99}  # fmt: skip


def run(tasks: int, warmup_tasks: int, out: Path, latency_rate: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="costflow-bench-"))
    events = generate(tasks, seed=42)
    main = work / "events.jsonl"
    main.write_bytes(b"\n".join(write_jsonl(events)) + b"\n")
    warm = work / "warmup.jsonl"
    warm.write_bytes(b"\n".join(write_jsonl(generate(warmup_tasks, seed=43))) + b"\n")
    n = len(events)
    worker = WorkerSettings()
    with EmbeddedBroker() as broker:
        kafka = KafkaSettings(bootstrap=broker.bootstrap)
        raw_topics = TopicSettings.with_prefix("bench-raw.")
        ensure_topics(kafka, raw_topics)
        produce_file(kafka, raw_topics, main)
        probe = LagProbe(kafka, "bench-probe")
        ends = probe.end_offsets(raw_topics.inputs())
        consume_only = raw_aiokafka_rate(broker.bootstrap, ends, decode=False)
        ceiling = raw_aiokafka_rate(broker.bootstrap, ends, decode=True)
        probe.close()
        one = stage1_rate(work, kafka, "stage1", warm, main, workers=1)
        # Stage 1 read the warm-up file and then the main one.
        warm_n = sum(1 for line in warm.read_bytes().splitlines() if line.strip())
        sink_alone = sink_rate(work, kafka, one, n + warm_n)
        two = stage1_rate(work, kafka, "stage1-x2", warm, main, workers=2)
        whole = pipeline_rate(work, kafka, warm, main, n)
        steady = latency(work, kafka, latency_rate, 30) if latency_rate else None
    result = {
        "benchmark": "pipeline",
        "broker": "embedded Tansu, in memory, same machine",
        "events": n,
        "tasks": tasks,
        "raw_consume_aiokafka_per_s": consume_only,
        "ceiling_consume_and_decode_per_s": ceiling,
        "stage1_one_worker": {**one, "share_of_ceiling": one["events_per_s"] / ceiling},
        "sink_alone": sink_alone,
        "stage1_two_workers": {**two, "share_of_ceiling": two["events_per_s"] / ceiling},
        "pipeline": {**whole, "share_of_ceiling": whole["events_per_s"] / ceiling},
        "latency": steady,
        "memory_bound": {
            "max_poll_records": worker.max_poll_records,
            "max_fetches_in_flight": worker.max_fetches_in_flight,
            "note": "records in flight <= max_poll_records x max_fetches_in_flight",
        },
    }
    return write_result(out, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--warmup-tasks", type=int, default=300)
    parser.add_argument("--latency-rate", type=int, default=10_000,
                        help="events/s for the latency run (0: skip it)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pipeline.json"))
    args = parser.parse_args()
    r = run(args.tasks, args.warmup_tasks, args.out, args.latency_rate)
    ceiling = r["ceiling_consume_and_decode_per_s"]
    print()
    print(f"events                          {r['events']:>10,}")
    print(f"plain consume (aiokafka)        {r['raw_consume_aiokafka_per_s']:>10,.0f} records/s")
    print(f"plain consume + JSON decode     {ceiling:>10,.0f} records/s (the ceiling)")
    for label, key in (("stage 1, one worker", "stage1_one_worker"),
                       ("stage 1, two workers", "stage1_two_workers"),
                       ("whole pipeline", "pipeline")):  # fmt: skip
        part = r[key]
        print(f"{label:<32}{part['events_per_s']:>10,.0f} events/s "
              f"({part['share_of_ceiling']:.0%} of the ceiling)")  # fmt: skip
    sink = r["sink_alone"]
    print(f"sink alone, from a backlog      {sink['records_per_s']:>10,.0f} records/s "
          f"({sink['sink_over_stage1']:.2f}x the {sink['stage1_outputs_per_s']:,.0f} records/s "
          f"stage 1 produced them at)")  # fmt: skip
    peak = r["stage1_one_worker"]["worker_peak_rss_mb"]
    print(f"worker peak memory              {peak:>10,.0f} MiB")
    if r["latency"]:
        lat = r["latency"]
        print(f"latency at {lat['achieved_events_per_s']:,.0f} events/s     "
              f"p50 {lat['latency_p50_ms']:,} ms, p99 {lat['latency_p99_ms']:,} ms")  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
