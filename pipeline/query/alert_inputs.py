"""What alert rules read: call sums per label set over exact time windows, and hourly
series, from the call tables (docs/analytics.md).

A window ``[start, end)`` is summed from ``call_costs_hourly`` for its whole hours
and from the call rows themselves (``calls`` less ``call_cancellations``, the same
arithmetic the hourly view's materialized view applies) for the parts of an hour at
either end, so a 5-minute window is exact and a 30-day one stays cheap.

Labels are the call's own (scenario_id, owner, environment, provider, model as the
call reported them), empty strings where a call had none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import astuple, dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from pipeline.query.noise import ArmSums

HOUR = timedelta(hours=1)
Key = tuple[str, ...]
T = TypeVar("T")


@dataclass(frozen=True)
class Sums:
    """Call totals of one label set over a window.

    ``cost``: the known cost (a lower bound when ``unpriced_calls`` > 0), in the
    price book's currency; tokens are every token class together. ``prompt_tokens``:
    uncached input + cache-read + cache-write (5-minute and 1-hour) tokens, of which
    ``cache_read_tokens`` were read from the prompt cache (the text classes, as
    ``v_cache_economics_daily`` counts them for its hit rate).
    """

    calls: int = 0
    unpriced_calls: int = 0
    retried_calls: int = 0
    tokens: int = 0
    cost: Decimal = Decimal(0)
    cache_read_tokens: int = 0
    prompt_tokens: int = 0

    def __add__(self, other: Sums) -> Sums:
        return Sums(
            self.calls + other.calls,
            self.unpriced_calls + other.unpriced_calls,
            self.retried_calls + other.retried_calls,
            self.tokens + other.tokens,
            self.cost + other.cost,
            self.cache_read_tokens + other.cache_read_tokens,
            self.prompt_tokens + other.prompt_tokens,
        )


@dataclass(frozen=True)
class TaskHour:
    """The tasks first seen in one UTC hour, as ``task_costs_hourly`` holds them now.

    ``decided``: tasks with an outcome, or whose outcome window closed by the time
    asked for (the rest are pending: inside their window, without an outcome);
    ``waste_cost``: the cost of decided tasks rejected, failed or unresolved (window
    closed without an outcome), as ``v_outcomes_hourly`` defines waste. Costs are the
    known costs: lower bounds when the ``unpriced_calls`` counted with them are > 0.
    """

    tasks: int = 0
    calls: int = 0
    unpriced_calls: int = 0
    cost: Decimal = Decimal(0)
    decided: int = 0
    decided_calls: int = 0
    decided_unpriced_calls: int = 0
    decided_cost: Decimal = Decimal(0)
    accepted: int = 0
    waste_cost: Decimal = Decimal(0)

    def __add__(self, other: TaskHour) -> TaskHour:
        return TaskHour(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


@dataclass(frozen=True)
class TaskLine:
    """One task as the task table holds it now (running totals)."""

    task_id: str
    scenario_id: str
    owner: str
    environment: str
    cost: Decimal
    calls: int
    unpriced_calls: int
    last_event_at: datetime


@dataclass(frozen=True)
class CallPoint:
    """A task's call row as stored: ``calls`` +1 (a call) or -1 (a row a reprice
    replaced), ``unpriced_calls`` likewise for a call without a price, ``cost`` its
    known cost with the same sign; summed in ``ts`` order they give the task's running
    totals at any time."""

    ts: datetime
    calls: int
    unpriced_calls: int
    cost: Decimal


class AlertInputs(Protocol):
    """The read model alert rules evaluate over."""

    def sums(
        self, group_by: Sequence[str], match: Mapping[str, str], start: datetime, end: datetime
    ) -> dict[Key, Sums]:
        """Totals per label set (values of ``group_by``, in order) of calls with
        ``start <= ts < end`` whose labels equal ``match``."""
        ...

    def hourly(
        self, group_by: Sequence[str], match: Mapping[str, str], start: datetime, end: datetime
    ) -> dict[Key, dict[datetime, Sums]]:
        """Per label set, totals per UTC hour for whole hours in ``[start, end)``
        (hours without calls are absent)."""
        ...

    def task_hourly(
        self, group_by: Sequence[str], match: Mapping[str, str], start: datetime,
        end: datetime, decided_by: datetime,
    ) -> dict[Key, dict[datetime, TaskHour]]:  # fmt: skip
        """Per label set (task labels: scenario_id, owner, environment), the tasks per
        UTC hour of their first event, for whole hours in ``[start, end)`` (hours without
        tasks are absent), decided as of ``decided_by`` (outcome known, or outcome
        window closed by then: the rule of :meth:`decided_tasks`)."""
        ...

    def first_unpriced(self, start: datetime, end: datetime) -> dict[Key, datetime]:
        """(provider, model) with unpriced calls before ``end``, and the first hour one
        was seen, for those seen unpriced at or after ``start``."""
        ...

    def decided_tasks(
        self, group_by: Sequence[str], match: Mapping[str, str], start: datetime,
        end: datetime, decided_by: datetime,
    ) -> dict[Key, ArmSums]:  # fmt: skip
        """Per label set (task labels: scenario_id, owner, environment), the sums of
        tasks first seen in ``[start, end)`` that are decided: an outcome known, or
        the outcome window closed by ``decided_by``."""
        ...

    def cost_histogram(
        self, group_by: Sequence[str], match: Mapping[str, str], first_day: date,
        end_day: date,
    ) -> dict[Key, dict[int, tuple[int, Decimal]]]:  # fmt: skip
        """Per label set (task labels), tasks and their cost per 1% cost bin
        (``floor(ln(cost) / ln(1.01))``) over UTC days ``[first_day, end_day)``."""
        ...

    def costly_tasks(
        self, match: Mapping[str, str], active_since: datetime, before: datetime,
        min_cost: Decimal | None, min_calls: int | None,
    ) -> list[TaskLine]:  # fmt: skip
        """Tasks with an event in ``[active_since, before)`` whose running cost reaches
        ``min_cost`` or whose calls reach ``min_calls`` (either, when both given)."""
        ...

    def task_calls(self, task_ids: Sequence[str], until: datetime) -> dict[str, list[CallPoint]]:
        """The call rows of ``task_ids`` with ``ts <= until``, per task in ``ts`` order
        (a task's running totals at the instant ``until``, its calls then included)."""
        ...

    def dead_letter_counts(self, start: datetime, end: datetime) -> dict[str, int]:
        """Dead letters per reason the sink stored in ``[start, end)`` (its clock)."""
        ...


def bind(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with each datetime that has a fraction of a second as millisecond
    text in UTC (``2026-11-30 11:30:00.001``). clickhouse-connect's client-side
    binding writes datetimes to the whole second, so a window ending at 11:30:00.001
    would read as ending at 11:30:00 and leave out the call stored at 11:30:00.000;
    calls are stored to the millisecond (``DateTime64(3, 'UTC')``), which parses the
    text exactly."""
    out = dict(params)
    for name, value in params.items():
        if isinstance(value, datetime) and value.microsecond:
            utc = value.astimezone(UTC) if value.tzinfo else value
            out[name] = utc.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond // 1000:03d}"
    return out


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    floored = floor_hour(t)
    return floored if floored == t else floored + HOUR


def _where(match: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    clauses, params = [], {}
    for i, (name, value) in enumerate(sorted(match.items())):
        clauses.append(f"{name} = %(m{i})s")
        params[f"m{i}"] = value
    return (" AND ".join(clauses) or "1"), params


_SUMS = (
    "sum(calls) AS calls, sum(unpriced_calls) AS unpriced, "
    "sum(retried) AS retried, sum(tokens) AS tokens, sum(cost) AS cost, "
    "sum(cache_read) AS cache_read, sum(prompt) AS prompt"
)
# call_costs_hourly's cache_write_tokens already holds 5-minute and 1-hour writes; the
# call rows keep them apart (cache_write_1h_tokens), so their sums add both.
_PROMPT = "input_tokens + cache_read_tokens + cache_write_tokens"
_TOKENS = f"{_PROMPT} + output_tokens + reasoning_tokens"
_RAW_PROMPT = f"{_PROMPT} + cache_write_1h_tokens"
_RAW_TOKENS = f"{_RAW_PROMPT} + output_tokens + reasoning_tokens"


def _task_hour(row: Sequence[Any]) -> TaskHour:
    """A task_hourly row's last ten figures."""
    n, calls, unpriced, cost, dn, dcalls, dunpriced, dcost, accepted, waste_cost = row[-10:]
    return TaskHour(int(n), int(calls), int(unpriced), cost, int(dn), int(dcalls),
                    int(dunpriced), dcost, int(accepted), waste_cost)  # fmt: skip


def _sums(row: Sequence[Any]) -> Sums:
    """The :class:`Sums` of a row ending with the seven columns of :data:`_SUMS`."""
    calls, unpriced, retried, tokens, cost, cache_read, prompt = row[-7:]
    return Sums(int(calls), int(unpriced), int(retried), int(tokens), cost, int(cache_read),
                int(prompt))  # fmt: skip


class ClickHouseAlertInputs:
    """:class:`AlertInputs` over a clickhouse-connect client (server or chDB)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def _raw(self, keys: str, where: str, params: dict[str, Any]) -> str:
        """Call rows less the rows reprices replaced, in a window, as summable rows."""
        parts = []
        for table, sign in (("calls", 1), ("call_cancellations", -1)):
            parts.append(
                f"SELECT {keys}, {sign} AS calls, "
                f"{sign} * (cost_total IS NULL) AS unpriced_calls, "
                f"{sign} * (attempt > 1 OR retry_of != '') AS retried, "
                f"{sign} * toInt64({_RAW_TOKENS}) AS tokens, "
                f"{sign} * toDecimal128(ifNull(cost_known, 0), 18) AS cost, "
                f"{sign} * toInt64(cache_read_tokens) AS cache_read, "
                f"{sign} * toInt64({_RAW_PROMPT}) AS prompt "
                f"FROM {table} WHERE ts >= %(s)s AND ts < %(e)s AND {where}"
            )
        return " UNION ALL ".join(parts)

    def sums(
        self, group_by: Sequence[str], match: Mapping[str, str], start: datetime, end: datetime
    ) -> dict[Key, Sums]:
        if start >= end:
            return {}
        keys = ", ".join(group_by) or "'' AS none"
        names = ", ".join(group_by) or "none"
        where, params = _where(match)
        hs, he = ceil_hour(start), floor_hour(end)
        pieces: list[str] = []
        if hs < he:
            pieces.append(
                f"SELECT {keys}, calls, unpriced_calls, "
                "if(is_retry, calls, 0) AS retried, "
                f"toInt64({_TOKENS}) AS tokens, cost_known AS cost, "
                f"cache_read_tokens AS cache_read, toInt64({_PROMPT}) AS prompt "
                f"FROM call_costs_hourly WHERE hour >= %(hs)s AND hour < %(he)s AND {where}"
            )
            edges = [(start, hs), (he, end)]
        else:
            edges = [(start, end)]
        for i, (s, e) in enumerate(edges):
            if s < e:
                raw = self._raw(keys, where, params).replace("%(s)s", f"%(s{i})s")
                pieces.append(raw.replace("%(e)s", f"%(e{i})s"))
                params[f"s{i}"], params[f"e{i}"] = s, e
        params.update(hs=hs, he=he)
        sql = (
            f"SELECT {names}, {_SUMS} FROM ({' UNION ALL '.join(pieces)}) "
            f"GROUP BY {names} HAVING calls != 0"
        )
        out: dict[Key, Sums] = {}
        for row in self.client.query(sql, parameters=bind(params)).result_rows:
            n = len(group_by)
            key = tuple(str(v) for v in row[:n]) if group_by else ()
            out[key] = _sums(row)
        return out

    def hourly(
        self, group_by: Sequence[str], match: Mapping[str, str], start: datetime, end: datetime
    ) -> dict[Key, dict[datetime, Sums]]:
        keys = ", ".join(["hour", *group_by])
        where, params = _where(match)
        params.update(hs=ceil_hour(start), he=floor_hour(end))
        sql = (
            f"SELECT {keys}, sum(calls), sum(unpriced_calls), sum(if(is_retry, calls, 0)), "
            f"sum(toInt64({_TOKENS})), sum(cost_known), sum(cache_read_tokens), "
            f"sum(toInt64({_PROMPT})) FROM call_costs_hourly "
            f"WHERE hour >= %(hs)s AND hour < %(he)s AND {where} "
            f"GROUP BY {keys} HAVING sum(calls) != 0"
        )
        return self._by_hour(sql, params, len(group_by), _sums)

    def task_hourly(
        self, group_by: Sequence[str], match: Mapping[str, str], start: datetime,
        end: datetime, decided_by: datetime,
    ) -> dict[Key, dict[datetime, TaskHour]]:  # fmt: skip
        keys = ", ".join(["hour", *group_by])
        where, params = _where(match)
        params.update(hs=ceil_hour(start), he=floor_hour(end), d=decided_by)
        # Rows are split by outcome and open deadline (1970 for tasks with an outcome),
        # so "decided" is the condition of `decided_tasks` on the same rows; waste is
        # v_outcomes_hourly's, judged at `decided_by` instead of now().
        decided = "(outcome != '' OR open_deadline <= %(d)s)"
        waste = "(outcome IN ('rejected', 'failed') OR (outcome = '' AND open_deadline <= %(d)s))"
        sql = (
            f"SELECT {keys}, sum(tasks) AS n, sum(calls), sum(unpriced_calls), "
            f"sum(total_cost), sumIf(tasks, {decided}), sumIf(calls, {decided}), "
            f"sumIf(unpriced_calls, {decided}), sumIf(total_cost, {decided}), "
            f"sumIf(tasks, outcome = 'accepted'), sumIf(total_cost, {waste}) "
            f"FROM task_costs_hourly WHERE hour >= %(hs)s AND hour < %(he)s AND {where} "
            f"GROUP BY {keys} HAVING n != 0"
        )
        return self._by_hour(sql, params, len(group_by), _task_hour)

    def _by_hour(
        self, sql: str, params: dict[str, Any], keys: int, build: Callable[[Any], T]
    ) -> dict[Key, dict[datetime, T]]:
        """Rows of ``(hour, *key, figures...)`` as label set -> hour -> ``build(row)``."""
        out: dict[Key, dict[datetime, T]] = {}
        for row in self.client.query(sql, parameters=bind(params)).result_rows:
            hour = row[0].replace(tzinfo=UTC) if row[0].tzinfo is None else row[0]
            key = tuple(str(v) for v in row[1 : 1 + keys])
            out.setdefault(key, {})[hour] = build(row)
        return out

    def first_unpriced(self, start: datetime, end: datetime) -> dict[Key, datetime]:
        # Summed per hour first: a reprice cancels an hour's unpriced calls in
        # another part of the table, before any merge.
        sql = (
            "SELECT provider, model, min(hour) AS first FROM ("
            "SELECT provider, model, hour, sum(unpriced_calls) AS unpriced "
            "FROM call_costs_hourly WHERE hour < %(e)s GROUP BY provider, model, hour "
            "HAVING unpriced > 0) GROUP BY provider, model HAVING first >= %(s)s"
        )
        # `hour` is a DateTime: whole seconds, so the binding's rounding is exact here.
        rows = self.client.query(sql, parameters={"s": floor_hour(start), "e": end}).result_rows
        return {
            (str(p), str(m)): (f.replace(tzinfo=UTC) if f.tzinfo is None else f) for p, m, f in rows
        }

    def decided_tasks(
        self, group_by: Sequence[str], match: Mapping[str, str], start: datetime,
        end: datetime, decided_by: datetime,
    ) -> dict[Key, ArmSums]:  # fmt: skip
        keys = ", ".join(group_by) or "'' AS none"
        names = ", ".join(group_by) or "none"
        where, params = _where(match)
        params.update(s=start, e=end, d=decided_by)
        sql = (
            f"SELECT {keys}, count(), countIf(outcome = 'accepted'), sum(total_cost), "
            "sumIf(total_cost, outcome = 'accepted'), "
            "sum(toFloat64(total_cost) * toFloat64(total_cost)), countIf(unpriced_calls > 0) "
            "FROM tasks FINAL "
            f"WHERE first_event_at >= %(s)s AND first_event_at < %(e)s AND {where} "
            f"AND (outcome != '' OR outcome_deadline <= %(d)s) GROUP BY {names}"
        )
        out: dict[Key, ArmSums] = {}
        for row in self.client.query(sql, parameters=bind(params)).result_rows:
            key = tuple(str(v) for v in row[: len(group_by)])
            n, accepted, cost, accepted_cost, squares, unpriced = row[-6:]
            out[key] = ArmSums(
                int(n), int(accepted), cost, accepted_cost, float(squares), int(unpriced)
            )
        return out

    def cost_histogram(
        self, group_by: Sequence[str], match: Mapping[str, str], first_day: date,
        end_day: date,
    ) -> dict[Key, dict[int, tuple[int, Decimal]]]:  # fmt: skip
        keys = ", ".join([*group_by, "cost_bin"])
        where, params = _where(match)
        params.update(f=first_day, e=end_day)
        sql = (
            f"SELECT {keys}, sum(tasks) AS n, sum(total_cost) FROM task_cost_histogram_daily "
            f"WHERE day >= %(f)s AND day < %(e)s AND {where} GROUP BY {keys} HAVING n != 0"
        )
        out: dict[Key, dict[int, tuple[int, Decimal]]] = {}
        for row in self.client.query(sql, parameters=bind(params)).result_rows:
            key = tuple(str(v) for v in row[: len(group_by)])
            out.setdefault(key, {})[int(row[-3])] = (int(row[-2]), row[-1])
        return out

    def costly_tasks(
        self, match: Mapping[str, str], active_since: datetime, before: datetime,
        min_cost: Decimal | None, min_calls: int | None,
    ) -> list[TaskLine]:  # fmt: skip
        where, params = _where(match)
        limits = []
        if min_cost is not None:
            limits.append("total_cost >= %(c)s")
            params["c"] = min_cost
        if min_calls is not None:
            limits.append("calls >= %(n)s")
            params["n"] = min_calls
        params.update(s=active_since, b=before)
        sql = (
            "SELECT task_id, scenario_id, owner, environment, total_cost, calls, "
            "unpriced_calls, last_event_at FROM tasks FINAL "
            f"WHERE last_event_at >= %(s)s AND first_event_at < %(b)s AND {where} "
            f"AND ({' OR '.join(limits) or '0'}) ORDER BY task_id"
        )
        return [
            TaskLine(
                str(r[0]),
                str(r[1]),
                str(r[2]),
                str(r[3]),
                r[4],
                int(r[5]),
                int(r[6]),
                r[7].replace(tzinfo=UTC) if r[7].tzinfo is None else r[7],
            )
            for r in self.client.query(sql, parameters=bind(params)).result_rows
        ]

    def task_calls(self, task_ids: Sequence[str], until: datetime) -> dict[str, list[CallPoint]]:
        if not task_ids:
            return {}
        # The rows `sums` adds up, per task in time order: calls up to the instant
        # `until` (stored to the millisecond), less the rows reprices replaced.
        params: dict[str, Any] = {"ids": list(task_ids), "s": datetime(1970, 1, 1, tzinfo=UTC),
                                  "e": until + timedelta(milliseconds=1)}  # fmt: skip
        raw = self._raw("task_id, ts", "task_id IN %(ids)s", params)
        sql = (
            f"SELECT task_id, ts, calls, unpriced_calls, cost FROM ({raw}) "
            "ORDER BY task_id, ts, calls DESC"
        )
        out: dict[str, list[CallPoint]] = {}
        rows = self.client.query(sql, parameters=bind(params))
        for task_id, ts, n, u, c in rows.result_rows:
            ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
            out.setdefault(str(task_id), []).append(CallPoint(ts, int(n), int(u), c))
        return out

    def dead_letter_counts(self, start: datetime, end: datetime) -> dict[str, int]:
        rows = self.client.query(
            "SELECT reason, count() FROM dead_letters FINAL "
            "WHERE received_at >= %(s)s AND received_at < %(e)s GROUP BY reason",
            parameters=bind({"s": start, "e": end}),
        ).result_rows
        return {str(reason): int(n) for reason, n in rows}


class CycleCache:
    """:class:`AlertInputs` answering each distinct question once: rules of one cycle
    share windows (every budget with the default burn-rate pairs asks the same six), so
    the store sees each (labels, match, window) once. Build one per evaluation."""

    def __init__(self, inputs: AlertInputs) -> None:
        self.inputs = inputs
        self._sums: dict[Any, dict[Key, Sums]] = {}
        self._hourly: dict[Any, dict[Key, dict[datetime, Sums]]] = {}
        self._first: dict[Any, dict[Key, datetime]] = {}
        self._task_hourly: dict[Any, dict[Key, dict[datetime, TaskHour]]] = {}

    def sums(
        self, group_by: Sequence[str], match: Mapping[str, str], start: datetime, end: datetime
    ) -> dict[Key, Sums]:
        key = (tuple(group_by), tuple(sorted(match.items())), start, end)
        if key not in self._sums:
            self._sums[key] = self.inputs.sums(group_by, match, start, end)
        return self._sums[key]

    def hourly(
        self, group_by: Sequence[str], match: Mapping[str, str], start: datetime, end: datetime
    ) -> dict[Key, dict[datetime, Sums]]:
        key = (tuple(group_by), tuple(sorted(match.items())), start, end)
        if key not in self._hourly:
            self._hourly[key] = self.inputs.hourly(group_by, match, start, end)
        return self._hourly[key]

    def task_hourly(
        self, group_by: Sequence[str], match: Mapping[str, str], start: datetime,
        end: datetime, decided_by: datetime,
    ) -> dict[Key, dict[datetime, TaskHour]]:  # fmt: skip
        key = (tuple(group_by), tuple(sorted(match.items())), start, end, decided_by)
        if key not in self._task_hourly:
            self._task_hourly[key] = self.inputs.task_hourly(
                group_by, match, start, end, decided_by
            )
        return self._task_hourly[key]

    def first_unpriced(self, start: datetime, end: datetime) -> dict[Key, datetime]:
        if (start, end) not in self._first:
            self._first[(start, end)] = self.inputs.first_unpriced(start, end)
        return self._first[(start, end)]

    def decided_tasks(
        self, group_by: Sequence[str], match: Mapping[str, str], start: datetime,
        end: datetime, decided_by: datetime,
    ) -> dict[Key, ArmSums]:  # fmt: skip
        return self.inputs.decided_tasks(group_by, match, start, end, decided_by)

    def cost_histogram(
        self, group_by: Sequence[str], match: Mapping[str, str], first_day: date,
        end_day: date,
    ) -> dict[Key, dict[int, tuple[int, Decimal]]]:  # fmt: skip
        return self.inputs.cost_histogram(group_by, match, first_day, end_day)

    def costly_tasks(
        self, match: Mapping[str, str], active_since: datetime, before: datetime,
        min_cost: Decimal | None, min_calls: int | None,
    ) -> list[TaskLine]:  # fmt: skip
        return self.inputs.costly_tasks(match, active_since, before, min_cost, min_calls)

    def task_calls(self, task_ids: Sequence[str], until: datetime) -> dict[str, list[CallPoint]]:
        return self.inputs.task_calls(task_ids, until)

    def dead_letter_counts(self, start: datetime, end: datetime) -> dict[str, int]:
        return self.inputs.dead_letter_counts(start, end)
