"""ClickHouse goes away mid-stream: the sink pauses, backs off, keeps at most one batch
in memory, and once ClickHouse is back writes everything, exactly once.

The outage is real, not simulated by a stub: the table the sink writes is detached
from the running engine (UNKNOWN_TABLE on every write) and attached again later.
The sink runs in this process so that the test can share its chDB engine.
"""

from __future__ import annotations

import random
import threading

import pytest

from pipeline.clickhouse.client import connect
from pipeline.clickhouse.migrate import migrate
from pipeline.config import KafkaSettings, Settings
from pipeline.demo.workload import generate, write_jsonl
from pipeline.embedded.broker import EmbeddedBroker
from pipeline.kafka.produce import produce_lines
from pipeline.runtime.progress import PipelineProgress
from pipeline.runtime.supervisor import Stack
from pipeline.sink.clickhouse import ClickHouseSink
from pipeline.sink.runner import SinkRunner
from tests.integration.conftest import assert_matches_reference, await_condition

pytestmark = pytest.mark.integration


def test_sink_rides_out_a_clickhouse_outage(isolated_settings: Settings) -> None:
    events = generate(600, seed=21)
    delivered = list(events)
    random.Random(8).shuffle(delivered)
    half = len(delivered) // 2
    batch_rows = 100
    with EmbeddedBroker() as broker:
        settings = isolated_settings.replace(
            kafka=KafkaSettings(bootstrap=broker.bootstrap),
            sink=isolated_settings.sink.model_copy(
                update={"batch_rows": batch_rows, "retry_initial_s": 0.1, "retry_max_s": 0.8}
            ),
        )
        client = connect(settings.clickhouse, settings.stack)
        migrate(client)
        operator = connect(settings.clickhouse, settings.stack, create=False)
        runner = SinkRunner(settings, ClickHouseSink(client, settings.topics))
        sink_thread = threading.Thread(target=runner.run, name="sink")
        with (
            PipelineProgress(settings) as progress,
            Stack(settings, settings.stack.data_dir / "logs", roles=("worker",)) as stack,
        ):
            sink_thread.start()
            try:
                produce_lines(settings.kafka, settings.topics, write_jsonl(delivered[:half]))
                await_condition(lambda: runner.written["task_changes"] > 0, 120, "the first rows")

                operator.command("DETACH TABLE calls")  # the outage begins
                produce_lines(settings.kafka, settings.topics, write_jsonl(delivered[half:]))
                largest_batch = 0

                def backed_off_to_the_cap() -> bool:
                    nonlocal largest_batch
                    stack.check_alive()
                    largest_batch = max(largest_batch, len(runner.batch))
                    return runner.last_retry_delay_s == settings.sink.retry_max_s

                await_condition(backed_off_to_the_cap, 120, "the backoff to reach its cap")
                failed_during_outage = runner.failed_writes
                # Everything the worker produced meanwhile waits in Kafka, not in memory.
                outputs = progress.sink_probe.end_offsets(settings.topics.sink_inputs())
                waiting_in_kafka = progress.sink_probe.remaining(outputs)
                operator.command("ATTACH TABLE calls")  # the outage ends

                progress.wait_flushed(240, stack.check_alive)
            finally:
                runner.stop()
                sink_thread.join(60)
    # Capped exponential backoff: 0.1, 0.2, 0.4, 0.8, 0.8, ...
    assert failed_during_outage >= 4
    assert largest_batch <= batch_rows
    assert waiting_in_kafka > batch_rows
    assert not sink_thread.is_alive()
    assert_matches_reference(operator, events)
    client.close()
    operator.close()
