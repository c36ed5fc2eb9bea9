"""The built wheel, installed outside the checkout, finds its own migrations, price
book and schemas, and runs the pipeline: what a Docker image or `pip install` gets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, f"costflow {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_installed_wheel_migrates_prices_and_replays(tmp_path: Path) -> None:
    wheels, site, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    # Built from the files a clean clone has (tracked, and new ones not ignored): a
    # checkout's stale build/ directory would otherwise leak removed files into it.
    source = tmp_path / "source"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True, timeout=60,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        check=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    wheel = next(wheels.glob("costflow-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
         str(wheel)],
        check=True, timeout=600,
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("COSTFLOW_")}
    # The installed copy first on the path: the checkout's editable install comes after.
    env.update(PYTHONPATH=str(site), COSTFLOW_DATA_DIR=str(work / "data"))
    where = subprocess.run(
        [sys.executable, "-c", "import pipeline.resources as r; print(r.__file__);"
         "print(r.sql_dir()); print(r.default_price_book())"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert all(path.startswith(str(site)) for path in where), where
    # The integrations are in the wheel too: the emitter, the mappers, both ingest stages.
    modules = ("pipeline.emit.emitter", "pipeline.ingest.usage.detect", "pipeline.ingest.otlp",
               "pipeline.runtime.collector", "pipeline.runtime.ingest_otlp")  # fmt: skip
    found = subprocess.run(
        [sys.executable, "-c", "import importlib, sys\nfor m in sys.argv[1:]: "
         "print(importlib.import_module(m).__file__)", *modules],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert len(found) == len(modules) and all(f.startswith(str(site)) for f in found), found

    assert "0008_task_states" in run(["migrate"], work, env)
    call = {"type": "call", "event_id": "c1", "task_id": "t1", "ts": "2026-11-02T10:00:00Z",
            "provider": "openai", "model": "gpt-4o-mini",
            "usage": {"input_tokens": 1_000_000, "output_tokens": 1_000_000}}  # fmt: skip
    # A model only the shipped community layer prices (LiteLLM's list): the wheel has it.
    community = {**call, "event_id": "c2", "model": "gpt-5.4",
                 "usage": {"input_tokens": 100_000, "output_tokens": 1_000_000}}  # fmt: skip
    lines = run(["price"], work, env, json.dumps(call) + "\n" + json.dumps(community) + "\n")
    priced, from_layer = (json.loads(line) for line in lines.splitlines()[:2])
    # gpt-4o-mini: $0.15 per million input tokens, $0.60 per million output tokens.
    assert priced["cost"]["total"] == "0.75"
    assert priced["cost"]["price_book_version"].startswith("default@")
    # gpt-5.4 below its 272k-token tier: 100,000 x $2.50 + 1,000,000 x $15.00 per million
    assert Decimal(from_layer["cost"]["total"]) == Decimal("15.25"), from_layer

    events = work / "one-task.jsonl"
    outcome = {"type": "outcome", "event_id": "o1", "task_id": "t1",
               "ts": "2026-11-02T10:05:00Z", "outcome": "accepted", "source": "user"}  # fmt: skip
    events.write_text(json.dumps(call) + "\n" + json.dumps(outcome) + "\n", encoding="utf-8")
    run(["replay", str(events)], work, env)
    query = "SELECT task_id, calls, total_cost, outcome FROM tasks FINAL"
    rows = run(["sql", query, "--format", "TabSeparated"], work, env)
    assert rows.split() == ["t1", "1", "0.75", "accepted"]
    # The HTML report from the installed copy (plotly is a runtime dependency).
    run(["report", "--html", str(work / "report.html")], work, env)
    page = (work / "report.html").read_text(encoding="utf-8")
    assert "plotly.js v" in page and "<td>$0.7500</td>" in page
