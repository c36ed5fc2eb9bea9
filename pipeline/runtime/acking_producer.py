"""A confluent-kafka producer for asyncio code: each send returns a future that the
broker's acknowledgement (``acks=all``) resolves."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import KafkaException

from pipeline.config import KafkaSettings
from pipeline.errors import KafkaError
from pipeline.kafka.produce import make_producer


class Backpressure(Exception):
    """The collector cannot take more now; answer 503 with Retry-After."""


class AckingProducer:
    """Sends from the event loop; delivery reports arrive on a polling thread and
    resolve the futures on the loop. :attr:`inflight` counts unacknowledged records."""

    def __init__(self, kafka: KafkaSettings, loop: asyncio.AbstractEventLoop) -> None:
        self._producer = make_producer(kafka)
        self._loop = loop
        self.inflight = 0
        self.failed = False
        self._stopping = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="collector-acks", daemon=True)
        self._poller.start()

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> asyncio.Future[None]:
        """Queue one record; the future resolves on its acknowledgement or fails with
        KafkaError. Raises Backpressure when the producer's queue is full."""
        future: asyncio.Future[None] = self._loop.create_future()

        def delivered(error: ConfluentError | None, _message: Any) -> None:
            self._loop.call_soon_threadsafe(self._settle, future, error)

        try:
            self._producer.produce(
                topic, value=value, key=key, headers=headers, on_delivery=delivered
            )
        except BufferError:
            raise Backpressure("the producer's queue is full") from None
        except KafkaException as exc:  # refused locally (too large, unknown topic...)
            raise KafkaError.wrap("produce", exc) from None
        self.inflight += 1
        return future

    def _settle(self, future: asyncio.Future[None], error: ConfluentError | None) -> None:
        self.inflight -= 1
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            self.failed = self.failed or error.fatal()
            future.set_exception(KafkaError("produce", None, error.name(), error.str()))

    def _poll(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.05)

    def close(self, timeout_s: float = 30) -> None:
        """Deliver what is queued (up to ``timeout_s``), then stop polling."""
        self._producer.flush(timeout_s)
        self._stopping.set()
        self._poller.join()
        self._producer.close()
