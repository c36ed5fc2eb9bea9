"""``kind: pipeline_lag`` and ``kind: dead_letters``: the pipeline's own health, on
the wall clock.

- ``pipeline_lag``: the data's time (the latest call the store holds) more than
  ``max_lag`` behind the clock: stage 1 or the sink is behind, stopped, or gateways
  stopped sending. One alert, no labels.
- ``dead_letters``: more than ``max_count`` records dead-lettered in the last
  ``window`` (by the time the sink stored them), per ``reason``.

Both compare with the clock, so a backtest (``alerts test``, where the clock is the
evaluation time) does not raise them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipeline.alerts.rules import Duration, RuleBase
from pipeline.alerts.state import Observation
from pipeline.query.alert_inputs import AlertInputs


class PipelineLagRule(RuleBase):
    kind: Literal["pipeline_lag"] = "pipeline_lag"
    max_lag: Duration = Field(default="15m", validate_default=True)

    @model_validator(mode="after")
    def _no_labels(self) -> PipelineLagRule:
        if self.group_by or self.match:
            raise ValueError("pipeline_lag is one alert for the pipeline: no group_by or match")
        return self


class DeadLettersRule(RuleBase):
    kind: Literal["dead_letters"] = "dead_letters"
    max_count: Annotated[int, Field(ge=0)] = 0
    window: Duration = Field(default="1h", validate_default=True)

    @model_validator(mode="after")
    def _no_labels(self) -> DeadLettersRule:
        if self.group_by or self.match:
            raise ValueError("dead_letters alerts are per reason: no group_by or match")
        return self


def evaluate_lag(rule: PipelineLagRule, at: datetime, now: datetime) -> list[Observation]:
    """One observation when the data's time ``at`` is more than ``max_lag`` behind."""
    lag = now - at
    if lag <= rule.max_lag:
        return []
    return [
        Observation(
            {},
            value=round(lag.total_seconds()),
            expected=round(rule.max_lag.total_seconds()),
            details={"data_time": at.isoformat(), "unit": "seconds"},
        )
    ]


def evaluate_dead_letters(
    rule: DeadLettersRule, inputs: AlertInputs, now: datetime
) -> list[Observation]:
    """Reasons with more than ``max_count`` dead letters stored in ``window`` to ``now``."""
    counts = inputs.dead_letter_counts(now - rule.window, now)
    return [
        Observation({"reason": reason}, value=count, expected=rule.max_count)
        for reason, count in sorted(counts.items())
        if count > rule.max_count
    ]
