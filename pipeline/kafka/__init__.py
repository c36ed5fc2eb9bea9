"""Kafka client helpers shared by every stage and command: topics (creation and
co-partitioning), producing JSON-lines files keyed by ``task_id``, and offsets
(true end offsets, a consumer group's progress). No stage logic here."""
