"""Topic administration: create what is missing, check co-partitioning."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from pipeline.config import KafkaSettings, TopicSettings
from pipeline.errors import ConfigError, KafkaError


def admin_client(kafka: KafkaSettings) -> AdminClient:
    return AdminClient(kafka.librdkafka())  # type: ignore[arg-type]


def partition_counts(
    kafka: KafkaSettings, topics: list[str], timeout_s: float = 10
) -> dict[str, int]:
    """Partition count of each existing topic among ``topics``."""
    try:
        metadata = admin_client(kafka).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaError.wrap("list_topics", exc) from None
    return {
        name: len(meta.partitions)
        for name, meta in metadata.topics.items()
        if name in topics and meta.error is None
    }


def ensure_topics(kafka: KafkaSettings, topics: TopicSettings, timeout_s: float = 30) -> None:
    """Create missing topics; refuse input topics that are not co-partitioned.

    The join needs every event of a task in the same partition number of the
    three input topics, so they must have equal partition counts.
    """
    wanted = [*topics.inputs(), topics.dead_letter, topics.priced_calls, topics.task_snapshots]
    create_missing(kafka, wanted, topics.partitions, topics.replication_factor, timeout_s)
    counts = partition_counts(kafka, topics.inputs())
    if len(set(counts.values())) > 1:
        raise ConfigError(
            f"input topics are not co-partitioned: {counts}; give "
            f"{', '.join(topics.inputs())} the same number of partitions"
        )


def create_missing(
    kafka: KafkaSettings, names: list[str], partitions: int, replication: int, timeout_s: float
) -> None:
    """Create those of ``names`` that do not exist yet (one that appears meanwhile is fine)."""
    existing = partition_counts(kafka, names)
    missing = [
        NewTopic(name, num_partitions=partitions, replication_factor=replication)
        for name in names
        if name not in existing
    ]
    if missing:
        # Keep the client referenced until the futures resolve, or librdkafka destroys it.
        admin = admin_client(kafka)
        futures = admin.create_topics(missing, request_timeout=timeout_s)
        for name, future in futures.items():
            try:
                future.result(timeout_s)
            except KafkaException as exc:
                err = exc.args[0]
                if getattr(err, "name", lambda: "")() != "TOPIC_ALREADY_EXISTS":
                    raise KafkaError.wrap(f"create_topics({name})", exc) from None
