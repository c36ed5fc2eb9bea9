"""Builds the stage-1 Faust app: the batch transport, the task_state table, the handler."""

from __future__ import annotations

import logging
from typing import Any

import faust
import orjson

from pipeline.agents import batch_consumer, true_ends
from pipeline.agents.base import Stage, new_stage
from pipeline.agents.batch_output import CollectingTopic, FetchHandler
from pipeline.agents.commit_safety import drain_fully
from pipeline.config import Settings
from pipeline.join.retention import RetentionIndex
from pipeline.join.state import OutcomeWindow
from pipeline.join.task_caps import TaskCap
from pipeline.pricing.book import load_price_book
from pipeline.pricing.engine import CompiledBook

log = logging.getLogger("costflow.worker")


def _credentials(settings: Settings) -> Any:
    kafka = settings.kafka
    if not kafka.sasl_mechanism:
        return None
    password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
    return faust.SASLCredentials(
        username=kafka.sasl_username or "",
        password=password,
        mechanism=kafka.sasl_mechanism,
    )


def task_caps(settings: Settings) -> list[TaskCap]:
    """The ``task_budget`` caps of the worker's alert rule files (``COSTFLOW_WORKER_
    ALERT_RULES``, else the sink's ``COSTFLOW_SINK_ALERT_RULES``, so `costflow up` needs
    one setting). Rules with ``p99_multiple`` need the stored histograms: ``costflow
    alerts run`` evaluates those. Raises AlertRulesInvalid for a file that does not
    validate."""
    files = settings.worker.alert_rule_files() or settings.sink.alert_rule_files()
    if not files:
        return []
    from pipeline.alerts.rules import load_rule_files

    rules = [r for g in load_rule_files(files).groups for r in g.rules]
    caps = [
        TaskCap(
            r.alert,
            r.severity.value,
            {d.value: v for d, v in r.match.items()},
            r.max_cost,
            r.max_calls,
            dict(r.labels),
        )
        for r in rules
        if r.kind == "task_budget" and r.p99_multiple is None
    ]
    log.info("stage 1 checks task_budget caps %s (from %s)",
             [c.alert for c in caps], ", ".join(map(str, files)))  # fmt: skip
    return caps


def create_app(settings: Settings) -> tuple[faust.App, Stage]:
    """The stage-1 Faust app and its stage. Input fetches go whole to a
    :class:`~pipeline.agents.batch_output.FetchHandler` (see batch_consumer); the
    agents below only subscribe the input topics for Faust's group and assignor."""
    topics = settings.topics
    worker = settings.worker
    book = CompiledBook(load_price_book(worker.price_book_dir))
    batch_consumer.register()
    app = faust.App(
        worker.app_id,
        broker=f"{batch_consumer.SCHEME}://{settings.kafka.resolved_bootstrap()}",
        broker_credentials=_credentials(settings),
        store="memory://",
        datadir=str(settings.stack.data_dir / "faust"),
        autodiscover=False,
        web_enabled=False,
        topic_partitions=topics.partitions,
        topic_replication_factor=topics.replication_factor,
        broker_session_timeout=settings.kafka.session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.kafka.heartbeat_interval_ms / 1000,
        broker_commit_interval=worker.commit_interval_s,
        # Records per fetch: a batch's memory and latency bound (with max_in_flight).
        broker_max_poll_records=worker.max_poll_records,
        consumer_max_fetch_size=worker.max_fetch_bytes,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Outputs leave as whole record batches per fetch: waiting adds only latency.
        producer_linger=worker.producer_linger_ms / 1000,
        producer_max_batch_size=1_048_576,
        key_serializer="raw",
        value_serializer="json",
    )
    # Faust itself still sends a few records through its buffer (none per event).
    drain_fully(app.producer)
    true_ends.install(settings.kafka)

    outputs = {
        "priced_calls": CollectingTopic(topics.priced_calls),
        "task_snapshots": CollectingTopic(topics.task_snapshots),
        "dead_letter": CollectingTopic(topics.dead_letter),
    }
    # Keys and values use the app defaults: raw (utf-8) keys, JSON values.
    table: Any = app.Table("task_state", default=None, key_type=str)
    handler_changes: dict[str, tuple[int, str | None]] = {}

    def record_change(partition: int, key: str, value: str | None) -> None:
        handler_changes[key] = (partition, value)

    stage = new_stage(
        # The table's local store: writing it sends nothing; the handler writes the
        # changelog, one record per changed key per fetch.
        table=table.data,
        priced_calls=outputs["priced_calls"],
        task_snapshots=outputs["task_snapshots"],
        dead_letter=outputs["dead_letter"],
        book=book,
        window=OutcomeWindow(
            default_ms=worker.outcome_window_s * 1000,
            by_scenario_ms={
                scenario: seconds * 1000
                for scenario, seconds in worker.outcome_window_s_by_scenario.items()
            },
        ),
        retention=RetentionIndex(worker.state_retention_s * 1000),
        max_future_ms=worker.max_future_s * 1000,
        changelog=record_change,
        caps=task_caps(settings),
    )
    changelog = table.changelog_topic

    handler = FetchHandler(
        topics={topics.calls: "call", topics.tasks: "task", topics.outcomes: "outcome"},
        stage=stage,
        outputs=list(outputs.values()),
        changelog_topic=changelog.get_topic_name(),
        encode_change=encode_table_change,
        # Faust's started aiokafka producer (acks=all, credentials): internal, pinned
        # by tests/unit/test_batch_consumer.py.
        producer=app.producer._ensure_producer,  # type: ignore[attr-defined]
        max_in_flight=worker.max_fetches_in_flight,
        changes=handler_changes,
    )
    batch_consumer.install(app, handler)

    async def reindex() -> None:
        stage.store.reindex()

    table.on_recover(reindex)

    for name in (topics.calls, topics.tasks, topics.outcomes):
        _subscribe(app, app.topic(name, key_serializer="raw", value_serializer="raw"))
    return app, stage


def encode_table_change(key: str, value: str | None) -> tuple[bytes, bytes | None]:
    """The changelog record of ``task_state``'s ``key`` set to ``value`` (None: deleted),
    as the table's own serializers write it (Faust's ``json`` codec, which is orjson, for
    keys and values: ``table_key_serializer`` and ``table_value_serializer`` default to
    it), without Faust's per-record plumbing (one record per changed task per fetch).
    ``tests/unit/test_batch_consumer.py`` compares it with the table's own."""
    return orjson.dumps(key), None if value is None else orjson.dumps(value)


def _subscribe(app: faust.App, topic: Any) -> None:
    """An agent that only subscribes ``topic``: its records go to the fetch handler,
    never through the agent (see batch_consumer)."""

    @app.agent(topic, name=f"costflow.subscribe.{topic.get_topic_name()}")
    async def subscribed(stream: Any) -> None:
        async for _event in stream:
            raise RuntimeError("stage-1 input reached a Faust agent; the batch path owns it")
