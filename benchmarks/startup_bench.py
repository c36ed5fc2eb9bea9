"""Start-up and stop of ``costflow up`` on the durable embedded stack.

Not a test: it prints figures and writes JSON. For a fresh data directory and for
one that already holds a workload (the broker's log, the stage-1 changelog to
recover, chDB), it measures: seconds until ``up`` says it started, seconds until
one task produced right then is processed by both stages, and seconds from
Ctrl-C to exit (drain included).

    .venv/bin/python -m benchmarks.startup_bench --tasks 2000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.results_file import write_result
from pipeline.config import KafkaSettings, Settings, StackSettings
from pipeline.demo.workload import generate, write_jsonl
from pipeline.embedded.broker import free_port, wait_until_ready
from pipeline.kafka.produce import produce_lines
from pipeline.runtime.progress import PipelineProgress


def session(data_dir: Path, lines: list[bytes], log: Path) -> dict[str, float]:
    port = free_port()
    settings = Settings(stack=StackSettings(data_dir=data_dir))
    env = dict(os.environ)
    env.update(settings.env())
    del env["COSTFLOW_KAFKA_BOOTSTRAP"]
    env["COSTFLOW_KAFKA_EMBEDDED_PORT"] = str(port)
    began = time.perf_counter()
    with log.open("ab") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "up"], env=env, stdout=out, stderr=out
        )
    kafka = KafkaSettings(bootstrap=f"127.0.0.1:{port}")
    wait_until_ready(kafka.resolved_bootstrap(), 120, up)
    runs = log.read_text(errors="replace").count("sink started in")
    while log.read_text(errors="replace").count("sink started in") <= runs:
        if up.poll() is not None:
            raise SystemExit(f"costflow up exited; see {log}")
        time.sleep(0.05)  # a line in a file cannot be awaited otherwise
    started = time.perf_counter() - began
    produce_lines(kafka, settings.topics, lines)
    with PipelineProgress(settings.replace(kafka=kafka)) as progress:
        progress.wait_flushed(1800)
    processed = time.perf_counter() - began
    stop_began = time.perf_counter()
    up.send_signal(signal.SIGINT)
    up.wait(600)
    return {
        "started_s": round(started, 2),
        "processed_s": round(processed, 2),
        "stop_s": round(time.perf_counter() - stop_began, 2),
    }


def run(tasks: int, out: Path) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="costflow-startup-"))
    one = list(write_jsonl(generate(1, seed=5, duplicate_share=0.0)))
    load = list(write_jsonl(generate(tasks, seed=6)))
    data = work / "data"
    log = work / "up.log"
    fresh = session(data, one, log)
    loaded = session(data, load, log)
    restart = session(data, list(write_jsonl(generate(1, seed=7, duplicate_share=0.0))), log)
    result = {
        "benchmark": "startup",
        "fresh_data_dir": fresh,
        "loading": {"tasks": tasks, "events": len(load), **loaded},
        "restart_with_data": restart,
    }
    return write_result(out, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/startup.json"))
    args = parser.parse_args()
    print(json.dumps(run(args.tasks, args.out), indent=2))


if __name__ == "__main__":
    main()
