"""Stage 1's batch consumer: offsets are acked only after their outputs are delivered.

These drive the real :class:`BatchConsumer` of a real (unstarted) Faust app: its
fetch (``_wait_next_records``) returns records built as aiokafka's own
``ConsumerRecord``; what Faust would commit is read from its own bookkeeping
(``_new_offset``). The broker-level counterparts are the integration tests
(SIGKILL while a fetch's outputs are in flight: ``tests/integration/test_crash.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka

from pipeline.agents import batch_consumer
from pipeline.agents.batch import InputRecord

TOPIC = "t-calls"
TP = TopicPartition(TOPIC, 0)


def test_faust_internals_the_batch_path_relies_on_are_unchanged() -> None:
    """Fails when a faust-streaming upgrade changes what BatchConsumer replaces or uses:
    re-read the new stock drain loop, then update the digest."""
    assert faust.__version__ == "0.15.3"
    stock = inspect.getsource(faust_consumer.Consumer._drain_messages)
    assert hashlib.sha256(stock.encode()).hexdigest()[:16] == "44a2500309e83c63", (
        "Faust's per-message drain loop changed; compare it with BatchConsumer"
    )
    consumer = faust_consumer.Consumer
    for name in ("_wait_next_records", "perform_seek", "_add_gap", "track_message", "ack",
                 "_new_offset", "wait_empty", "commit", "highwater"):  # fmt: skip
        assert callable(getattr(consumer, name)), name
    source = inspect.getsource(faust_consumer.Consumer)
    for attribute in ("_read_offset", "_acked", "_acked_index", "_committed_offset",
                      "_n_acked", "_commit_every", "_buffered_partitions",
                      "_unacked_messages"):  # fmt: skip
        assert f"self.{attribute}" in source, attribute
    assert callable(faust_aiokafka.Consumer._to_message)
    assert callable(faust_aiokafka.Producer._ensure_producer)


class Handler:
    """Records each fetch; its delivery completes when the test says so."""

    topics = {TOPIC: "call"}
    max_in_flight = 4

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.fetches: list[Sequence[InputRecord]] = []
        self.deliveries: list[asyncio.Future[None]] = []

    async def handle(self, records: Sequence[InputRecord]) -> asyncio.Future[None]:
        if self.fail:
            raise KeyError("a bug in the handler")
        self.fetches.append(records)
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivered)
        return delivered


def records(*offsets: int) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        ConsumerRecord(TOPIC, 0, offset, 0, 0, b"t", b"{}", None, 1, 2, ()) for offset in offsets
    ]


async def consumer_with(handler: Handler, fetches: list[list[Any]]) -> tuple[Any, Any]:
    """A BatchConsumer whose fetches are ``fetches``, then nothing; and its stop switch."""
    batch_consumer.register()
    app = faust.App(
        f"t-batch-{id(handler)}", broker=f"{batch_consumer.SCHEME}://localhost:1",
        store="memory://", autodiscover=False, web_enabled=False,
    )  # fmt: skip
    batch_consumer.install(app, handler)
    consumer = app.consumer
    assert isinstance(consumer, batch_consumer.BatchConsumer)
    app.topics._acking_topics.add(TOPIC)
    queue = list(fetches)

    async def next_records(_timeout: float) -> tuple[dict[Any, list[Any]], set[Any]]:
        await asyncio.sleep(0)
        return ({TP: queue.pop(0)} if queue else {}), {TP}

    consumer._wait_next_records = next_records
    consumer.highwater = lambda _tp: 0  # no broker here: the end offset is not read
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    return consumer, fetcher


async def until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


def test_offsets_are_acked_only_after_the_fetch_is_delivered_and_in_fetch_order() -> None:
    async def run() -> None:
        handler = Handler()
        consumer, fetcher = await consumer_with(handler, [records(0, 1, 2), records(3, 4)])
        draining = asyncio.ensure_future(consumer._drain_messages(fetcher))
        await until(lambda: len(handler.deliveries) == 2)
        assert [r.offset for r in handler.fetches[0]] == [0, 1, 2]
        # Nothing delivered: nothing acked, Faust would commit nothing, and a
        # rebalance (wait_empty) waits for both fetches.
        assert consumer._new_offset(TP) is None and len(consumer._unacked_messages) == 2
        # The later fetch delivered first: still nothing, acks keep fetch order.
        handler.deliveries[1].set_result(None)
        await asyncio.sleep(0)
        assert consumer._new_offset(TP) is None
        handler.deliveries[0].set_result(None)
        await until(lambda: not consumer._unacked_messages)
        assert consumer._new_offset(TP) == 5  # every offset 0..4, committed as "next: 5"
        consumer._stopped.set()
        await draining

    asyncio.run(run())


def test_a_failed_delivery_stops_the_worker_with_nothing_acked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stops: list[tuple[str, int]] = []
    monkeypatch.setattr(
        batch_consumer, "fail_stop", lambda _e, where, code=70: stops.append((where, code))
    )

    async def run() -> Any:
        handler = Handler()
        consumer, fetcher = await consumer_with(handler, [records(0, 1)])
        draining = asyncio.ensure_future(consumer._drain_messages(fetcher))
        await until(lambda: handler.deliveries)
        handler.deliveries[0].set_exception(OSError("broker said no"))
        await until(lambda: stops)
        consumer._stopped.set()
        await draining
        return consumer

    consumer = asyncio.run(run())
    # A broker failure: exit to be restarted (75), unlike a bug (70).
    assert stops == [("delivering a fetch's outputs", 75)]
    assert consumer._new_offset(TP) is None


def test_a_handler_error_stops_the_worker_before_anything_is_acked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stops: list[str] = []
    monkeypatch.setattr(batch_consumer, "fail_stop", lambda _e, where, code=70: stops.append(where))

    async def run() -> Any:
        consumer, fetcher = await consumer_with(Handler(fail=True), [records(0, 1, 2)])
        with pytest.raises(KeyError):
            await consumer._drain_messages(fetcher)
        return consumer

    consumer = asyncio.run(run())
    assert stops == ["handling a fetch of 3 records"]
    assert consumer._new_offset(TP) is None


def test_changelog_records_are_encoded_as_the_table_encodes_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fetch handler writes ``task_state``'s changelog itself: byte for byte what
    the table's own changelog topic would write, for keys and stored states with
    quotes, escapes and non-ASCII text, and for a deletion."""
    from pipeline.app import create_app, encode_table_change
    from pipeline.config import KafkaSettings, Settings, WorkerSettings

    settings = Settings(kafka=KafkaSettings(bootstrap="localhost:1"),
                        worker=WorkerSettings(app_id="t-changelog-encoding"))  # fmt: skip
    # create_app patches Faust's consumer for the process: undone after the test.
    monkeypatch.setattr(faust_aiokafka.Consumer, "highwaters", faust_aiokafka.Consumer.highwaters)
    app, _stage = create_app(settings)  # the worker's own app: nothing connects yet
    table = app.tables["task_state"]
    changelog = table.changelog_topic
    cases = [
        ("task-1", '{"task_id":"task-1","seen":["a"]}'),
        ('t"\\é€', '{"x":"quote \\" and é, \\u2028"}'),
        ("\x00costflow.watermark/3", "1790000000000"),
        ("deleted", None),
    ]
    for key, value in cases:
        faust_key, _ = changelog.prepare_key(key, table.key_serializer)
        faust_value = (
            None if value is None else changelog.prepare_value(value, table.value_serializer)[0]
        )
        assert encode_table_change(key, value) == (faust_key, faust_value), key
