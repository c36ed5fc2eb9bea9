"""Builds the stage-1 Faust app: topics, the task_state table and the three agents."""

from __future__ import annotations

from typing import Any

import faust

from pipeline.agents import calls, outcomes, tasks, true_ends
from pipeline.agents.base import Stage, new_stage
from pipeline.agents.commit_safety import drain_fully
from pipeline.config import Settings
from pipeline.join.retention import RetentionIndex
from pipeline.join.state import OutcomeWindow
from pipeline.pricing.book import load_price_book
from pipeline.pricing.engine import CompiledBook


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


def create_app(settings: Settings) -> tuple[faust.App, Stage]:
    topics = settings.topics
    book = CompiledBook(load_price_book(settings.worker.price_book_dir))
    app = faust.App(
        settings.worker.app_id,
        broker=f"kafka://{settings.kafka.resolved_bootstrap()}",
        broker_credentials=_credentials(settings),
        store="memory://",
        datadir=str(settings.stack.data_dir / "faust"),
        autodiscover=False,
        web_enabled=False,
        topic_partitions=topics.partitions,
        topic_replication_factor=topics.replication_factor,
        broker_session_timeout=settings.kafka.session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.kafka.heartbeat_interval_ms / 1000,
        broker_commit_interval=settings.worker.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Every event sends 2-3 records (output, snapshot, changelog); without
        # linger the producer sends them one request each and commits stall.
        producer_linger_ms=settings.worker.producer_linger_ms,
        producer_max_batch_size=1_048_576,
        key_serializer="raw",
        value_serializer="json",
    )

    drain_fully(app.producer)
    # Faust pauses the stream (with a warning each time) once 100 records wait to be
    # sent; a call event alone sends three. 1,000 records of ~1 KB bound it still.
    app.producer.buffer.max_messages = 1000
    true_ends.install(settings.kafka)

    def raw_topic(name: str) -> Any:
        return app.topic(name, key_serializer="raw", value_serializer="raw")

    stage = new_stage(
        # Keys and values use the app defaults: raw (utf-8) keys, JSON values.
        table=app.Table("task_state", default=None, key_type=str),
        priced_calls=raw_topic(topics.priced_calls),
        task_snapshots=raw_topic(topics.task_snapshots),
        dead_letter=raw_topic(topics.dead_letter),
        book=book,
        window=OutcomeWindow(
            default_ms=settings.worker.outcome_window_s * 1000,
            by_scenario_ms={
                scenario: seconds * 1000
                for scenario, seconds in settings.worker.outcome_window_s_by_scenario.items()
            },
        ),
        retention=RetentionIndex(settings.worker.state_retention_s * 1000),
        max_future_ms=settings.worker.max_future_s * 1000,
    )

    table: Any = stage.store.table

    async def reindex() -> None:
        stage.store.reindex()

    table.on_recover(reindex)

    calls.register(app, stage, raw_topic(topics.calls))
    tasks.register(app, stage, raw_topic(topics.tasks))
    outcomes.register(app, stage, raw_topic(topics.outcomes))
    return app, stage
