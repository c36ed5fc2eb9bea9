"""One root error type and a small hierarchy, named for what went wrong.

Every error that reaches a user says what to do next; every error that reaches
the dead-letter topic carries a stable ``code`` that can be counted per reason.
"""

from __future__ import annotations

from typing import Any


class CostflowError(Exception):
    """Root of every error costflow raises on purpose."""

    code: str = "costflow_error"


class ConfigError(CostflowError):
    """Settings are missing or inconsistent; raised at start, never mid-stream."""

    code = "config_error"


# --- input ---------------------------------------------------------------


class InvalidEvent(CostflowError):
    """An input record cannot be accepted as an event of contract v1.

    ``code`` is the dead-letter reason class; ``str(err)`` the human detail.
    """

    code = "invalid_event"


class NotJson(InvalidEvent):
    code = "not_json"


class SchemaViolation(InvalidEvent):
    code = "schema_violation"


class UsageNotMappable(InvalidEvent):
    """A source's usage cannot be put into the contract's disjoint token classes.

    An impossible count (cached tokens above the prompt's, a negative or missing
    count), or a billing mode no price book can express yet (a reserved-capacity
    tier, a speed premium): refusing it is visible, pricing it at standard rates
    would be a silently wrong figure.
    """

    code = "usage_not_mappable"


class KeyMismatch(InvalidEvent):
    """The record's Kafka key is not its task_id, so it may sit in the wrong partition."""

    code = "key_mismatch"


class WrongTopic(InvalidEvent):
    """A valid event of one type arrived on another type's topic."""

    code = "wrong_topic"


class TooLate(InvalidEvent):
    """An event for a task whose state has passed its retention and left the worker.

    Counting it would start the task again from nothing, so it is set aside, with
    its bytes, for a replay after raising the retention.
    """

    code = "too_late"


class FutureTimestamp(InvalidEvent):
    """An event stamped further in the future than clocks can disagree.

    Accepted, it would move its partition's event-time watermark ahead, and every
    later event with a true timestamp would look too late for retention.
    """

    code = "future_timestamp"


# --- pricing -------------------------------------------------------------


class PricingError(CostflowError):
    code = "pricing_error"


class PriceNotFound(PricingError):
    """No price book entry covers this provider and model at this time."""

    code = "price_not_found"

    def __init__(self, provider: str, model: str, at: str | None = None) -> None:
        self.provider = provider
        self.model = model
        self.at = at
        when = f" in force at {at}" if at else ""
        super().__init__(
            f"no price for provider={provider!r} model={model!r}{when}; "
            "add an entry or alias to the price book and reprice"
        )


class UnitNotPriced(PricingError):
    """The entry for this model has no price for a token class or unit the call consumed.

    Raised by ``price_call`` as a partial price: ``dimensions`` names every
    dimension without a price and ``known`` is the cost of the others (a
    ``pipeline.pricing.engine.CallCost`` with the unpriced dimensions at 0, so
    ``known.total`` is a lower bound of the call's cost). Raised inside the engine
    for a single dimension, ``known`` is None.
    """

    code = "unit_not_priced"

    def __init__(
        self,
        provider: str,
        model: str,
        unit: str,
        within: str = "",
        known: Any = None,
        dimensions: tuple[str, ...] = (),
    ) -> None:
        self.provider = provider
        self.model = model
        self.unit = unit
        self.known = known
        self.dimensions = dimensions or (unit,)
        where = f" {within}" if within else ""
        names = ", ".join(repr(d) for d in self.dimensions)
        super().__init__(
            f"the price book prices {provider}/{model} but not its {names}{where}; "
            f"add a rate for {names}{where} to the entry (or a provider rule) and reprice"
        )


class ServiceTierNotPriced(PricingError):
    """The call ran on a service tier (batch, flex, priority) the entry has no prices
    for, and the book declares no rule for the provider's tier: billing it at the
    standard rate would be a guess (2x over for batch and flex)."""

    code = "service_tier_not_priced"

    def __init__(self, provider: str, model: str, service_tier: str) -> None:
        self.provider = provider
        self.model = model
        self.service_tier = service_tier
        super().__init__(
            f"the price book prices {provider}/{model} but not its {service_tier!r} service "
            f"tier; add service_tiers.{service_tier} to the entry (or a provider rule with "
            f"its multiplier) and reprice"
        )


class FxRateNotFound(PricingError):
    """A price in one currency must be reported in another and no rate is in force."""

    code = "fx_rate_not_found"

    def __init__(self, currency: str, book_currency: str, at: str) -> None:
        self.currency = currency
        self.book_currency = book_currency
        self.at = at
        super().__init__(
            f"no {currency}->{book_currency} FX rate in force at {at}; "
            f"add an fx_rates entry for {currency} to the price book and reprice"
        )


class PriceBookInvalid(PricingError):
    code = "price_book_invalid"


class FixedCostsInvalid(PricingError):
    """A fixed-cost declaration that cannot be loaded as written."""

    code = "fixed_costs_invalid"


# --- infrastructure -----------------------------------------------------


class KafkaError(CostflowError):
    """A Kafka operation failed; wraps librdkafka's error code and name."""

    code = "kafka_error"

    def __init__(self, operation: str, kafka_code: int | None, name: str, detail: str) -> None:
        self.operation = operation
        self.kafka_code = kafka_code
        self.name = name
        super().__init__(f"kafka {operation} failed: {name} ({kafka_code}): {detail}")

    @classmethod
    def wrap(cls, operation: str, err: object) -> KafkaError:
        """Build from a ``confluent_kafka.KafkaError`` or ``KafkaException``."""
        inner = err.args[0] if isinstance(err, Exception) and err.args else err
        code = getattr(inner, "code", None)
        name = getattr(inner, "name", None)
        text = getattr(inner, "str", None)
        return cls(
            operation,
            code() if callable(code) else None,
            name() if callable(name) else type(inner).__name__,
            text() if callable(text) else str(inner),
        )


class CollectorRefused(CostflowError):
    """The HTTP collector did not accept a request (its status and answer say why:
    401 token, 400 bad events, 413 too large, 503 busy, try again)."""

    code = "collector_refused"

    def __init__(self, status: int, answer: str) -> None:
        self.status = status
        self.retryable = status in (429, 502, 503, 504)
        super().__init__(f"the collector answered {status}: {answer[:1000]}")


class CallbacksPending(CostflowError):
    """LiteLLM still had logging callbacks queued when the logger was closed: their
    calls were not emitted. Close later (after the last call's callbacks ran), or give
    the close a longer timeout."""

    code = "callbacks_pending"


class ClickHouseError(CostflowError):
    code = "clickhouse_error"


class MigrationError(ClickHouseError):
    code = "migration_error"


class FocusExportError(CostflowError):
    """A FOCUS export cannot be written as asked: a month that is not YYYY-MM, a month
    without priced calls, or calls priced by a book version the export was not given.
    The message says what to do next."""

    code = "focus_export_error"


class EmbeddedStackError(CostflowError):
    """The embedded broker or a child process could not be started."""

    code = "embedded_stack_error"
