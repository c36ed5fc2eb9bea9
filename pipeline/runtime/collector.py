"""``costflow ingest http``: an HTTP collector in front of the input topics.

Endpoints (aiohttp; POSTs need ``Authorization: Bearer <token>`` when a token is set):

- ``POST /v1/events``: contract-v1 events, JSON lines or one JSON array. All or
  nothing: one bad record and the answer is 400 with every bad record's line and
  reason, nothing sent (fix and resend; event ids make a resend safe).
- ``POST /v1/litellm``: LiteLLM's ``generic_api`` logger (JSON array, NDJSON or one
  object). Entries no mapper can price are dead-lettered (the sender cannot fix
  them), with the entry minus its ``messages`` and ``response`` as the bytes.
- ``POST /v1/traces``: OTLP/HTTP (``application/x-protobuf`` or ``application/json``).
  Unpriceable inference spans are dead-lettered (the span's attributes without
  content) and reported as OTLP ``partialSuccess``.
- ``GET /metrics`` (Prometheus), ``GET /healthz``, ``GET /readyz``.

A 2xx means the broker acknowledged every record the request made (``acks=all``).
Under back-pressure (too many records awaiting acknowledgement, the producer's queue
full, acknowledgements slower than ``http_ack_timeout_s``) the answer is 503 with
``Retry-After``; anything already sent is idempotent by event id, so a retry is safe.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import prometheus_client as prom
from aiohttp import web

from pipeline.config import IngestSettings, KafkaSettings, TopicSettings
from pipeline.emit.events import to_json
from pipeline.errors import ConfigError, InvalidEvent, KafkaError, SchemaViolation
from pipeline.events.models import CallEvent, is_content_field
from pipeline.ingest import litellm_payload, otlp
from pipeline.records import DeadLetterHeaders
from pipeline.runtime.acking_producer import AckingProducer, Backpressure
from pipeline.runtime.collector_input import contract_events, json_entries

log = logging.getLogger("costflow.collector")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# What /v1/events reads as JSON lines or a JSON array (curl's default form type too).
EVENT_CONTENT_TYPES = frozenset({
    "application/x-ndjson", "application/jsonl", "application/json", "text/plain",
    "application/octet-stream", "application/x-www-form-urlencoded",
})  # fmt: skip
# What a dead letter keeps of a LiteLLM log entry: ids, model, usage, cost, timing,
# the error's class. Everything else (messages, response, model_parameters with a
# system prompt or tools, error text that may quote the prompt) stays out.
LITELLM_KEPT = (
    "id", "litellm_call_id", "trace_id", "call_type", "status", "model", "model_id",
    "custom_llm_provider", "response_cost", "cache_hit", "startTime", "endTime",
    "prompt_tokens", "completion_tokens", "total_tokens", "request_tags",
)  # fmt: skip
Headers = list[tuple[str, str | bytes | None]]
# (topic, key, value, headers) of one record to send
Send = tuple[str, bytes | None, bytes, Headers | None]


class Metrics:
    """The collector's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = prom.CollectorRegistry()
        self.requests = prom.Counter(
            "costflow_collector_requests", "HTTP requests by endpoint and status code",
            ["endpoint", "code"], registry=self.registry,
        )  # fmt: skip
        self.records = prom.Counter(
            "costflow_collector_records",
            "Records by endpoint and outcome (accepted, rejected, refused_with_batch: valid "
            "but in a request refused whole, dead_lettered, skipped)",
            ["endpoint", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.duration = prom.Histogram(
            "costflow_collector_request_duration_seconds",
            "Time from request to answer, acknowledgements included",
            ["endpoint"], registry=self.registry,
        )  # fmt: skip
        self.inflight = prom.Gauge(
            "costflow_collector_inflight_records",
            "Records sent and not yet acknowledged by the broker",
            registry=self.registry,
        )


class Collector:
    """The aiohttp application and what its handlers share."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: TopicSettings,
        ingest: IngestSettings,
        max_future_s: int = 3600,
    ):
        self.kafka, self.topics, self.ingest = kafka, topics, ingest
        self.max_future_ms = max_future_s * 1000
        self.token = ingest.bearer_token()
        if self.token is None and ingest.http_host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError(
                f"the collector would listen on {ingest.http_host} without a token: set "
                "COSTFLOW_INGEST_HTTP_TOKEN_FILE (or COSTFLOW_INGEST_HTTP_TOKEN)"
            )
        self.metrics = Metrics()
        self.producer: AckingProducer | None = None
        # monotonic time the broker last failed to acknowledge in time (readiness)
        self.last_ack_timeout: float | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.ingest.http_max_request_bytes)
        app.router.add_post("/v1/events", self._guard("events", self.events))
        app.router.add_post("/v1/litellm", self._guard("litellm", self.litellm))
        app.router.add_post("/v1/traces", self._guard("traces", self.traces))
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/healthz", self.alive)
        app.router.add_get("/readyz", self.ready)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _app: web.Application) -> None:
        self.producer = AckingProducer(self.kafka, asyncio.get_running_loop())

    async def _stop(self, _app: web.Application) -> None:
        if self.producer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.producer.close)

    def _guard(self, endpoint: str, handler: Handler) -> Handler:
        """Auth, size and back-pressure answers, metrics; the handler does the rest."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            started = time.monotonic()
            try:
                response: web.StreamResponse
                if self.token is not None and not self._authorized(request):
                    response = _json({"error": "missing or wrong bearer token"}, 401)
                else:
                    response = await handler(request)
            except web.HTTPException as refused:  # 400 unreadable body, 413 too large
                response = _json({"error": refused.text or refused.reason}, refused.status)
            except Backpressure as busy:
                response = _json({"error": str(busy)}, 503, {"Retry-After": "1"})
            except KafkaError as failed:  # a delivery failed: nothing is claimed, retry
                log.warning("collector: %s", failed)
                response = _json({"error": str(failed)}, 503, {"Retry-After": "5"})
            except Exception:  # a bug: answered, logged and counted, never a bare 500
                log.exception("collector: %s %s failed", request.method, request.path)
                response = _json({"error": "internal error; see the collector's log"}, 500)
            self.metrics.requests.labels(endpoint, str(response.status)).inc()
            self.metrics.duration.labels(endpoint).observe(time.monotonic() - started)
            return response

        return guarded

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        expected = (self.token or "").encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), expected
        )

    # -- endpoints ---------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        if request.content_type not in EVENT_CONTENT_TYPES:
            return _json(
                {"error": f"Content-Type {request.content_type} is not JSON lines or JSON; "
                          "send application/x-ndjson or application/json"},
                415,
            )  # fmt: skip
        body = await request.read()
        events, rejected = contract_events(
            body, self.ingest.http_max_records, self.ingest.http_max_record_bytes,
            max_future_ms=self.max_future_ms,
        )  # fmt: skip
        if rejected:
            self.metrics.records.labels("events", "rejected").inc(len(rejected))
            # All or nothing: the good records were not taken either; count them too.
            self.metrics.records.labels("events", "refused_with_batch").inc(len(events))
            return _json({"accepted": 0, "rejected": rejected}, 400)
        by_type = {"call": self.topics.calls, "task": self.topics.tasks,
                   "outcome": self.topics.outcomes}  # fmt: skip
        await self._send_all(
            [(by_type[event.type], event.task_id.encode(), raw, None) for event, raw in events]
        )
        self.metrics.records.labels("events", "accepted").inc(len(events))
        return _json({"accepted": len(events)})

    async def litellm(self, request: web.Request) -> web.StreamResponse:
        entries = json_entries(await request.read(), self.ingest.http_max_records)
        sends: list[Send] = []
        dead = 0
        for entry in entries:
            try:
                if not isinstance(entry, dict):
                    raise SchemaViolation(
                        f"a LiteLLM log entry is an object, not {type(entry).__name__}"
                    )
                event = litellm_payload.call_event_of(entry)
            except InvalidEvent as error:
                sends.append(self._dead_letter("litellm entry", _litellm_kept(entry), error))
                dead += 1
                continue
            sends.append((self.topics.calls, event.task_id.encode(), to_json(event), None))
        await self._send_all(sends)
        self.metrics.records.labels("litellm", "accepted").inc(len(entries) - dead)
        self.metrics.records.labels("litellm", "dead_lettered").inc(dead)
        return _json({"accepted": len(entries) - dead, "dead_lettered": dead})

    async def traces(self, request: web.Request) -> web.StreamResponse:
        encoding: otlp.Encoding = (
            "otlp_json" if request.content_type == "application/json" else "otlp_proto"
        )
        body = await request.read()
        try:
            spans = otlp.spans_of(body, encoding)
        except InvalidEvent as error:
            self.metrics.records.labels("traces", "rejected").inc()
            return _json({"error": f"{error.code}: {error}"}, 400)
        sends: list[Send] = []
        messages: list[str] = []
        rejected = skipped = 0
        for span in spans:
            try:
                event: CallEvent | None = otlp.call_event_of(span, self.ingest.task_id_attribute)
            except InvalidEvent as error:
                detail = f"span {span.trace_id}:{span.span_id}"
                sends.append(self._dead_letter(detail, _without_content(span.attributes), error))
                rejected += 1
                messages.append(f"{detail}: {error}")
                continue
            if event is None:
                skipped += 1
                continue
            sends.append((self.topics.calls, event.task_id.encode(), to_json(event), None))
        await self._send_all(sends)
        self.metrics.records.labels("traces", "accepted").inc(len(spans) - rejected - skipped)
        self.metrics.records.labels("traces", "dead_lettered").inc(rejected)
        self.metrics.records.labels("traces", "skipped").inc(skipped)
        partial = {"rejectedSpans": str(rejected), "errorMessage": "; ".join(messages)[:2000]}
        if encoding == "otlp_json":
            return _json({"partialSuccess": partial} if rejected else {})
        return _otlp_proto_response(rejected, partial["errorMessage"])

    async def metrics_page(self, _request: web.Request) -> web.StreamResponse:
        body = prom.generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": prom.CONTENT_TYPE_LATEST})

    async def alive(self, _request: web.Request) -> web.StreamResponse:
        return _text("ok")

    async def ready(self, _request: web.Request) -> web.StreamResponse:
        if self.producer is None or self.producer.failed:
            return _text("not ready: the producer failed", 503)
        timed_out = self.last_ack_timeout
        if timed_out is not None and time.monotonic() - timed_out < self.ingest.http_ack_timeout_s:
            return _text("not ready: the broker did not acknowledge in time just now", 503)
        return _text("ready")

    # -- sending -----------------------------------------------------------------

    def _dead_letter(self, source: str, value: bytes, error: InvalidEvent) -> Send:
        headers: Headers = [
            *DeadLetterHeaders(
                reason=error.code, detail=f"{source}: {error}",
                source_topic="http-collector", source_partition=-1, source_offset=-1,
            ).to_kafka()
        ]  # fmt: skip
        return self.topics.dead_letter, None, value, headers

    async def _send_all(self, sends: list[Send]) -> None:
        """Send every record and wait for every acknowledgement (raises Backpressure)."""
        assert self.producer is not None
        producer = self.producer
        if producer.inflight + len(sends) > self.ingest.http_max_inflight_records:
            raise Backpressure(f"{producer.inflight:,} records await the broker's acknowledgement")
        futures = [producer.send(*send) for send in sends]
        self.metrics.inflight.set(producer.inflight)
        try:
            await asyncio.wait_for(asyncio.gather(*futures), self.ingest.http_ack_timeout_s)
        except TimeoutError:
            self.last_ack_timeout = time.monotonic()
            raise Backpressure(
                f"the broker did not acknowledge within {self.ingest.http_ack_timeout_s:.0f} s"
            ) from None
        finally:
            self.metrics.inflight.set(producer.inflight)


def _litellm_kept(entry: Any) -> bytes:
    """The parts of a LiteLLM log entry a dead letter may keep (:data:`LITELLM_KEPT`,
    the usage object, the error's class)."""
    if not isinstance(entry, dict):
        return json.dumps({"entry_type": type(entry).__name__}).encode()
    kept = {key: entry[key] for key in LITELLM_KEPT if key in entry}
    metadata = entry.get("metadata")
    if isinstance(metadata, dict) and "usage_object" in metadata:
        kept["usage_object"] = metadata["usage_object"]
    error = entry.get("error_information")
    if isinstance(error, dict) and "error_class" in error:
        kept["error_class"] = error["error_class"]
    return json.dumps(kept, default=str).encode()


def _without_content(entry: Any) -> bytes:
    """What a dead letter keeps of an entry: everything but message content."""
    if hasattr(entry, "items"):
        entry = {k: v for k, v in entry.items() if not is_content_field(str(k))}
    return json.dumps(entry, default=str).encode()


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _text(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status)


def _otlp_proto_response(rejected: int, message: str) -> web.Response:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    answer = ExportTraceServiceResponse()
    if rejected:
        answer.partial_success.rejected_spans = rejected
        answer.partial_success.error_message = message
    return web.Response(
        body=answer.SerializeToString(), headers={"Content-Type": "application/x-protobuf"}
    )


def run_collector(
    kafka: KafkaSettings, topics: TopicSettings, ingest: IngestSettings, max_future_s: int = 3600
) -> None:
    """Serve until SIGINT/SIGTERM (aiohttp's own handling). ``max_future_s``: stage 1's
    bound on event times ahead of the clock (``COSTFLOW_WORKER_MAX_FUTURE_S``); events
    beyond it are refused here rather than acknowledged and dead-lettered later."""
    collector = Collector(kafka, topics, ingest, max_future_s)
    log.warning(
        "collector on http://%s:%d (events, litellm, traces; auth %s)",
        ingest.http_host, ingest.http_port, "on" if collector.token else "off (loopback)",
    )  # fmt: skip
    web.run_app(
        collector.app(), host=ingest.http_host, port=ingest.http_port, print=None,
        access_log=None, handle_signals=True,
    )  # fmt: skip
