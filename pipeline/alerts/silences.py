"""Silences declared in a rule file, for receivers costflow notifies itself.

Alertmanager keeps its own silences (``amtool silence add``); a setup without it
declares them beside the rules, in Alertmanager's shape so they read the same::

    silences:
      - matchers: ['alertname="SpendSpike"', 'scenario_id=~"support-.*"']
        starts_at: 2026-12-01T18:00:00Z
        ends_at: 2026-12-02T06:00:00Z
        created_by: oncall@example.com
        comment: planned load test of the support agents

Matchers use Alertmanager's syntax (https://prometheus.io/docs/alerting/latest/
configuration/#matcher): ``=``, ``!=``, ``=~``, ``!~``, the value quoted or bare,
regular expressions anchored at both ends. A silence applies on the clock (not the
data's time) from ``starts_at`` up to ``ends_at``, to an alert whose labels (with
``alertname``, ``severity`` and ``costflow_kind``) satisfy every matcher.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(".*"|[^"\s]*)\s*$')


def parse_matcher(text: str) -> tuple[str, str, str]:
    """``'name op value'`` as (name, op, value); a quoted value is JSON-unescaped.

    Raises ValueError naming the expected shape, or the regular expression's error.
    """
    match = _MATCHER.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a matcher like 'alertname=\"SpendSpike\"' (operators =, !=, =~, !~)"
        )
    name, op, raw = match.groups()
    if raw[:1] in ("=", "~"):
        raise ValueError(
            f"{text!r}: the value starts with {raw[0]!r}; did you mean "
            f"'{name}{op}\"{raw[1:]}\"'? (operators =, !=, =~, !~)"
        )
    value = json.loads(raw) if raw.startswith('"') else raw
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{text!r}: not a regular expression: {exc}") from None
    return name, op, value


def _matcher(text: str) -> str:
    parse_matcher(text)
    return text


def matches(matcher: str, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy one matcher (a missing label is the empty string,
    as in Alertmanager)."""
    name, op, value = parse_matcher(matcher)
    actual = labels.get(name, "")
    if op == "=":
        return actual == value
    if op == "!=":
        return actual != value
    found = re.fullmatch(value, actual) is not None
    return found if op == "=~" else not found


class Silence(BaseModel):
    """One silence: alerts matching every matcher are not notified in
    [``starts_at``, ``ends_at``) (clock time, timezone required)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    matchers: list[Annotated[str, AfterValidator(_matcher)]] = Field(min_length=1)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    created_by: str = Field(min_length=1, max_length=200)
    comment: str = Field(min_length=1, max_length=2000, description="Why: shown to on-call")

    @model_validator(mode="after")
    def _ordered(self) -> Silence:
        if self.ends_at <= self.starts_at:
            raise ValueError("a silence must end after it starts")
        return self

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def covers(self, labels: Mapping[str, str], now: datetime) -> bool:
        """Whether this silence mutes an alert with ``labels`` at ``now``."""
        return self.active(now) and all(matches(m, labels) for m in self.matchers)


def silenced_by(
    silences: Sequence[Silence], labels: Mapping[str, str], now: datetime
) -> Silence | None:
    """The first silence muting ``labels`` at ``now``, or None."""
    return next((s for s in silences if s.covers(labels, now)), None)
