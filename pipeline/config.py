"""Settings, one class per component, read from flags and ``COSTFLOW_*`` variables.

Defaults give the embedded stack under a local data directory: no broker address
means "start Tansu", a ``chdb://`` DSN means "ClickHouse in-process".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import ConfigError
from pipeline.resources import default_price_book

DEFAULT_DATA_DIR = Path(".costflow")


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)


class StackSettings(_Settings):
    """Where local state lives."""

    model_config = SettingsConfigDict(env_prefix="COSTFLOW_", extra="ignore", frozen=True)
    data_dir: Path = DEFAULT_DATA_DIR


class KafkaSettings(_Settings):
    """How to reach Kafka. ``bootstrap`` unset means the embedded broker."""

    model_config = SettingsConfigDict(env_prefix="COSTFLOW_KAFKA_", extra="ignore", frozen=True)
    bootstrap: str | None = None
    embedded_port: int = 19092
    # The embedded broker keeps its data under <data dir>/broker, so a restart (or a
    # SIGKILL) loses no acknowledged record; false keeps it in memory.
    embedded_durable: bool = True
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    # Short sessions: a group join on the embedded broker otherwise waits ~20 s.
    session_timeout_ms: int = Field(default=6000, ge=1000)
    heartbeat_interval_ms: int = Field(default=500, ge=100)

    @property
    def embedded(self) -> bool:
        return self.bootstrap is None

    def resolved_bootstrap(self) -> str:
        return self.bootstrap or f"127.0.0.1:{self.embedded_port}"

    def librdkafka(self) -> dict[str, object]:
        """Connection settings for confluent-kafka clients (secrets included, never logged)."""
        conf: dict[str, object] = {
            "bootstrap.servers": self.resolved_bootstrap(),
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = str(self.ssl_ca_location)
        return conf


class TopicSettings(_Settings):
    """Topic names. Inputs must be co-partitioned: same partition count, keyed by task_id."""

    model_config = SettingsConfigDict(env_prefix="COSTFLOW_TOPIC_", extra="ignore", frozen=True)
    calls: str = "costflow.calls"
    tasks: str = "costflow.tasks"
    outcomes: str = "costflow.outcomes"
    dead_letter: str = "costflow.dead-letter"
    priced_calls: str = "costflow.priced-calls"
    task_snapshots: str = "costflow.task-snapshots"
    partitions: int = Field(default=4, ge=1, le=10_000)
    replication_factor: int = Field(default=1, ge=1)

    @classmethod
    def with_prefix(cls, prefix: str, **overrides: object) -> TopicSettings:
        names = {
            "calls": f"{prefix}calls",
            "tasks": f"{prefix}tasks",
            "outcomes": f"{prefix}outcomes",
            "dead_letter": f"{prefix}dead-letter",
            "priced_calls": f"{prefix}priced-calls",
            "task_snapshots": f"{prefix}task-snapshots",
        }
        names.update({k: v for k, v in overrides.items() if isinstance(v, str)})
        extra = {k: v for k, v in overrides.items() if not isinstance(v, str)}
        return cls(**names, **extra)  # type: ignore[arg-type]

    def inputs(self) -> list[str]:
        return [self.calls, self.tasks, self.outcomes]

    def sink_inputs(self) -> list[str]:
        return [self.priced_calls, self.task_snapshots, self.dead_letter]


class ClickHouseSettings(_Settings):
    """ClickHouse server (http/https DSN) or embedded chDB (``chdb:///path``)."""

    model_config = SettingsConfigDict(
        env_prefix="COSTFLOW_CLICKHOUSE_", extra="ignore", frozen=True
    )
    dsn: str | None = None
    database: str = "costflow"
    username: str | None = None
    password: SecretStr | None = None

    @field_validator("database")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not value.replace("_", "").isalnum():
            raise ValueError(f"database name {value!r} must be letters, digits and _")
        return value

    def resolved_dsn(self, stack: StackSettings) -> str:
        if self.dsn:
            scheme = urlparse(self.dsn).scheme
            if scheme not in {"chdb", "http", "https", "clickhouse", "clickhouses"}:
                raise ConfigError(
                    f"COSTFLOW_CLICKHOUSE_DSN scheme {scheme!r} is not supported; "
                    "use chdb:///path, http://host:8123 or https://host:8443"
                )
            return self.dsn
        return f"chdb://{(stack.data_dir / 'clickhouse').resolve()}"


def comma_paths(value: str) -> list[Path]:
    """A comma-separated setting as paths (blank entries skipped)."""
    return [Path(p.strip()) for p in value.split(",") if p.strip()]


class WorkerSettings(_Settings):
    """Stage 1: the Faust join-and-price worker."""

    model_config = SettingsConfigDict(env_prefix="COSTFLOW_WORKER_", extra="ignore", frozen=True)
    app_id: str = "costflow-stage1"
    price_book_dir: Path = Field(default_factory=default_price_book)
    commit_interval_s: float = Field(default=1.0, gt=0)
    # Outputs leave as one record batch per topic partition per fetch: no linger.
    producer_linger_ms: int = Field(default=0, ge=0, le=1000)
    # Input records per fetch, and fetches whose outputs may be in flight at once:
    # together they bound a worker's memory (records x (input + ~1.4 outputs) bytes).
    max_poll_records: int = Field(default=2000, ge=1)
    max_fetches_in_flight: int = Field(default=4, ge=1, le=64)
    # Bytes per partition per fetch; raise it if fetches stall below max_poll_records.
    max_fetch_bytes: int = Field(default=4 * 1_048_576, ge=65_536)
    # A task with no outcome this long after its last event is unresolved (per scenario
    # overrides by scenario_id); see OutcomeWindow for the hour rounding.
    outcome_window_s: int = Field(default=86_400, ge=0)
    outcome_window_s_by_scenario: dict[str, int] = Field(default_factory=dict)
    # A task leaves the worker's state this long (event time) after its outcome
    # deadline; later events for it are dead-lettered as too_late.
    state_retention_s: int = Field(default=7 * 86_400, ge=3600)
    # Events stamped more than this ahead of the worker's clock are dead-lettered as
    # future_timestamp (they would push the watermark past every true event).
    max_future_s: int = Field(default=3600, ge=0)
    # Exit (and be restarted) when input waits and nothing moves this long (agents.stall).
    stall_timeout_s: int = Field(default=120, ge=10)
    # How often the worker logs its counters (processed, duplicates, dead-lettered, unpriced).
    report_interval_s: float = Field(default=30.0, gt=0)
    log_level: str = "warning"
    # /metrics, /healthz, /readyz (pipeline.runtime.health_server); no port: not served.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    # Alert rule files (comma-separated) whose task_budget caps stage 1 checks on every
    # snapshot; empty: the sink's (COSTFLOW_SINK_ALERT_RULES), so `up` needs one.
    alert_rules: str = ""

    def alert_rule_files(self) -> list[Path]:
        """``alert_rules`` as paths."""
        return comma_paths(self.alert_rules)


class IngestSettings(_Settings):
    """``costflow ingest otlp``: OpenTelemetry trace exports in, call events out."""

    model_config = SettingsConfigDict(env_prefix="COSTFLOW_INGEST_", extra="ignore", frozen=True)
    # The OpenTelemetry Collector Kafka exporter's traces topic and encoding.
    otlp_topic: str = "otlp_spans"
    otlp_encoding: Literal["otlp_proto", "otlp_json"] = "otlp_proto"
    otlp_group_id: str = "costflow-ingest-otlp"
    # The span (or resource) attribute holding the task id; without it,
    # gen_ai.conversation.id, else the trace id (pipeline.ingest.otlp).
    task_id_attribute: str = "costflow.task_id"
    # Records per produce-and-commit round.
    batch_records: int = Field(default=500, ge=1)
    # `ingest otlp`'s /metrics, /healthz, /readyz; no port: not served.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    # `costflow ingest http` (the HTTP collector; part of `costflow up`). 4318 is
    # OTLP/HTTP's port, so an OpenTelemetry SDK exporter reaches /v1/traces unchanged.
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=4318, ge=1, le=65535)
    # Bearer token clients must send; required unless the collector listens on loopback.
    http_token: SecretStr | None = None
    http_token_file: Path | None = None
    http_max_request_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    http_max_records: int = Field(default=10_000, ge=1)
    # Records sent and not yet acknowledged, across requests: above it, 503 + Retry-After.
    http_max_inflight_records: int = Field(default=100_000, ge=1)
    # How long a request waits for the broker's acknowledgements before a 503.
    http_ack_timeout_s: float = Field(default=30.0, gt=0)
    # The largest record the broker takes (Kafka's message.max.bytes, 1 MB by default).
    http_max_record_bytes: int = Field(default=1_000_000, ge=1024)

    @model_validator(mode="after")
    def _room_for_one_request(self) -> IngestSettings:
        if self.http_max_inflight_records < self.http_max_records:
            raise ValueError(
                f"http_max_inflight_records ({self.http_max_inflight_records}) is below "
                f"http_max_records ({self.http_max_records}): a full request could never be "
                "taken; raise COSTFLOW_INGEST_HTTP_MAX_INFLIGHT_RECORDS"
            )
        return self

    def bearer_token(self) -> str | None:
        """The token from ``http_token``, else the first line of ``http_token_file``."""
        if self.http_token is not None:
            return self.http_token.get_secret_value()
        if self.http_token_file is not None:
            try:
                token = self.http_token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"COSTFLOW_INGEST_HTTP_TOKEN_FILE {self.http_token_file}: {exc.strerror}"
                ) from None
            if not token:  # an empty file must not turn authentication off
                raise ConfigError(
                    f"COSTFLOW_INGEST_HTTP_TOKEN_FILE {self.http_token_file} is empty: write "
                    "the token in it, or unset the variable to run without one on loopback"
                )
            return token
        return None


class AlertsSettings(_Settings):
    """``costflow alerts run`` as a process of its own (under ``up``, the sink
    evaluates rules and serves their metrics on its own port)."""

    model_config = SettingsConfigDict(env_prefix="COSTFLOW_ALERTS_", extra="ignore", frozen=True)
    # /metrics, /healthz, /readyz (pipeline.runtime.health_server); no port: not served.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"


class SinkSettings(_Settings):
    """Stage 2: batches enriched records into ClickHouse."""

    model_config = SettingsConfigDict(env_prefix="COSTFLOW_SINK_", extra="ignore", frozen=True)
    group_id: str = "costflow-sink"
    # Where stage 2 writes (see pipeline.sink.stores).
    store: str = "clickhouse"
    batch_rows: int = Field(default=20_000, ge=1)
    flush_interval_s: float = Field(default=1.0, gt=0)
    auto_migrate: bool = True
    retry_initial_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    # Stored task rows kept in memory to skip a ClickHouse lookup per batch.
    task_cache_entries: int = Field(default=200_000, ge=0)
    # /metrics, /healthz, /readyz (pipeline.runtime.health_server); no port: not served.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    # Alert rule files (comma-separated) the sink evaluates beside its writes, so
    # `costflow up` raises alerts (docs/alerts.md); empty: none.
    alert_rules: str = ""

    def alert_rule_files(self) -> list[Path]:
        """``alert_rules`` as paths."""
        return comma_paths(self.alert_rules)


class Settings:
    """All component settings together, as one process sees them."""

    def __init__(
        self,
        stack: StackSettings | None = None,
        kafka: KafkaSettings | None = None,
        topics: TopicSettings | None = None,
        clickhouse: ClickHouseSettings | None = None,
        worker: WorkerSettings | None = None,
        sink: SinkSettings | None = None,
    ) -> None:
        self.stack = stack or StackSettings()
        self.kafka = kafka or KafkaSettings()
        self.topics = topics or TopicSettings()
        self.clickhouse = clickhouse or ClickHouseSettings()
        self.worker = worker or WorkerSettings()
        self.sink = sink or SinkSettings()

    def replace(self, **parts: object) -> Settings:
        """The same settings with some components swapped, e.g. ``replace(kafka=...)``."""
        current: dict[str, object] = {
            "stack": self.stack, "kafka": self.kafka, "topics": self.topics,
            "clickhouse": self.clickhouse, "worker": self.worker, "sink": self.sink,
        }  # fmt: skip
        unknown = set(parts) - set(current)
        if unknown:
            raise TypeError(f"no settings component named {sorted(unknown)}")
        current.update(parts)
        return Settings(**current)  # type: ignore[arg-type]

    def env(self) -> dict[str, str]:
        """The same settings as environment variables, for child processes."""
        out: dict[str, str] = {"COSTFLOW_DATA_DIR": str(self.stack.data_dir.resolve())}
        out["COSTFLOW_KAFKA_BOOTSTRAP"] = self.kafka.resolved_bootstrap()
        out["COSTFLOW_KAFKA_EMBEDDED_PORT"] = str(self.kafka.embedded_port)
        out["COSTFLOW_KAFKA_EMBEDDED_DURABLE"] = str(self.kafka.embedded_durable).lower()
        for prefix, model in (
            ("COSTFLOW_TOPIC_", self.topics),
            ("COSTFLOW_WORKER_", self.worker),
            ("COSTFLOW_SINK_", self.sink),
        ):
            for name, value in model.model_dump().items():
                if isinstance(value, dict | list):
                    out[prefix + name.upper()] = json.dumps(value)
                elif value is not None:
                    out[prefix + name.upper()] = str(value)
        out["COSTFLOW_CLICKHOUSE_DSN"] = self.clickhouse.resolved_dsn(self.stack)
        out["COSTFLOW_CLICKHOUSE_DATABASE"] = self.clickhouse.database
        return out
