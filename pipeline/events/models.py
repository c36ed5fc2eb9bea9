"""Input events, contract v1. JSON, one object per Kafka record, keyed by ``task_id``.

Unknown top-level fields are not rejected: they are moved into ``attributes`` so
that gateways can add fields before costflow knows them. Events never carry
prompt or completion text; fields that look like it are refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# A single call above this is a gateway bug, not traffic: the largest context
# windows sold today are 2M tokens; 100M leaves room without admitting garbage.
MAX_TOKENS_PER_CLASS = 100_000_000
_ID = Annotated[str, Field(min_length=1, max_length=256)]
_NAME = Annotated[str, Field(min_length=1, max_length=256)]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Non-token billing units: query, evaluation, tool_call, gpu_second, ...
UnitName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
_QUANTITY = Annotated[Decimal, Field(ge=0, le=10**12, decimal_places=9, allow_inf_nan=False)]
_FORBIDDEN_CONTENT_FIELDS = frozenset(
    {
        "prompt", "completion", "messages", "input_text", "output_text", "content",
        "response", "input", "output", "instructions", "system_prompt",
        # the OpenTelemetry GenAI conventions' content attributes
        "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
        "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "gen_ai.prompt",
        "gen_ai.completion",
    }
)  # fmt: skip
_CONTENT_PREFIXES = ("gen_ai.prompt.", "gen_ai.completion.")


@lru_cache(maxsize=4096)  # stage 1 asks for every attribute of every event
def is_content_field(name: str) -> bool:
    """Whether a field or attribute named ``name`` (any case, top level or inside
    ``attributes``) would carry prompt or completion text: events must not."""
    folded = name.strip().lower()
    return folded in _FORBIDDEN_CONTENT_FIELDS or folded.startswith(_CONTENT_PREFIXES)


def content_fields(names: Any) -> list[str]:
    """The names among ``names`` that :func:`is_content_field` refuses, sorted."""
    return sorted(str(n) for n in names if isinstance(n, str) and is_content_field(n))


# Each event class's field names (and "type"), computed once per class.
_KNOWN_FIELDS: dict[type, frozenset[str]] = {}


class ServiceTier(StrEnum):
    standard = "standard"
    batch = "batch"
    flex = "flex"
    priority = "priority"


class CallStatus(StrEnum):
    ok = "ok"
    error = "error"
    timeout = "timeout"
    rate_limited = "rate_limited"
    invalid_output = "invalid_output"


class TaskPhase(StrEnum):
    started = "started"
    completed = "completed"


class OutcomeKind(StrEnum):
    accepted = "accepted"
    rejected = "rejected"
    failed = "failed"


class OutcomeSource(StrEnum):
    user = "user"
    quality_gate = "quality_gate"
    business = "business"
    system = "system"


def epoch_ms(ts: datetime) -> int:
    """An aware datetime in epoch milliseconds (integer arithmetic: exact; below the
    millisecond truncated)."""
    delta = ts - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def _parse_ts(value: Any) -> Any:
    """RFC 3339 strings or epoch milliseconds; always an aware UTC datetime."""
    if isinstance(value, bool):
        raise ValueError("ts must be an RFC 3339 string or epoch milliseconds, not a boolean")
    if isinstance(value, int):
        # Integer arithmetic: float seconds would lose the millisecond on some values.
        try:
            return _EPOCH + timedelta(milliseconds=value)
        except OverflowError:
            raise ValueError(
                f"ts {value} is not epoch milliseconds (microseconds or nanoseconds?)"
            ) from None
    if isinstance(value, float):
        raise ValueError("ts in epoch milliseconds must be an integer")
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z") or text.endswith("z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"ts {value!r} is not RFC 3339") from exc
        if parsed.tzinfo is None:
            raise ValueError(f"ts {value!r} has no UTC offset; RFC 3339 requires one")
        return parsed.astimezone(UTC)
    return value


class _EventBase(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=True)

    event_id: _ID
    task_id: _ID
    ts: datetime
    schema_version: Literal[1] = 1
    attributes: dict[str, str] = Field(default_factory=dict)

    _ts = field_validator("ts", mode="before")(_parse_ts)

    @property
    def ts_ms(self) -> int:
        """``ts`` in epoch milliseconds."""
        return epoch_ms(self.ts)

    @field_validator("ts")
    @classmethod
    def _plausible_ts(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if not (2000 <= value.year <= 2200):
            raise ValueError(f"ts {value.isoformat()} is outside 2000..2200; epoch seconds?")
        return value

    @model_validator(mode="before")
    @classmethod
    def _fold_unknown_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        keys = data.keys()
        nested = data.get("attributes")
        names = [*keys, *(nested.keys() if isinstance(nested, dict) else ())]
        if any(isinstance(n, str) and is_content_field(n) for n in names):
            leaked = content_fields(names)
            raise ValueError(
                f"events must not carry prompt or completion text (fields {leaked}); send "
                "token counts only"
            )
        known = _KNOWN_FIELDS.get(cls)
        if known is None:  # once per event class: this runs for every event
            known = _KNOWN_FIELDS[cls] = frozenset(cls.model_fields) | {"type"}
        if keys <= known:
            return data
        extra = {k: v for k, v in data.items() if k not in known}
        kept = {k: v for k, v in data.items() if k in known}
        attributes = dict(kept.get("attributes") or {})
        for key, value in extra.items():
            # null means absent, as for the known fields (never the string "null").
            if value is not None:
                attributes.setdefault(key, value if isinstance(value, str) else _compact(value))
        kept["attributes"] = attributes
        return kept

    @field_validator("attributes", mode="before")
    @classmethod
    def _stringify_attributes(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                str(k): v if isinstance(v, str) else _compact(v)
                for k, v in value.items()
                if v is not None
            }
        return value


def _compact(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


class Usage(BaseModel):
    """Token counts by class. Classes are disjoint: each token is counted in exactly one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS_PER_CLASS, strict=True)] = 0
    cache_read_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS_PER_CLASS, strict=True)] = 0
    cache_write_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS_PER_CLASS, strict=True)] = 0
    # Writes to a 1-hour cache, billed at their own rate (5-minute writes above).
    cache_write_1h_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS_PER_CLASS, strict=True)] = 0
    output_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS_PER_CLASS, strict=True)] = 0
    reasoning_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS_PER_CLASS, strict=True)] = 0
    # Audio and image tokens, billed at their own rates: never counted in the text
    # classes above (genai-prices' names). Cached audio input is cache_audio_read.
    input_audio_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS_PER_CLASS, strict=True)] = 0
    cache_audio_read_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS_PER_CLASS, strict=True)] = 0
    output_audio_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS_PER_CLASS, strict=True)] = 0
    input_image_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS_PER_CLASS, strict=True)] = 0
    output_image_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS_PER_CLASS, strict=True)] = 0

    @property
    def prompt_tokens(self) -> int:
        """Every prompt-side token (text, cached, written, audio, image): what
        long-context thresholds are measured against."""
        return prompt_tokens(self)


def prompt_tokens(usage: Any) -> int:
    """:attr:`Usage.prompt_tokens` of a Usage or anything with its token fields."""
    total: int = (
        usage.input_tokens
        + usage.cache_read_tokens
        + usage.cache_write_tokens
        + usage.cache_write_1h_tokens
        + usage.input_audio_tokens
        + usage.cache_audio_read_tokens
        + usage.input_image_tokens
    )
    return total


class CallEvent(_EventBase):
    """One metered model call, as a gateway saw it."""

    type: Literal["call"] = "call"
    provider: _NAME
    model: _NAME
    usage: Usage
    service_tier: ServiceTier = ServiceTier.standard

    @field_validator("service_tier", mode="before")
    @classmethod
    def _provider_spelling(cls, value: Any) -> Any:
        # OpenAI reports the standard tier as "default"; "auto" is a request setting,
        # not the tier that billed the call, and is refused by the enum.
        return "standard" if value == "default" else value

    status: CallStatus = CallStatus.ok
    attempt: Annotated[int, Field(ge=1, le=1000)] = 1
    retry_of: _ID | None = None
    fallback_from: _NAME | None = None
    role: _NAME | None = None
    latency_ms: Annotated[int, Field(ge=0, le=86_400_000)] | None = None
    # The request's output cap (max_tokens / max_output_tokens / max_completion_tokens),
    # reasoning included where the provider counts it there: shows how often calls end
    # by hitting it.
    max_output_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_PER_CLASS)] | None = None
    scenario_id: _NAME | None = None
    environment: _NAME | None = None
    # The team the call is billed to, when the gateway knows it (e.g. by API key);
    # price overlays match on it. A task event's owner wins for the task.
    owner: _NAME | None = None
    # Non-token usage priced per unit: {"tool_call": 3, "gpu_second": "12.5"}.
    units: dict[UnitName, _QUANTITY] = Field(default_factory=dict, max_length=32)


class TaskEvent(_EventBase):
    """A unit of user-visible work starting or completing."""

    type: Literal["task"] = "task"
    phase: TaskPhase
    scenario_id: _NAME | None = None
    owner: _NAME | None = None
    environment: _NAME | None = None


class OutcomeEvent(_EventBase):
    """Whether the task's result was accepted. The latest by (ts, event_id) wins."""

    type: Literal["outcome"] = "outcome"
    outcome: OutcomeKind
    source: OutcomeSource
    score: float | None = Field(default=None, allow_inf_nan=False)


Event = Annotated[CallEvent | TaskEvent | OutcomeEvent, Field(discriminator="type")]
