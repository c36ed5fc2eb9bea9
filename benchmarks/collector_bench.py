"""The HTTP collector under load on loopback, and SIGKILLed under load.

Not a test: it prints figures and writes JSON. One embedded broker, one collector
process (``costflow ingest http``), and the load from a second process (an aiohttp
client; bounded requests and time):

- requests/s, events/s and latency p50/p99 of ``POST /v1/events`` at a fixed
  concurrency, each request a batch of contract call events, every 2xx meaning the
  broker acknowledged every event of the request;
- the same load with the collector SIGKILLed mid-way: afterwards every event of every
  request answered 2xx must be in the calls topic (acknowledged means stored); the
  number missing is printed (it must be 0).

    .venv/bin/python -m benchmarks.collector_bench --requests 2000 --batch 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.results_file import write_result
from pipeline.config import KafkaSettings, TopicSettings
from pipeline.embedded.broker import EmbeddedBroker, free_port
from pipeline.kafka.offsets import topic_values
from pipeline.kafka.topics import ensure_topics


def _events(request: int, batch: int) -> bytes:
    lines = []
    for n in range(batch):
        task = f"bench-{request % 997}"
        lines.append(
            json.dumps(
                {
                    "type": "call",
                    "event_id": f"r{request}-e{n}",
                    "task_id": task,
                    "ts": "2026-12-01T10:00:00Z",
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "usage": {"input_tokens": 1200, "output_tokens": 300},
                }
            )
        )
    return "\n".join(lines).encode()


async def _load(
    url: str, requests: int, concurrency: int, batch: int, budget_s: float
) -> dict[str, Any]:
    """Send ``requests`` batches (until ``budget_s``); per request its latency and
    whether it was acknowledged (2xx). A refused connection ends the run."""
    import aiohttp

    pending = iter(range(requests))
    latencies: list[float] = []
    acked: list[int] = []
    failures: dict[str, int] = {}
    deadline = time.monotonic() + budget_s

    async def worker(session: aiohttp.ClientSession) -> None:
        for request in pending:
            if time.monotonic() > deadline:
                return
            body = _events(request, batch)
            started = time.perf_counter()
            try:
                async with session.post(f"{url}/v1/events", data=body) as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientError as error:
                failures[type(error).__name__] = failures.get(type(error).__name__, 0) + 1
                if isinstance(error, aiohttp.ClientConnectorError):
                    return  # the collector is gone
                continue
            latencies.append(time.perf_counter() - started)
            if 200 <= status < 300:
                acked.append(request)
            else:
                failures[str(status)] = failures.get(str(status), 0) + 1

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"elapsed_s": elapsed, "latencies_s": latencies, "acked": acked, "failures": failures}


def client_main(args: argparse.Namespace) -> None:
    result = asyncio.run(
        _load(args.url, args.requests, args.concurrency, args.batch, args.budget_s)
    )
    Path(args.out).write_text(json.dumps(result))


def _start_collector(
    bootstrap: str, topics: TopicSettings, port: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "COSTFLOW_KAFKA_BOOTSTRAP": bootstrap,
        "COSTFLOW_INGEST_HTTP_PORT": str(port),
    }
    env.update({f"COSTFLOW_TOPIC_{k.upper()}": str(v) for k, v in topics.model_dump().items()})
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "ingest", "http"],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"the collector exited; see {log}") from None
            time.sleep(0.1)  # polling a port that cannot be subscribed to
    raise SystemExit("the collector did not listen within 60 s")


def _client(
    url: str, requests: int, concurrency: int, batch: int, budget_s: float, out: Path
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.collector_bench", "--client", url,
         "--requests", str(requests), "--concurrency", str(concurrency),
         "--batch", str(batch), "--budget-s", str(budget_s), "--out", str(out)],
    )  # fmt: skip


def stored_event_ids(kafka: KafkaSettings, topic: str) -> set[str]:
    """Every event id in ``topic``, read from the beginning to its end."""
    return {json.loads(value)["event_id"] for value in topic_values(kafka, topic, 300)}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="collector-bench-"))
    topics = TopicSettings.with_prefix("bench.")
    results: dict[str, Any] = {"requests": args.requests, "batch": args.batch,
                               "concurrency": args.concurrency}  # fmt: skip
    with EmbeddedBroker(storage_dir=work / "broker") as broker:
        kafka = KafkaSettings(bootstrap=broker.bootstrap)
        ensure_topics(kafka, topics)
        port = free_port()
        collector = _start_collector(broker.bootstrap, topics, port, work / "collector.log")
        out = work / "load.json"
        _client(f"http://127.0.0.1:{port}", args.requests, args.concurrency, args.batch,
                args.budget_s, out).wait()  # fmt: skip
        load = json.loads(out.read_text())
        latencies = load["latencies_s"]
        ok = len(load["acked"])
        results["load"] = {
            "requests_per_s": ok / load["elapsed_s"],
            "events_per_s": ok * args.batch / load["elapsed_s"],
            "p50_ms": _percentile(latencies, 0.5) * 1000,
            "p99_ms": _percentile(latencies, 0.99) * 1000,
            "acked_requests": ok,
            "failures": load["failures"],
        }
        print(
            f"collector, {args.concurrency} concurrent clients, {args.batch} events/request: "
            f"{results['load']['requests_per_s']:,.0f} requests/s "
            f"({results['load']['events_per_s']:,.0f} events/s), latency p50 "
            f"{results['load']['p50_ms']:.1f} ms, p99 {results['load']['p99_ms']:.1f} ms, "
            f"failures {load['failures'] or 0}"
        )

        # SIGKILL under load: the second run's ids are disjoint from the first's
        kill_topics = TopicSettings.with_prefix("bench-kill.")
        ensure_topics(kafka, kill_topics)
        collector.terminate()
        collector.wait()
        collector = _start_collector(broker.bootstrap, kill_topics, port, work / "collector.log")
        client = _client(f"http://127.0.0.1:{port}", args.requests, args.concurrency,
                         args.batch, args.budget_s, out)  # fmt: skip
        deadline = time.monotonic() + args.budget_s
        while time.monotonic() < deadline and client.poll() is None:
            sent = _records_in(kafka, kill_topics.calls)
            if sent >= args.requests * args.batch // 3:
                break
            time.sleep(0.05)  # the topic's growth cannot be subscribed to: poll it
        collector.send_signal(signal.SIGKILL)
        collector.wait()
        client.wait()
        killed = json.loads(out.read_text())
        acked_ids = {f"r{r}-e{n}" for r in killed["acked"] for n in range(args.batch)}
        stored = stored_event_ids(kafka, kill_topics.calls)
        missing = len(acked_ids - stored)
        results["sigkill"] = {
            "acked_requests": len(killed["acked"]),
            "acked_events": len(acked_ids),
            "stored_events": len(stored),
            "acked_events_missing": missing,
        }
        print(
            f"SIGKILL under load: {len(killed['acked']):,} requests acknowledged "
            f"({len(acked_ids):,} events), {len(stored):,} events stored, "
            f"acknowledged events missing: {missing}"
        )
    return results


def _records_in(kafka: KafkaSettings, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**kafka.librdkafka(), "group.id": "collector-bench-probe"})
    try:
        metadata = consumer.list_topics(topic, timeout=5).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] for p in metadata
        )
    finally:
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--budget-s", type=float, default=120)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/collector.json"))
    args = parser.parse_args()
    if args.client:
        args.url = args.client
        client_main(args)
        return
    results = run(args)
    write_result(args.json, results)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
