"""A plain reference model of the alert inputs: calls in a list, sums by loops.

The unit tests evaluate rules over it with hand-worked numbers; the integration
test checks ClickHouse's inputs give the same sums over the same calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from pipeline.query.alert_inputs import (
    CallPoint,
    Key,
    Sums,
    TaskHour,
    TaskLine,
    ceil_hour,
    floor_hour,
)
from pipeline.query.noise import ArmSums


@dataclass(frozen=True)
class Call:
    ts: datetime
    cost: Decimal
    labels: Mapping[str, str] = field(default_factory=dict)
    unpriced: bool = False
    retried: bool = False
    tokens: int = 0  # every token class together
    # Of ``tokens``: read from and written to the prompt cache (both prompt tokens),
    # and the completion (output); the rest is uncached input.
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        return self.tokens - self.output_tokens

    def label(self, name: str) -> str:
        return self.labels.get(name, "")


@dataclass(frozen=True)
class Task:
    first_event_at: datetime
    cost: Decimal
    outcome: str = "accepted"  # "" while none has arrived
    deadline: datetime | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    task_id: str = ""
    calls: int = 1
    last_event_at: datetime | None = None  # None: first_event_at
    unpriced_calls: int = 0

    def label(self, name: str) -> str:
        return self.labels.get(name, "")


def _one(call: Call) -> Sums:
    return Sums(1, int(call.unpriced), int(call.retried), call.tokens, call.cost,
                call.cache_read_tokens, call.prompt_tokens)  # fmt: skip


@dataclass
class MemoryInputs:
    calls: list[Call] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)

    def _matching(self, match: Mapping[str, str]) -> list[Call]:
        return [c for c in self.calls if all(c.label(k) == v for k, v in match.items())]

    def sums(
        self, group_by: Sequence[str], match: Mapping[str, str], start: datetime, end: datetime
    ) -> dict[Key, Sums]:
        out: dict[Key, Sums] = {}
        for call in self._matching(match):
            if start <= call.ts < end:
                key = tuple(call.label(g) for g in group_by)
                out[key] = out.get(key, Sums()) + _one(call)
        return out

    def hourly(
        self, group_by: Sequence[str], match: Mapping[str, str], start: datetime, end: datetime
    ) -> dict[Key, dict[datetime, Sums]]:
        out: dict[Key, dict[datetime, Sums]] = {}
        for call in self._matching(match):
            hour = floor_hour(call.ts)
            if ceil_hour(start) <= hour < floor_hour(end):
                key = tuple(call.label(g) for g in group_by)
                series = out.setdefault(key, {})
                series[hour] = series.get(hour, Sums()) + _one(call)
        return out

    def first_unpriced(self, start: datetime, end: datetime) -> dict[Key, datetime]:
        first: dict[Key, datetime] = {}
        for call in self.calls:
            if call.unpriced and call.ts < end:
                key = (call.label("provider"), call.label("model"))
                hour = floor_hour(call.ts)
                first[key] = min(first.get(key, hour), hour)
        return {k: h for k, h in first.items() if h >= floor_hour(start)}

    def _tasks(self, match: Mapping[str, str]) -> list[Task]:
        return [t for t in self.tasks if all(t.label(k) == v for k, v in match.items())]

    def decided_tasks(
        self, group_by: Sequence[str], match: Mapping[str, str], start: datetime,
        end: datetime, decided_by: datetime,
    ) -> dict[Key, ArmSums]:  # fmt: skip
        out: dict[Key, ArmSums] = {}
        for t in self._tasks(match):
            closed = t.deadline is not None and t.deadline <= decided_by
            if start <= t.first_event_at < end and (t.outcome or closed):
                key = tuple(t.label(g) for g in group_by)
                accepted = t.outcome == "accepted"
                one = ArmSums(1, int(accepted), t.cost, t.cost if accepted else Decimal(0),
                              float(t.cost) ** 2, int(t.unpriced_calls > 0))  # fmt: skip
                out[key] = out.get(key, ArmSums.none()) + one
        return out

    def task_hourly(
        self, group_by: Sequence[str], match: Mapping[str, str], start: datetime,
        end: datetime, decided_by: datetime,
    ) -> dict[Key, dict[datetime, TaskHour]]:  # fmt: skip
        out: dict[Key, dict[datetime, TaskHour]] = {}
        for t in self._tasks(match):
            hour = floor_hour(t.first_event_at)
            if not ceil_hour(start) <= hour < floor_hour(end):
                continue
            closed = t.deadline is not None and t.deadline <= decided_by
            decided = bool(t.outcome) or closed
            waste = t.outcome in ("rejected", "failed") or (not t.outcome and closed)
            zero = Decimal(0)
            one = TaskHour(1, t.calls, t.unpriced_calls, t.cost, int(decided),
                           t.calls if decided else 0, t.unpriced_calls if decided else 0,
                           t.cost if decided else zero, int(t.outcome == "accepted"),
                           t.cost if waste else zero)  # fmt: skip
            series = out.setdefault(tuple(t.label(g) for g in group_by), {})
            series[hour] = series.get(hour, TaskHour()) + one
        return out

    def cost_histogram(
        self, group_by: Sequence[str], match: Mapping[str, str], first_day: date,
        end_day: date,
    ) -> dict[Key, dict[int, tuple[int, Decimal]]]:  # fmt: skip
        out: dict[Key, dict[int, tuple[int, Decimal]]] = {}
        for t in self._tasks(match):
            if first_day <= t.first_event_at.date() < end_day:
                b = -32768 if t.cost <= 0 else math.floor(math.log(t.cost) / math.log(1.01))
                bins = out.setdefault(tuple(t.label(g) for g in group_by), {})
                n, cost = bins.get(b, (0, Decimal(0)))
                bins[b] = (n + 1, cost + t.cost)
        return out

    def costly_tasks(
        self, match: Mapping[str, str], active_since: datetime, before: datetime,
        min_cost: Decimal | None, min_calls: int | None,
    ) -> list[TaskLine]:  # fmt: skip
        out = []
        for t in self._tasks(match):
            last = t.last_event_at or t.first_event_at
            over = (min_cost is not None and t.cost >= min_cost) or (
                min_calls is not None and t.calls >= min_calls
            )
            if last >= active_since and t.first_event_at < before and over:
                out.append(TaskLine(t.task_id, t.label("scenario_id"), t.label("owner"),
                                    t.label("environment"), t.cost, t.calls, 0, last))  # fmt: skip
        return sorted(out, key=lambda line: line.task_id)

    def task_calls(self, task_ids: Sequence[str], until: datetime) -> dict[str, list[CallPoint]]:
        out: dict[str, list[CallPoint]] = {}
        for call in sorted(self.calls, key=lambda c: c.ts):
            if call.label("task_id") in task_ids and call.ts <= until:
                point = CallPoint(call.ts, 1, int(call.unpriced), call.cost)
                out.setdefault(call.label("task_id"), []).append(point)
        return out
