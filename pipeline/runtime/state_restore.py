"""``costflow state restore``: rebuild stage 1's task table from what ClickHouse holds.

For when stage 1 lost its state: a changelog topic deleted, recreated or
compacted away, or a cluster rebuilt without it. Stage 1 then starts tasks again
from nothing; the sink sees snapshots that lack events the stored rows have and
keeps their new events as *pending* (``costflow report`` says so). The fix:

1. Stop the stage-1 worker. Let the sink run until it has stored every snapshot
   (this command refuses to go on otherwise): then ClickHouse holds every event
   stage 1 ever acknowledged, as stored rows or as pending ids.
2. Write the state of every task's current start (``task_states.current``, as
   stage 1 last reported it) into the table's changelog, in the task's partition,
   serialised exactly as Faust writes it, and each partition's eviction
   watermark, so events older than an evicted task are still refused.
3. Re-submit the pending events: read from the input topics by event id and
   produced again with their original bytes and keys; stage 1 applies them on
   top of the restored state (they are not in it), and the lineage clears them.
4. Start the worker: it recovers the table from the changelog, whose newest
   record per task is now the restored state.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka import KafkaError as RdKafkaError

from pipeline.agents.task_store import watermark_key
from pipeline.config import Settings
from pipeline.errors import CostflowError
from pipeline.kafka.offsets import LagProbe
from pipeline.sink.lineage import Part


class RestoreRefused(CostflowError):
    """The pipeline is not in a state where a restore is exact."""

    code = "restore_refused"


@dataclass
class RestoreReport:
    states: int = 0
    watermarks: dict[int, int] = field(default_factory=dict)
    pending: int = 0
    resubmitted: int = 0
    missing: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [
            f"restored {self.states:,} task states into the stage-1 changelog",
            f"eviction watermarks: {self.watermarks or 'none'}",
        ]
        if self.pending:
            lines.append(
                f"re-submitted {self.resubmitted:,} of {self.pending:,} pending events "
                "from the input topics"
            )
        if self.missing:
            lines.append(
                f"NOT FOUND in the input topics (past their Kafka retention?): "
                f"{len(self.missing):,} events, e.g. {self.missing[:5]}; produce them again "
                "from your own records to complete those tasks"
            )
        lines.append("now start the worker (costflow worker, or costflow up)")
        return "\n".join(lines)


def restore(settings: Settings, client: Any) -> RestoreReport:
    """Rebuild stage 1's table from ``task_states``; see the module docstring.

    Raises RestoreRefused while the sink has snapshots left to store.
    """
    _require_sink_drained(settings)
    report = RestoreReport()
    from pipeline.app import create_app  # Faust's own serialisation of table records

    app, _stage = create_app(settings)
    table: Any = app.tables["task_state"]  # the Faust table (the stage holds its store)
    changelog = table.changelog_topic
    producer = Producer({**settings.kafka.librdkafka(), "acks": "all", "linger.ms": 20})
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    def send(partition: int, key: str, value: str) -> None:
        raw_key, _ = changelog.prepare_key(key, table.key_serializer)
        raw_value, _ = changelog.prepare_value(value, table.value_serializer)
        while True:
            try:
                producer.produce(
                    changelog.get_topic_name(), raw_value, raw_key, partition=partition,
                    on_delivery=delivered,
                )  # fmt: skip
                break
            except BufferError:
                producer.poll(0.1)

    pending: dict[str, str] = {}
    retention_ms = settings.worker.state_retention_s * 1000
    started = time.monotonic()
    rows = client.query(
        "SELECT task_id, base, current, pending FROM task_states FINAL "
        "WHERE current != '' OR notEmpty(pending) OR base != ''"
    ).result_rows
    for task_id, base_text, current_text, pending_ids in rows:
        for event_id in pending_ids:
            pending[event_id] = task_id
        base = Part.from_text(base_text)
        if base is not None and base.state.partition >= 0:
            deadline = base.state.row(base.window_ms)["outcome_deadline_ms"]
            mark = report.watermarks.get(base.state.partition, 0)
            report.watermarks[base.state.partition] = max(mark, deadline + retention_ms)
        current = Part.from_text(current_text)
        if current is None:
            continue
        if current.state.partition < 0:
            raise RestoreRefused(
                f"task {task_id!r}: its stored state has no partition (written by a worker "
                "from before partitions were recorded); replay its input instead"
            )
        send(current.state.partition, task_id, current.state.to_stored())
        report.states += 1
        if report.states % 10_000 == 0:
            _progress(f"restored {report.states:,} task states", started)
        producer.poll(0)
    for partition, mark in report.watermarks.items():
        send(partition, watermark_key(partition), str(mark))
    producer.flush(120)
    if failures:
        raise RestoreRefused(
            f"{len(failures)} changelog records were not delivered: {failures[:3]}"
        )
    report.pending = len(pending)
    if pending:
        report.resubmitted, report.missing = _resubmit(settings, pending)
    return report


def restore_embedded(settings: Settings) -> RestoreReport:
    """The same on the embedded stack: start the broker and the sink, let the sink
    store every snapshot, stop it (it owns the chDB directory), restore, stop all."""
    from pipeline.clickhouse.client import connect
    from pipeline.runtime.progress import wait_for_group
    from pipeline.runtime.replay import private_stack
    from pipeline.runtime.supervisor import Stack

    settings = private_stack(settings)
    with Stack(settings, log_dir=settings.stack.data_dir / "logs", roles=("sink",)) as stack:
        probe = LagProbe(settings.kafka, settings.sink.group_id)
        try:
            ends = probe.end_offsets(settings.topics.sink_inputs())
            wait_for_group(probe, ends, "sink: storing what stage 1 sent", 3600, stack.check_alive)
        finally:
            probe.close()
        stack.stop_role("sink")
        client = connect(settings.clickhouse, settings.stack)
        try:
            return restore(settings, client)
        finally:
            client.close()


def _require_sink_drained(settings: Settings) -> None:
    probe = LagProbe(settings.kafka, settings.sink.group_id)
    try:
        ends = probe.end_offsets([settings.topics.task_snapshots])
        left = probe.remaining(ends)
    finally:
        probe.close()
    if left:
        raise RestoreRefused(
            f"the sink has {left:,} task snapshots left to store; a restore now would "
            "miss their events. Stop the worker, run the sink (costflow sink) until it has "
            "caught up, then run this again"
        )


def _resubmit(settings: Settings, pending: dict[str, str]) -> tuple[int, list[str]]:
    """Find each pending event in the input topics and produce it again as it was."""
    topics = settings.topics.inputs()
    conf = settings.kafka.librdkafka()
    conf.update({"group.id": "costflow-state-restore", "enable.auto.commit": False,
                 "enable.partition.eof": True})  # fmt: skip
    reader = Consumer(conf)
    producer = Producer({**settings.kafka.librdkafka(), "acks": "all"})
    found: dict[str, tuple[str, int, bytes | None, bytes]] = {}
    try:
        metadata = reader.list_topics(timeout=10)
        partitions = [
            TopicPartition(t, p, 0) for t in topics for p in metadata.topics[t].partitions
        ]
        reader.assign(partitions)
        open_partitions = {(tp.topic, tp.partition) for tp in partitions}
        by_task: dict[str, set[str]] = defaultdict(set)
        for event_id, task_id in pending.items():
            by_task[task_id].add(event_id)
        while open_partitions and len(found) < len(pending):
            for message in reader.consume(num_messages=10_000, timeout=1.0):
                err = message.error()
                if err is not None:
                    if err.code() == RdKafkaError._PARTITION_EOF:
                        open_partitions.discard((message.topic(), message.partition()))
                    continue
                key = message.key()
                task = key.decode("utf-8", "replace") if key else ""
                if task not in by_task:
                    continue
                try:
                    event_id = json.loads(message.value() or b"{}").get("event_id")
                except ValueError:
                    continue
                if event_id in by_task[task] and event_id not in found:
                    found[event_id] = (
                        str(message.topic()), int(message.partition() or 0), key,
                        message.value() or b"",
                    )  # fmt: skip
    finally:
        reader.close()
    for topic, partition, key, value in found.values():
        producer.produce(topic, value, key, partition=partition)  # where the task lives
        producer.poll(0)
    producer.flush(120)
    return len(found), sorted(set(pending) - set(found))


def _progress(text: str, started: float) -> None:
    sys.stderr.write(f"\r  {text} ({time.monotonic() - started:.0f}s)   ")
    sys.stderr.flush()
