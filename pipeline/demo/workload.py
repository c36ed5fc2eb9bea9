"""Generates a realistic, seeded event workload (contract v1 JSON lines).

Token sizes follow log-normal shapes fitted by eye to public traces (Azure LLM
inference 2023 conversation/code, Mooncake conversation), summarised here as
(mean, spread) so the generator ships without the data. Models, failures and
cache hits are assigned synthetically: the traces have no model names.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

START = datetime(2026, 11, 1, tzinfo=UTC)


def _lognormal(
    rng: random.Random, mean: float, sigma: float, lo: int = 1, hi: int = 400_000
) -> int:
    mu = math.log(mean) - sigma * sigma / 2
    return max(lo, min(hi, int(rng.lognormvariate(mu, sigma))))


@dataclass
class _Task:
    task_id: str
    scenario: str
    owner: str
    environment: str
    start: datetime
    events: list[dict[str, Any]]
    clock: datetime
    seq: int = 0
    # attributes.experiment on the task's lifecycle events; "" = not in an experiment.
    experiment: str = ""

    def next_id(self, kind: str) -> str:
        self.seq += 1
        return f"{self.task_id}-{kind}{self.seq}"

    def call(
        self,
        rng: random.Random,
        provider: str,
        model: str,
        role: str,
        prompt: int,
        output: int,
        *,
        cached_share: float = 0.0,
        cache_write: int = 0,
        reasoning: int = 0,
        status: str = "ok",
        attempt: int = 1,
        retry_of: str | None = None,
        fallback_from: str | None = None,
    ) -> str:
        self.clock += timedelta(milliseconds=rng.randint(200, 4000))
        cache_read = int(prompt * cached_share)
        event_id = self.next_id("c")
        failed = status in ("timeout", "rate_limited", "error")
        self.events.append(
            {
                "type": "call",
                "event_id": event_id,
                "task_id": self.task_id,
                "ts": _iso(self.clock),
                "provider": provider,
                "model": model,
                "usage": {
                    "input_tokens": max(0, prompt - cache_read - cache_write),
                    "cache_read_tokens": cache_read,
                    "cache_write_tokens": cache_write,
                    # Rate-limited calls bill nothing; timeouts may bill the prompt only.
                    "output_tokens": 0 if failed else output,
                    "reasoning_tokens": 0 if failed else reasoning,
                }
                if status != "rate_limited"
                else {"input_tokens": 0},
                "status": status,
                "attempt": attempt,
                **({"retry_of": retry_of} if retry_of else {}),
                **({"fallback_from": fallback_from} if fallback_from else {}),
                "role": role,
                "latency_ms": rng.randint(150, 20_000),
                "scenario_id": self.scenario,
                "environment": self.environment,
                "gateway": "edge-1",
            }
        )
        return event_id

    def lifecycle(self, phase: str) -> None:
        ts = self.start if phase == "started" else self.clock + timedelta(milliseconds=50)
        self.events.append(
            {
                "type": "task",
                "event_id": self.next_id("t"),
                "task_id": self.task_id,
                "ts": _iso(ts),
                "phase": phase,
                "scenario_id": self.scenario,
                "owner": self.owner,
                "environment": self.environment,
                **({"attributes": {"experiment": self.experiment}} if self.experiment else {}),
            }
        )

    def outcome(self, rng: random.Random, outcome: str, source: str, delay_max_s: int) -> None:
        ts = self.clock + timedelta(seconds=rng.randint(5, delay_max_s))
        self.events.append(
            {
                "type": "outcome",
                "event_id": self.next_id("o"),
                "task_id": self.task_id,
                "ts": _iso(ts),
                "outcome": outcome,
                "source": source,
            }
        )


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _with_retries(
    task: _Task, rng: random.Random, fail_p: float, fail_status: str, **call: Any
) -> bool:
    """A call retried up to 3 attempts; False if every attempt failed."""
    previous = None
    for attempt in range(1, 4):
        status = fail_status if rng.random() < fail_p else "ok"
        previous = task.call(rng, status=status, attempt=attempt, retry_of=previous, **call)
        if status == "ok":
            return True
    return False


def _support_chat(task: _Task, rng: random.Random) -> None:
    # A cheap classifier and generator; a quarter escalate to an expensive model.
    task.call(rng, "openai", "gpt-4o-mini", "classifier", _lognormal(rng, 600, 0.5), 8)
    prompt = _lognormal(rng, 1155, 0.9)
    ok = _with_retries(
        task,
        rng,
        0.05,
        "rate_limited",
        provider="openai",
        model="gpt-4o-mini",
        role="generator",
        prompt=prompt,
        output=_lognormal(rng, 211, 0.8),
        cached_share=0.3,
    )
    if not ok or rng.random() < 0.25:
        task.call(
            rng,
            "anthropic",
            "claude-sonnet-4-5-20250929",
            "generator",
            prompt,
            _lognormal(rng, 350, 0.7),
            fallback_from="gpt-4o-mini",
        )
    roll = rng.random()
    if roll < 0.78:
        task.outcome(rng, "accepted", "user", 3600)
    elif roll < 0.93:
        task.outcome(rng, "rejected", "user", 3600)


def _code_review(task: _Task, rng: random.Random) -> None:
    prompt = _lognormal(rng, 12_035, 1.0, hi=180_000)
    first = rng.random() < 0.4
    ok = _with_retries(
        task,
        rng,
        0.08,
        "timeout",
        provider="anthropic",
        model="claude-sonnet-4-5",
        role="generator",
        prompt=prompt,
        output=_lognormal(rng, 343, 0.9),
        cached_share=0.0 if first else 0.37,
        cache_write=int(prompt * 0.3) if first else 0,
    )
    if ok:
        task.call(
            rng,
            "anthropic",
            "claude-haiku-4-5",
            "critic",
            _lognormal(rng, 2500, 0.6),
            _lognormal(rng, 150, 0.6),
        )
    roll = rng.random()
    if not ok or roll < 0.10:
        task.outcome(rng, "failed", "system", 120)
    elif roll < 0.72:
        task.outcome(rng, "accepted", "quality_gate", 6 * 3600)
    else:
        task.outcome(rng, "rejected", "quality_gate", 6 * 3600)


def _doc_extract(task: _Task, rng: random.Random) -> None:
    # An A/B test: a cheaper extractor that returns invalid output more often.
    cheap = task.experiment == "cheap-extractor"
    ok = _with_retries(
        task,
        rng,
        0.25 if cheap else 0.12,
        "invalid_output",
        provider="openai",
        model="gpt-4o-mini" if cheap else "gpt-4.1-mini",
        role="extractor",
        prompt=_lognormal(rng, 2048, 0.8),
        output=_lognormal(rng, 28, 0.7),
    )
    if ok and rng.random() < 0.92:
        task.outcome(rng, "accepted", "quality_gate", 600)
    else:
        task.outcome(rng, "rejected", "quality_gate", 600)


def _research_agent(task: _Task, rng: random.Random) -> None:
    # Long chains with reasoning: the heavy tail of the bill.
    for _ in range(rng.randint(3, 8)):
        task.call(
            rng,
            "openai",
            "o4-mini",
            "generator",
            _lognormal(rng, 6000, 1.1, hi=150_000),
            _lognormal(rng, 500, 0.8),
            reasoning=_lognormal(rng, 2000, 1.0),
            cached_share=0.2,
        )
    if rng.random() < 0.05:
        # A model the price book does not know: priced NULL, counted, not guessed.
        task.call(rng, "acme", "acme-research-preview", "judge", 3000, 200)
    task.call(rng, "google", "gemini-2.5-flash", "judge", _lognormal(rng, 4000, 0.5), 60)
    roll = rng.random()
    if roll < 0.40:
        task.outcome(rng, "accepted", "business", 24 * 3600)
    elif roll < 0.75:
        task.outcome(rng, "rejected", "business", 24 * 3600)


def _runaway_agent(task: _Task, rng: random.Random) -> None:
    # An agent stuck in a tool loop: the same step, again and again, for minutes.
    for _ in range(60):
        task.call(rng, "openai", "o4-mini", "generator", _lognormal(rng, 12000, 0.3),
                  _lognormal(rng, 400, 0.3), reasoning=_lognormal(rng, 3000, 0.3),
                  cached_share=0.5)  # fmt: skip
    task.outcome(rng, "failed", "system", 600)


SCENARIOS = [
    # name, share, owner, environment, builder
    ("support-chat", 0.45, "support-platform", "prod", _support_chat),
    ("code-review", 0.20, "devtools", "prod", _code_review),
    ("doc-extract", 0.25, "data-eng", "prod", _doc_extract),
    ("research-agent", 0.10, "insights", "staging", _research_agent),
]


def generate(
    tasks: int,
    seed: int = 7,
    days: int = 7,
    duplicate_share: float = 0.01,
    spike: datetime | None = None,
    spike_tasks: int = 0,
    runaway: datetime | None = None,
) -> list[dict[str, Any]]:
    """Events for ``tasks`` tasks, in delivery order (by event time, some duplicated).

    With ``spike``, ``spike_tasks`` more research-agent tasks start within the hour
    from ``spike`` (a cost spike for the demo's alert rules to find); with
    ``runaway``, one research-agent task starting then loops through 60 calls.
    """
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    weights = [s[1] for s in SCENARIOS]
    spiked = [s for s in SCENARIOS if s[0] == "research-agent"] * spike_tasks
    for n in range(tasks + (spike_tasks if spike is not None else 0)):
        if n < tasks:
            name, _share, owner, environment, build = rng.choices(SCENARIOS, weights)[0]
            start = START + timedelta(seconds=rng.randint(0, days * 86_400 - 1))
        else:
            assert spike is not None
            name, _share, owner, environment, build = spiked[n - tasks]
            start = spike + timedelta(seconds=rng.randint(0, 3_599))
        task = _Task(f"task-{seed}-{n:07d}", name, owner, environment, start, [], start)
        if name == "doc-extract":
            task.experiment = "cheap-extractor" if n % 2 else "baseline"
        task.lifecycle("started")
        build(task, rng)
        task.lifecycle("completed")
        events.extend(task.events)
    if runaway is not None:
        task = _Task(f"task-{seed}-runaway", "research-agent", "insights", "staging", runaway,
                     [], runaway)  # fmt: skip
        task.lifecycle("started")
        _runaway_agent(task, rng)
        task.lifecycle("completed")
        events.extend(task.events)
    events.sort(key=lambda e: (e["ts"], e["event_id"]))
    # Producers retry: some events are delivered twice.
    for index in sorted(rng.sample(range(len(events)), int(len(events) * duplicate_share))):
        events.append(events[index])
    return events


def bad_records() -> list[bytes]:
    """Records the worker must dead-letter, each for a different reason."""
    return [
        b"this is not json",
        json.dumps(
            {
                "type": "call",
                "event_id": "bad-1",
                "task_id": "t-bad",
                "ts": "2026-11-02T00:00:00Z",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "usage": {"input_tokens": -5},
            }
        ).encode(),
        json.dumps(
            {
                "type": "outcome",
                "event_id": "bad-2",
                "task_id": "t-bad",
                "ts": "2026-11-02T00:00:00Z",
                "outcome": "maybe",
                "source": "user",
            }
        ).encode(),
    ]


def write_jsonl(
    events: list[dict[str, Any]], extra_lines: list[bytes] | None = None
) -> Iterator[bytes]:
    for event in events:
        yield json.dumps(event, separators=(",", ":")).encode()
    yield from extra_lines or []
