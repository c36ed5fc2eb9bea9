"""The pipeline's unfinished event time, from real committed offsets on the embedded
broker: what bounds the data's time for alert rules (pipeline.kafka.backlog)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.config import KafkaSettings
from pipeline.embedded.broker import EmbeddedBroker
from pipeline.kafka.backlog import Stage, input_event_time, priced_call_time, read_backlog

T0 = datetime(2026, 11, 30, 10, tzinfo=UTC)


def _ms(t: datetime) -> int:
    return int((t - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)


def test_the_first_unfinished_record_of_each_lagging_partition() -> None:
    with EmbeddedBroker() as broker:
        kafka = KafkaSettings(bootstrap=broker.bootstrap)
        uid = uuid.uuid4().hex[:6]
        inputs, outputs = f"in-{uid}", f"out-{uid}"
        admin = AdminClient(kafka.librdkafka())  # kept: its futures die with it
        for future in admin.create_topics(
            [NewTopic(inputs, 2, 1), NewTopic(outputs, 1, 1)]
        ).values():
            future.result(30)
        producer = Producer(kafka.librdkafka())
        # Partition 0: 10:00, 10:05 (epoch ms), 10:10; partition 1: 10:01, 10:02.
        for partition, minutes in ((0, (0, 5, 10)), (1, (1, 2))):
            for m in minutes:
                t = T0 + timedelta(minutes=m)
                ts: object = _ms(t) if m == 5 else t.isoformat().replace("+00:00", "Z")
                producer.produce(inputs, json.dumps({"ts": ts}).encode(), partition=partition)
        for m in (3, 4):
            record = {"kind": "call", "ts_ms": _ms(T0 + timedelta(minutes=m))}
            producer.produce(outputs, json.dumps(record).encode(), partition=0)
        assert producer.flush(30) == 0

        stage1, sink = f"stage1-{uid}", f"sink-{uid}"
        stages = [
            Stage(stage1, {inputs: input_event_time}),
            Stage(sink, {outputs: priced_call_time}),
        ]

        def commit(group: str, offsets: list[TopicPartition]) -> None:
            consumer = Consumer({**kafka.librdkafka(), "group.id": group})
            consumer.commit(offsets=offsets, asynchronous=False)
            consumer.close()

        # Stage 1 finished one record of partition 0 and all of partition 1; the sink
        # has committed nothing yet.
        commit(stage1, [TopicPartition(inputs, 0, 1), TopicPartition(inputs, 1, 2)])
        backlog = read_backlog(kafka, stages)
        assert backlog.behind == {
            (stage1, inputs, 0): T0 + timedelta(minutes=5),  # the record at offset 1
            (sink, outputs, 0): T0 + timedelta(minutes=3),  # from the beginning
        }
        assert backlog.earliest == T0 + timedelta(minutes=3)

        # Both stages at the end of every partition: nothing holds the data's time back.
        commit(stage1, [TopicPartition(inputs, 0, 3)])
        commit(sink, [TopicPartition(outputs, 0, 2)])
        finished = read_backlog(kafka, stages)
        assert finished.behind == {} and finished.earliest is None
