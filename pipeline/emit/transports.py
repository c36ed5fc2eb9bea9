"""Where the emitter's events go: straight to Kafka, or to the HTTP collector.

Both take events as they are built and confirm them on :meth:`flush`: Kafka's when
the broker acknowledged them, the collector's when it answered 2xx (it answers only
after Kafka acknowledged every event of the request).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Protocol

from pipeline.config import KafkaSettings, TopicSettings
from pipeline.emit.events import to_json
from pipeline.errors import CollectorRefused
from pipeline.events.models import CallEvent, OutcomeEvent, TaskEvent
from pipeline.kafka.produce import Sender

AnyEvent = CallEvent | TaskEvent | OutcomeEvent


class Transport(Protocol):
    """Sends events; :meth:`flush` returns how many were confirmed in all."""

    def send(self, event: AnyEvent) -> None: ...

    def flush(self, timeout_s: float) -> int: ...

    def close(self) -> None: ...


class KafkaTransport:
    """To the input topics, keyed by task id, ``acks=all``."""

    def __init__(self, kafka: KafkaSettings, topics: TopicSettings) -> None:
        self._topics = {"call": topics.calls, "task": topics.tasks, "outcome": topics.outcomes}
        self._sender = Sender(kafka)

    def send(self, event: AnyEvent) -> None:
        self._sender.send(self._topics[event.type], event.task_id.encode(), to_json(event))

    def flush(self, timeout_s: float) -> int:
        """Raises KafkaError naming what was not delivered."""
        return sum(self._sender.flush(timeout_s).values())

    def close(self) -> None:
        self._sender.close()


class HttpTransport:
    """To ``POST <url>/v1/events`` in batches of ``batch_records`` JSON lines, with a
    bearer token when given."""

    def __init__(self, url: str, token: str | None = None, batch_records: int = 500) -> None:
        self._endpoint = url.rstrip("/") + "/v1/events"
        self._token = token
        self._batch_records = batch_records
        self._pending: list[bytes] = []
        self._confirmed = 0

    def send(self, event: AnyEvent) -> None:
        self._pending.append(to_json(event))

    def flush(self, timeout_s: float) -> int:
        """POST what is pending. Raises CollectorRefused with the collector's answer
        (a 503's ``retryable`` is true: flush again later; event ids make it safe)."""
        while self._pending:
            batch = self._pending[: self._batch_records]
            self._post(b"\n".join(batch), timeout_s)
            del self._pending[: len(batch)]
            self._confirmed += len(batch)
        return self._confirmed

    def _post(self, body: bytes, timeout_s: float) -> None:
        headers = {"Content-Type": "application/x-ndjson"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self._endpoint, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise CollectorRefused(error.code, error.read().decode(errors="replace")) from None
        except OSError as error:  # refused, reset, timed out: nothing is claimed
            raise CollectorRefused(503, f"{self._endpoint} unreachable: {error}") from None

    def close(self) -> None:
        self._pending.clear()
