"""Disordered workloads cut into waves, the way users feed one data directory over time.

A wave is what one ``costflow replay`` (or one ``up`` session) sees. Later waves hold
what arrives late in real life: a second, different outcome for a task already
decided, calls for tasks whose outcome is in, re-deliveries of earlier events
(producer retries), and malformed records. The reference is computed over every
event of every wave: the pipeline must equal it whatever happened between waves.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from typing import Any

from pipeline.demo.workload import bad_records, generate


def _later(ts: str, minutes: int) -> str:
    return (datetime.fromisoformat(ts) + timedelta(minutes=minutes)).isoformat()


def late_events(events: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """New events that change what earlier waves decided: flipped outcomes, late calls,
    and calls of tasks that never get a task event."""
    out: list[dict[str, Any]] = []
    outcomes = [e for e in events if e["type"] == "outcome"]
    for i, outcome in enumerate(rng.sample(outcomes, max(1, len(outcomes) // 4))):
        flipped = "accepted" if outcome["outcome"] != "accepted" else "rejected"
        out.append({**outcome, "event_id": f"late-outcome-{i}-{outcome['event_id']}",
                    "ts": _later(outcome["ts"], 90), "outcome": flipped})  # fmt: skip
    calls = [e for e in events if e["type"] == "call"]
    for i, call in enumerate(rng.sample(calls, max(1, len(calls) // 20))):
        out.append({**call, "event_id": f"late-call-{i}-{call['event_id']}",
                    "ts": _later(call["ts"], 30), "attempt": 1, "retry_of": None})  # fmt: skip
    for i, call in enumerate(rng.sample(calls, max(1, len(calls) // 50))):
        out.append({**call, "event_id": f"orphan-call-{i}", "task_id": f"orphan-task-{i}",
                    "ts": _later(call["ts"], 5), "retry_of": None})  # fmt: skip
    return out


def waves(tasks: int, seed: int, count: int) -> list[list[bytes]]:
    """``count`` waves of JSON lines (events and malformed records), shuffled within each.

    The first waves split the base workload at random points; the last wave adds
    the late events, and every wave after the first re-delivers 5% of earlier ones.
    """
    rng = random.Random(seed)
    base = generate(tasks, seed=seed)
    rng.shuffle(base)
    cuts = sorted(rng.sample(range(1, len(base)), count - 1)) if count > 1 else []
    parts = [base[a:b] for a, b in zip([0, *cuts], [*cuts, len(base)], strict=True)]
    parts[-1] = parts[-1] + late_events(base, rng)
    lines: list[list[bytes]] = []
    sent: list[dict[str, Any]] = []
    for index, part in enumerate(parts):
        wave = list(part)
        if sent:
            wave += rng.sample(sent, max(1, len(sent) // 20))
        rng.shuffle(wave)
        sent += part
        encoded = [json.dumps(e, separators=(",", ":")).encode() for e in wave]
        encoded.append(bad_records()[index % len(bad_records())])
        lines.append(encoded)
    return lines


def events_of(wave_lines: list[list[bytes]]) -> list[dict[str, Any]]:
    """Every well-formed event of every wave (duplicates included), for the reference."""
    out = []
    for wave in wave_lines:
        for line in wave:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and not str(event.get("event_id", "")).startswith("bad-"):
                out.append(event)
    return out
