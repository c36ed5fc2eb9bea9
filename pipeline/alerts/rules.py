"""Alert rule files: Prometheus-shaped YAML, validated by pydantic.

A file holds ``groups:`` of rules and ``receivers:``. Every rule has the fields
operators know from Prometheus alerting rules (``alert``, ``for``,
``keep_firing_for``, ``labels``, ``annotations``) plus a typed ``kind`` and
``group_by`` (the dimensions an alert is raised per). The kinds are registered in
:data:`pipeline.alerts.RULE_KINDS` by their modules; this module holds what every
kind shares and the file itself.

Durations are Prometheus durations (``90s``, ``5m``, ``1h30m``, ``3d``, ``1w``).
Money is a Decimal string in the price book's currency, never a float.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from pipeline.alerts.silences import Silence
from pipeline.errors import ConfigError

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "y": timedelta(days=365),
}


class AlertRulesInvalid(ConfigError):
    """A rule file cannot be read or does not validate."""

    code = "alert_rules_invalid"


def parse_duration(value: Any) -> timedelta:
    """A Prometheus duration (``1h30m``, ``5m``, ``0s``) or a timedelta.

    Raises ValueError for anything else (a bare number is refused: its unit would
    be a guess).
    """
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError(f"a duration like '5m' or '1h30m', not {value!r}")
    total, pos = timedelta(0), 0
    for match in _DURATION_PART.finditer(value):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNIT[match.group(2)]
        pos = match.end()
    if pos != len(value):
        raise ValueError(f"{value!r} is not a duration like '5m', '1h30m' or '3d'")
    return total


def format_duration(value: timedelta) -> str:
    """The shortest Prometheus spelling of ``value`` (whole seconds)."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(\d+(ms|s|m|h|d|w|y))+$",
            "description": "A Prometheus duration: 30s, 5m, 1h30m, 3d, 1w",
        }
    ),
]
_NAME = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=200)]


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError(
            f"write money as a quoted decimal string ('{value}'), not a YAML float: "
            "floats cannot hold most cents exactly"
        )
    # What Decimal() also takes ('1e1', '1_5', ' 15', other scripts' digits) is not
    # what a person reading the file sees as an amount: the schema's pattern, exactly.
    if isinstance(value, str) and not _MONEY_TEXT.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an amount: write digits with an optional point and up to "
            "9 decimals, like '250.00'"
        )
    return value


_MONEY_TEXT = re.compile(r"[0-9]+(\.[0-9]{1,9})?")
# Money in a rule file: a Decimal from a string or an integer, never a YAML float.
Money = Annotated[
    Decimal,
    BeforeValidator(_no_float),
    Field(max_digits=24, decimal_places=9),
    WithJsonSchema({"type": ["string", "integer"], "pattern": r"^\d+(\.\d{1,9})?$",
                    "description": "An amount in the price book's currency: '250.00'"}),
]  # fmt: skip
# Labels costflow sets on every alert: a rule's own labels may not replace them.
RESERVED_LABELS = frozenset({"alertname", "severity", "costflow_kind"})
# Labels kinds give their alerts (pipeline.alerts.kinds.KIND_LABELS), and a restated
# window's: an instance's identity, which a rule's own labels may not replace either.
ALERT_LABELS = frozenset({
    "threshold", "period", "burn_window", "task_id", "provider", "model", "condition",
    "reason", "restated_window",
})  # fmt: skip


def _http_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL like http://alertmanager:9093")
    if parts.username or parts.password:
        # Rule files are read by people and kept in repositories; secrets are not.
        raise ValueError(
            "the URL holds credentials: a rule file is no place for secrets (sign webhooks "
            "with secret_env or secret_file instead)"
        )
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


def _at_least_a_second(value: timedelta) -> timedelta:
    if value < timedelta(seconds=1):
        raise ValueError("must be at least 1s")
    return value


# An interval or a window that must not be 0 (a loop would spin; a cap never held).
PositiveDuration = Annotated[Duration, AfterValidator(_at_least_a_second)]
_LABEL_NAME = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=100)]


class Dimension(StrEnum):
    """What an alert can be raised per: the call and task labels costflow stores."""

    scenario_id = "scenario_id"
    owner = "owner"
    environment = "environment"
    provider = "provider"
    model = "model"


class Severity(StrEnum):
    info = "info"
    warning = "warning"
    critical = "critical"


class RuleBase(BaseModel):
    """What every kind of rule has (Prometheus' alerting-rule fields and ours)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    alert: _NAME = Field(description="Alert name (Prometheus alertname)")
    group_by: list[Dimension] = Field(
        default_factory=list, description="Raise one alert per value of these labels"
    )
    match: dict[Dimension, str] = Field(
        default_factory=dict,
        description="Only traffic with these label values (e.g. environment: prod)",
    )
    for_: Duration = Field(
        default="0s",
        validate_default=True,
        alias="for",
        description="How long the condition holds before the alert fires (pending until then)",
    )
    keep_firing_for: Duration = Field(
        default="0s",
        validate_default=True,
        description="How long the alert keeps firing after the condition clears",
    )
    severity: Severity = Severity.warning
    labels: dict[_LABEL_NAME, str] = Field(default_factory=dict)
    annotations: dict[_LABEL_NAME, str] = Field(
        default_factory=dict,
        description="Templates: {{ $labels.<name> }}, {{ $value }}, {{ $expected }}, {{ $impact }}",
    )

    @field_validator("annotations")
    @classmethod
    def _known_placeholders(cls, value: dict[str, str]) -> dict[str, str]:
        from pipeline.alerts.templates import unknown_placeholders

        for name, text in value.items():
            unknown = unknown_placeholders(text)
            if unknown:
                raise ValueError(
                    f"annotation {name}: {', '.join(unknown)} is not a placeholder; use "
                    "{{ $labels.<name> }}, {{ $details.<name> }}, {{ $value }}, "
                    "{{ $expected }} or {{ $impact }}"
                )
        return value

    @model_validator(mode="after")
    def _own_labels(self) -> RuleBase:
        taken = sorted(RESERVED_LABELS.intersection(self.labels))
        if taken:
            raise ValueError(
                f"labels {taken} are set by costflow (alertname is the rule's `alert`, "
                "severity its `severity`); use another label name"
            )
        grouped = {getattr(d, "value", d) for d in self.group_by}
        clash = sorted((ALERT_LABELS | grouped).intersection(self.labels))
        if clash:
            raise ValueError(
                f"labels {clash} name what each alert is about (group_by values, a budget's "
                "threshold and period, a task_id, ...): a rule's own label may not replace "
                "them; use another label name"
            )
        return self


class AlertmanagerReceiver(BaseModel):
    """Alertmanager's v2 API (``POST /api/v2/alerts``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _NAME
    type: Literal["alertmanager"] = "alertmanager"
    url: HttpUrl = Field(description="Alertmanager base URL, e.g. http://alertmanager:9093")


class _Notified(BaseModel):
    """Grouping and repeats of a receiver costflow notifies itself, as Alertmanager's
    route does them (pipeline.alerts.notify)."""

    group_by: list[Annotated[str, Field(pattern=r"^([a-zA-Z_][a-zA-Z0-9_]*|\.\.\.)$")]] = Field(
        default=["alertname"],
        min_length=1,
        description="Labels one notification groups alerts by; ['...']: one per alert",
    )
    repeat_interval: PositiveDuration = Field(
        default="4h", validate_default=True,
        description="How often an alert still firing is told again",
    )  # fmt: skip


class WebhookReceiver(_Notified):
    """A generic webhook receiving Alertmanager's webhook JSON, HMAC-SHA256 signed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _NAME
    type: Literal["webhook"] = "webhook"
    url: HttpUrl
    # The signing secret: the name of an environment variable or a file, never the
    # secret itself (rule files are committed).
    secret_env: str | None = None
    secret_file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> WebhookReceiver:
        # Neither: unsigned, for receivers that cannot check a signature.
        if self.secret_env is not None and self.secret_file is not None:
            raise ValueError("give the signing secret as one of secret_env or secret_file")
        return self


class SlackReceiver(_Notified):
    """A Slack incoming webhook; its URL is a secret, so it comes from the environment
    or a file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _NAME
    type: Literal["slack"] = "slack"
    url_env: str | None = None
    url_file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SlackReceiver:
        if (self.url_env is None) == (self.url_file is None):
            raise ValueError("give the webhook URL as exactly one of url_env or url_file")
        return self


class KafkaReceiver(BaseModel):
    """A Kafka topic: one JSON record per firing or resolution, keyed by the alert's
    fingerprint, on the cluster costflow's Kafka settings name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _NAME
    type: Literal["kafka"] = "kafka"
    topic: str = Field(default="costflow.alerts", min_length=1, max_length=249)


Receiver = Annotated[
    AlertmanagerReceiver | WebhookReceiver | SlackReceiver | KafkaReceiver,
    Field(discriminator="type"),
]


def secret_from(env: str | None, file: Path | None, what: str) -> SecretStr:
    """A secret named by an environment variable or a file.

    Raises AlertRulesInvalid naming the variable or file when it is missing.
    """
    import os

    if env is not None:
        value = os.environ.get(env)
        if not value:
            raise AlertRulesInvalid(f"{what}: set the environment variable {env}")
        return SecretStr(value)
    if file is not None:
        try:
            return SecretStr(file.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise AlertRulesInvalid(f"{what}: cannot read {file}: {exc.strerror}") from None
    raise AlertRulesInvalid(f"{what}: no secret configured")


def rule_file_model() -> type[BaseModel]:
    """The rule-file model over the registered kinds (built once the kinds import)."""
    from pipeline.alerts import kinds as _kinds  # noqa: F401  (registers every kind)
    from pipeline.alerts import rule_type

    rule = rule_type()

    class RuleGroup(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        name: str = Field(min_length=1, max_length=200)
        interval: PositiveDuration = Field(
            default="1m", validate_default=True, description="How often the group is evaluated"
        )
        rules: list[rule] = Field(min_length=1)  # type: ignore[valid-type]

    class RuleFile(BaseModel):
        """An alert rule file (``costflow alerts validate FILE``)."""

        model_config = ConfigDict(extra="forbid", frozen=True)

        groups: list[RuleGroup] = Field(min_length=1)
        receivers: list[Receiver] = Field(default_factory=list)
        # For the receivers costflow notifies itself (not Alertmanager's, which keeps
        # its own): see pipeline.alerts.silences.
        silences: list[Silence] = Field(default_factory=list)

        @model_validator(mode="after")
        def _unique(self) -> Any:
            names: list[str] = [r.alert for g in self.groups for r in g.rules]  # type: ignore[attr-defined]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"alert names must be unique in a file; repeated: {dup}")
            rnames = [r.name for r in self.receivers]
            if len(set(rnames)) != len(rnames):
                raise ValueError("receiver names must be unique")
            gnames = [g.name for g in self.groups]
            if len(set(gnames)) != len(gnames):
                # Each group keeps its own schedule by name.
                raise ValueError("group names must be unique")
            return self

    return RuleFile


_MODEL: type[BaseModel] | None = None


def _model() -> type[BaseModel]:
    global _MODEL
    if _MODEL is None:
        _MODEL = rule_file_model()
    return _MODEL


class _UniqueKeys(yaml.SafeLoader):
    """YAML's safe loader refusing a key given twice in one mapping (plain YAML keeps
    the last one silently: ``amount`` written twice would mean the second)."""


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"{key!r} is given twice in one mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_rules(path: Path) -> Any:
    """Read and validate one rule file.

    Raises AlertRulesInvalid with the file, the place and the reason.
    """
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeys)  # a SafeLoader
    except OSError as exc:
        raise AlertRulesInvalid(f"cannot read alert rules {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise AlertRulesInvalid(f"{path} is not YAML: {exc}") from None
    if data is None:
        raise AlertRulesInvalid(
            f"{path} is empty: an alert rule file holds `groups:` of rules (see "
            "deploy/alerts/rules.yaml, or `costflow alerts validate` with no file)"
        )
    try:
        return _model().model_validate(data)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)[:10]
        ]
        raise AlertRulesInvalid(
            f"{path} is not a valid alert rule file:\n" + "\n".join(lines)
        ) from None


def load_rule_files(paths: list[Path]) -> Any:
    """Several rule files as one (their groups and receivers together).

    Raises AlertRulesInvalid for a file that does not validate, no file at all, or an
    alert name repeated across the files.
    """
    if not paths:
        raise AlertRulesInvalid("no alert rule file given")
    files = [load_rules(path) for path in paths]
    merged = files[0].model_copy(update={
        "groups": [g for f in files for g in f.groups],
        "receivers": [r for f in files for r in f.receivers],
        "silences": [s for f in files for s in f.silences],
    })  # fmt: skip
    for what, names in (
        ("alert names", [r.alert for g in merged.groups for r in g.rules]),
        ("group names", [g.name for g in merged.groups]),
        ("receiver names", [r.name for r in merged.receivers]),
    ):
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise AlertRulesInvalid(f"{what} repeat across the rule files: {repeated}")
    return merged
