"""The data's time for alert rules: stored calls, bounded by the pipeline's progress.

Alert windows end where the data is complete. The latest stored call alone is not
that: with one partition behind (a slow worker, a sink catching up), the newest
calls of the other partitions are stored while older calls of the lagging one are
not, and an hour judged then is judged on part of its traffic (a false drop, a
missed spike). So the evaluator also reads both stages' committed offsets
(:mod:`pipeline.kafka.backlog`) and ends windows before the first event either stage
has not finished.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pipeline.config import Settings
from pipeline.kafka.backlog import (
    Backlog,
    Stage,
    input_event_time,
    priced_call_time,
    read_backlog,
    task_snapshot_time,
)

log = logging.getLogger("costflow.alerts")


def pipeline_stages(settings: Settings) -> list[Stage]:
    """Stage 1 (its Faust app id is its consumer group) over the input topics, and the
    sink over stage 1's outputs."""
    topics = settings.topics
    return [
        Stage(settings.worker.app_id, {topics.calls: input_event_time,
                                       topics.tasks: input_event_time,
                                       topics.outcomes: input_event_time}),
        Stage(settings.sink.group_id, {topics.priced_calls: priced_call_time,
                                       topics.task_snapshots: task_snapshot_time}),
    ]  # fmt: skip


class DataClock:
    """:meth:`at`: the time alert windows end at, now.

    ``settings`` None: the latest stored call only (``alerts run --data-time
    stored``, for an evaluator that cannot reach Kafka).
    """

    def __init__(self, client: Any, settings: Settings | None) -> None:
        self.client, self.settings = client, settings
        self.backlog = Backlog()

    def at(self, now: datetime) -> datetime | None:
        """The data's time as of the clock ``now``; None when no call is stored.

        Raises :class:`~pipeline.errors.KafkaError` when the pipeline's progress
        cannot be read: windows must then not be judged as complete.
        """
        from pipeline.alerts.engine import data_time

        if self.settings is not None:
            self.backlog = read_backlog(self.settings.kafka, pipeline_stages(self.settings))
        at = data_time(self.client, now, self.backlog.earliest)
        if self.backlog.behind:
            log.info("data time %s: %s", at.isoformat() if at else "-", self.backlog.describe())
        return at
