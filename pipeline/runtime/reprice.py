"""``costflow reprice``: price stored calls again after a price-book correction.

1. Scan the calls with event time in [from, to) as stored now (FINAL), in
   task order, and price each with the corrected book.
2. For each task, send the calls whose cost changed to the task-snapshot topic
   as one ``reprice`` record (keyed by task_id: the sink that owns the task
   applies it, in order with the task's snapshots; see
   :mod:`pipeline.sink.clickhouse.reprice`). Calls the new book cannot price keep their
   old price and are reported.
3. Wait until the sink has applied them; print old and new cost side by side
   (``v_reprice_comparison``).

Deploy the corrected book to the stage-1 workers first, so calls still in
flight are priced with it; a reprice is idempotent and can simply be run again
to catch calls that were in flight while it ran.

On the embedded stack the broker lives only as long as one command and chDB
belongs to one process, so reprice starts its own broker and runs the sink in
this process. With a Kafka cluster, the deployed sink applies the records.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pipeline import records
from pipeline.config import Settings
from pipeline.errors import ConfigError, PricingError
from pipeline.pricing.engine import CallCost, CompiledBook, price_call
from pipeline.query.calls import scan, stored_call

log = logging.getLogger("costflow.reprice")

# Not billed: cache tokens at the input rate, the baseline of the cache-savings views.
_BASELINES = ("cache_read_uncached", "cache_write_uncached")
# The billed parts: every cost part but the baselines.
_PARTS = tuple(part for part in records.COST_PARTS if part not in _BASELINES)
# A task with more changed calls than this is sent as several records.
CALLS_PER_RECORD = 1_000


@dataclass
class RepriceSummary:
    reprice_id: str
    price_book_version: str
    scanned: int = 0
    changed: int = 0
    tasks: int = 0
    records: int = 0
    # reason -> calls the new book cannot price (they keep their old price)
    not_priced: Counter[str] = field(default_factory=Counter)
    # (provider, model, old version) -> [calls, old cost, new cost]
    by_model: dict[tuple[str, str, str], list[Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reprice_id": self.reprice_id,
            "price_book_version": self.price_book_version,
            "calls_scanned": self.scanned,
            "calls_changed": self.changed,
            "tasks_changed": self.tasks,
            "records_sent": self.records,
            "calls_not_priced_by_new_book": dict(self.not_priced),
            "changes": [
                {
                    "provider": provider,
                    "model": model,
                    "old_price_book_version": old_version,
                    "calls": calls,
                    "old_cost": str(old),
                    "new_cost": str(new),
                    "difference": str(new - old),
                }
                for (provider, model, old_version), (calls, old, new) in sorted(
                    self.by_model.items()
                )
            ],
        }


def _changed(row: dict[str, Any], cost: CallCost) -> bool:
    # The price, not the label: a call the new book prices the same keeps the
    # version that priced it, which is still true.
    for part in _PARTS:
        stored = row[f"cost_{part}"]
        if stored is None and part == "units" and row["cost_total"] is not None:
            stored = Decimal(0)  # rows priced before units existed
        if stored != getattr(cost, part):
            return True
    # An input-rate change moves the savings baseline even when no billed part moves
    # (a call of cache reads only). Rows from before the baselines (NULL) are not
    # rewritten just to fill them.
    return any(
        row[f"cost_{part}"] is not None and row[f"cost_{part}"] != getattr(cost, part)
        for part in _BASELINES
    )


def _priced_call(row: dict[str, Any], cost: CallCost) -> dict[str, Any]:
    priced: dict[str, Any] = {"event_id": row["event_id"]}
    for part in (*_PARTS, *_BASELINES):
        priced[f"cost_{part}"] = str(getattr(cost, part))
    priced["cost_known"] = str(cost.total)
    priced["currency"] = cost.currency
    priced["list_currency"] = cost.list_currency
    priced["fx_rate"] = None if cost.fx_rate is None else str(cost.fx_rate)
    priced["price_overlay"] = cost.overlay
    return priced


def scan_calls(
    client: Any, start: datetime, end: datetime, block_rows: int = 50_000
) -> Iterator[dict[str, Any]]:
    """Stored calls with start <= ts < end, current version of each, in task order."""
    return scan(
        client, "ts >= %(start)s AND ts < %(end)s", {"start": start, "end": end}, block_rows
    )


def plan_reprice(
    calls: Iterator[dict[str, Any]],
    book: CompiledBook,
    reprice_id: str,
    emit: Callable[[str, dict[str, Any]], None],
    progress: Callable[[int], None] = lambda _n: None,
) -> RepriceSummary:
    """Price ``calls`` (in task order) with ``book``; ``emit`` one record per changed task."""
    summary = RepriceSummary(reprice_id, book.label)
    task_id: str | None = None
    pending: list[dict[str, Any]] = []

    def send() -> None:
        if not pending or task_id is None:
            return
        summary.tasks += 1
        for i in range(0, len(pending), CALLS_PER_RECORD):
            record = records.reprice(
                reprice_id, task_id, book.label, pending[i : i + CALLS_PER_RECORD]
            )
            emit(task_id, record)
            summary.records += 1

    for row in calls:
        if row["task_id"] != task_id:
            send()
            task_id, pending = row["task_id"], []
        summary.scanned += 1
        if summary.scanned % 100_000 == 0:
            progress(summary.scanned)
        try:
            cost = price_call(stored_call(row), book)
        except PricingError as exc:
            summary.not_priced[exc.code] += 1
            continue
        if not _changed(row, cost):
            continue
        summary.changed += 1
        pending.append(_priced_call(row, cost))
        key = (row["provider"], row["model"], row["price_book_version"])
        entry = summary.by_model.setdefault(key, [0, Decimal(0), Decimal(0)])
        entry[0] += 1
        entry[1] += row["cost_total"] or row.get("cost_known") or Decimal(0)
        entry[2] += cost.total
    send()
    progress(summary.scanned)
    return summary


def _show_progress(scanned: int) -> None:
    sys.stderr.write(f"\r  repricing: {scanned:,} calls scanned   ")
    sys.stderr.flush()


def run_reprice(
    settings: Settings,
    book: CompiledBook,
    start: datetime,
    end: datetime,
    *,
    dry_run: bool = False,
    timeout_s: float = 1800,
) -> dict[str, Any]:
    """Reprice calls with start <= ts < end; returns the summary and, unless a dry run,
    the comparison ClickHouse holds afterwards."""
    from pipeline.clickhouse.client import connect

    if end <= start:
        raise ConfigError(f"--to {end.isoformat()} must be after --from {start.isoformat()}")
    job = _Job(
        client=connect(settings.clickhouse, settings.stack, create=False),
        book=book,
        start=start,
        end=end,
        reprice_id=f"{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}-{book.label}",
    )
    if dry_run:
        summary = job.plan(lambda *_: None)
        return {"dry_run": True, **summary.as_dict()}
    if settings.kafka.embedded:
        return _embedded(settings, job, timeout_s)
    summary = _send(settings, job)
    _await_sink(settings, timeout_s, lambda: None)
    return {**summary.as_dict(), "applied": comparison(job.client, job.reprice_id)}


@dataclass(frozen=True)
class _Job:
    client: Any
    book: CompiledBook
    start: datetime
    end: datetime
    reprice_id: str

    def plan(self, emit: Callable[[str, dict[str, Any]], None]) -> RepriceSummary:
        calls = scan_calls(self.client, self.start, self.end)
        summary = plan_reprice(calls, self.book, self.reprice_id, emit, _show_progress)
        sys.stderr.write("\n")
        return summary


def _send(settings: Settings, job: _Job) -> RepriceSummary:
    from pipeline.kafka.produce import Sender
    from pipeline.kafka.topics import ensure_topics

    ensure_topics(settings.kafka, settings.topics)
    sender = Sender(settings.kafka)
    topic = settings.topics.task_snapshots

    def emit(task_id: str, record: dict[str, Any]) -> None:
        sender.send(topic, task_id.encode(), json.dumps(record, separators=(",", ":")).encode())

    summary = job.plan(emit)
    sender.flush()
    return summary


def _await_sink(settings: Settings, timeout_s: float, check: Callable[[], None]) -> None:
    from pipeline.kafka.offsets import LagProbe
    from pipeline.runtime.progress import wait_for_group

    probe = LagProbe(settings.kafka, settings.sink.group_id)
    try:
        targets = probe.end_offsets([settings.topics.task_snapshots])
        wait_for_group(probe, targets, "sink (applying the reprice)", timeout_s, check)
    finally:
        probe.close()


def _embedded(settings: Settings, job: _Job, timeout_s: float) -> dict[str, Any]:
    from pipeline.clickhouse.client import connect
    from pipeline.config import KafkaSettings
    from pipeline.embedded.broker import EmbeddedBroker
    from pipeline.errors import EmbeddedStackError
    from pipeline.sink.clickhouse import ClickHouseSink
    from pipeline.sink.runner import SinkRunner

    with EmbeddedBroker() as broker:
        private = settings.replace(kafka=KafkaSettings(bootstrap=broker.bootstrap))
        summary = _send(private, job)
        sink_client = connect(private.clickhouse, private.stack, create=False)
        runner = SinkRunner(private, ClickHouseSink(sink_client, private.topics))
        failure: list[BaseException] = []

        def run() -> None:
            try:
                runner.run()
            except BaseException as exc:  # reported to the waiting thread
                failure.append(exc)

        thread = threading.Thread(target=run, name="reprice-sink", daemon=True)
        thread.start()

        def check() -> None:
            if failure or not thread.is_alive():
                raise EmbeddedStackError(f"the sink stopped while applying the reprice: {failure}")

        try:
            _await_sink(private, timeout_s, check)
        finally:
            runner.stop()
            thread.join(60)
    return {**summary.as_dict(), "applied": comparison(job.client, job.reprice_id)}


def comparison(client: Any, reprice_id: str | None = None) -> list[dict[str, Any]]:
    """Cost under the old and the new price-book version, per reprice and model."""
    where = "WHERE reprice_id = %(id)s" if reprice_id else ""
    result = client.query(
        "SELECT reprice_id, provider, model, old_price_book_version, new_price_book_version, "
        "calls, previously_unpriced_calls, old_cost, new_cost, difference, currency "
        f"FROM v_reprice_comparison {where} ORDER BY reprice_id, provider, model",
        parameters={"id": reprice_id} if reprice_id else None,
    )
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
