"""ClickHouse writer: priced calls, task changes, stage 1's task_budget firings and
dead letters to their tables.

Each table gets one insert per batch. Every insert is idempotent twice over:
rows already stored are not written again (calls by event_id, tasks by
version, see :mod:`pipeline.sink.clickhouse.restate`), and the insert carries a
deduplication token, applied to dependent materialized views too, so a retry
of an insert that did land is ignored and one that half landed is completed
(see :mod:`pipeline.sink.clickhouse.plans`).
"""

from __future__ import annotations

import logging
from typing import Any

from pipeline.clickhouse.lookups import ID_BYTES_PER_QUERY, id_chunks
from pipeline.config import TopicSettings
from pipeline.errors import ClickHouseError
from pipeline.json_codec import loads
from pipeline.records import TaskRecord, decode_task_record
from pipeline.sink.base import Batch, Sink, SinkBackpressure
from pipeline.sink.clickhouse.plans import PlanLog, plan_id
from pipeline.sink.clickhouse.reprice import Repricer
from pipeline.sink.clickhouse.restate import TaskRestater
from pipeline.sink.clickhouse.rows import (
    CALL_CANCEL_COLUMNS,
    CALL_COLUMNS,
    CHANGE_COLUMNS,
    DEAD_LETTER_COLUMNS,
    REPRICING_COLUMNS,
    STATE_COLUMNS,
    call_row,
    dead_letter_row,
)
from pipeline.sink.clickhouse.task_alerts import ALERT_EVENT_COLUMNS, task_alert_rows

log = logging.getLogger("costflow.sink")

# Seconds to pause on TOO_MANY_PARTS: a few background merges' worth.
BACKPRESSURE_PAUSE_S = 10.0


class ClickHouseSink(Sink):
    def __init__(self, client: Any, topics: TopicSettings, cache_entries: int = 200_000) -> None:
        self.client = client
        self.topics = topics
        self.restater = TaskRestater(client, cache_entries)
        self.calls_already_stored = 0
        self._plan: tuple[Batch, dict[str, Any]] | None = None
        self.repricer = Repricer(client)
        self.plans = PlanLog(
            client,
            {
                "calls": CALL_COLUMNS,
                "task_changes": CHANGE_COLUMNS,
                "call_repricings": REPRICING_COLUMNS,
                "call_cancellations": CALL_CANCEL_COLUMNS,
                "task_states": STATE_COLUMNS,
            },
        )
        self._repair_due = True
        # Serves reads of the embedded engine to other processes (see open_sink).
        self.read_server: Any = None

    def _new_calls(self, calls: dict[tuple[str, str], dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Rows for calls not yet stored; stage 1 re-emits a call when it is re-delivered.

        A call is (task_id, event_id): stage 1 applies an event once per task, so two
        tasks whose gateways reuse an event id each keep their call, here as there."""
        if not calls:
            return []
        stored: set[tuple[str, str]] = set()
        # By task, so each query lists a slice of tasks and only their calls.
        by_task: dict[str, list[str]] = {}
        for task_id, event_id in calls:
            by_task.setdefault(task_id, []).append(event_id)
        for tasks in id_chunks(sorted(by_task), ID_BYTES_PER_QUERY // 4):
            events = sorted({e for task in tasks for e in by_task[task]})
            for event_chunk in id_chunks(events):
                stored.update(
                    (row[0], row[1])
                    for row in self.client.query(
                        "SELECT task_id, event_id FROM calls "
                        "WHERE task_id IN %(tasks)s AND event_id IN %(events)s",
                        parameters={"tasks": list(tasks), "events": list(event_chunk)},
                    ).result_rows
                )
        self.calls_already_stored += len(stored & calls.keys())
        return [call_row(calls[key]) for key in sorted(calls) if key not in stored]

    def _rows(self, batch: Batch) -> dict[str, tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
        calls: dict[tuple[str, str], dict[str, Any]] = {}
        # Stage-1 records per task, in offset order (lineage decides what each does).
        tasks: dict[str, list[TaskRecord]] = {}
        reprices: list[dict[str, Any]] = []
        dead: list[tuple[Any, ...]] = []
        for record in batch.records:
            if record.topic == self.topics.dead_letter:
                dead.append(dead_letter_row(record))
            elif record.topic == self.topics.priced_calls:
                call = loads(record.value or b"{}")
                calls[(call["task_id"], call["event_id"])] = call
            elif record.topic == self.topics.task_snapshots:
                decoded = decode_task_record(record.value)
                if decoded.kind == "reprice":  # from costflow reprice, in offset order
                    reprices.append(decoded.data)
                    continue
                tasks.setdefault(decoded.task_id, []).append(decoded)
        new_calls = self._new_calls(calls)
        # One read of the stored task rows serves both the reprices and the restatement.
        stored = self.restater.prefetch([*tasks, *(r["task_id"] for r in reprices)])
        repriced = self.repricer.apply(reprices, stored | set(tasks))
        changes, states = self.restater.changes(tasks, repriced.adjustments)
        firings = task_alert_rows(self.client, (r for records in tasks.values() for r in records))
        return {
            "alert_events": (self.topics.task_snapshots, ALERT_EVENT_COLUMNS, firings),
            "calls": (self.topics.priced_calls, CALL_COLUMNS, new_calls + repriced.calls),
            "task_changes": (self.topics.task_snapshots, CHANGE_COLUMNS, changes),
            "task_states": (self.topics.task_snapshots, STATE_COLUMNS, states),
            "call_repricings": (self.topics.task_snapshots, REPRICING_COLUMNS, repriced.history),
            "call_cancellations": (
                self.topics.task_snapshots,
                CALL_CANCEL_COLUMNS,
                repriced.cancelled,
            ),
            "dead_letters": (self.topics.dead_letter, DEAD_LETTER_COLUMNS, dead),
        }

    def write(self, batch: Batch) -> dict[str, int]:
        """Write a batch; a retry of the same batch re-sends exactly the same blocks.

        Re-sending (rather than recomputing) matters when an insert failed half
        way through its materialized views: the same block with the same token
        is skipped where it landed and completes where it did not.
        """
        written: dict[str, int] = {}
        try:
            if self._repair_due:  # before any lookup: they must see completed batches
                self.plans.repair()
                self._repair_due = False
            if self._plan is None or self._plan[0] is not batch:
                self._plan = (batch, self._rows(batch))
            tables = self._plan[1]
            planned = {
                t: rows for t, (_, _, rows) in tables.items() if rows and t in self.plans.columns
            }
            if planned:
                plan = plan_id([(t, p, a, b) for (t, p), (a, b) in batch.ranges.items()], planned)
                self.plans.started(plan, sorted(planned))
                for table, rows in planned.items():
                    self.plans.insert(plan, table, rows)
                    written[table] = len(rows)
                self.plans.done(plan, sorted(planned))
            # Outside the plan, after the task rows (an alert never names a task not
            # stored): each table's token carries its rows' digest, so a recreated
            # topic (offsets from 0 again) cannot collide with an old batch's token.
            for table in ("alert_events", "dead_letters"):
                topic, columns, rows = tables[table]
                if rows:
                    token = batch.token(table, topic) + plan_id([], {table: rows})
                    self.client.insert(
                        table,
                        rows,
                        column_names=list(columns),
                        settings={"insert_deduplication_token": token},
                    )
                    written[table] = len(rows)
        except Exception as exc:
            if "TOO_MANY_PARTS" in str(exc):
                # Inserts outrun merges: back off longer than a transient error would.
                raise SinkBackpressure(
                    f"ClickHouse asks for a pause (TOO_MANY_PARTS): {str(exc)[:300]}",
                    retry_after_s=BACKPRESSURE_PAUSE_S,
                ) from exc
            raise ClickHouseError(f"write to ClickHouse failed: {exc}") from exc
        self._plan = None
        self.restater.committed()
        return written

    def skipped(self) -> dict[str, int]:
        counts = {
            "calls_already_stored": self.calls_already_stored,
            # Pre-0008 snapshots (no state) not newer than the stored row.
            "snapshots_superseded": self.restater.superseded,
            # Every event already in the stored row (re-emitted or older snapshots).
            "task_records_already_stored": self.restater.outcomes.get("already_stored", 0),
            # Not applied; their new events are kept as task_states.pending (report).
            "task_records_diverged": self.restater.outcomes.get("diverged", 0),
            "reprice_adjustments_without_task_row": self.restater.orphan_adjustments,
            **{f"reprice_{reason}": n for reason, n in self.repricer.counts.items()},
        }
        return {reason: n for reason, n in counts.items() if n}

    def restatements(self) -> int:
        return self.restater.restated

    def partitions_changed(self) -> None:
        # Another process may have written our new partitions' tasks, or died
        # half way through a batch of them.
        self.restater.forget()
        self._plan = None
        self._repair_due = True

    def close(self) -> None:
        if self.read_server is not None:
            self.read_server.stop()
        self.client.close()
