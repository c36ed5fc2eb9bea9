"""``kind: unpriced``: money costflow cannot count.

- ``new_models``: a (provider, model) seen without a price for the first time within
  ``window``: one alert per model, labelled ``provider`` and ``model``, firing while
  its first unpriced call is within the window (``match`` may narrow it by provider
  or model; a model is new to costflow as a whole, not to one scenario).
- ``max_share``: the share of calls without a complete price over ``window`` above
  the ratio, per ``group_by`` label set.

Unpriced calls are never counted as free: their known part is in the cost figures,
marked as a lower bound (docs/pricing.md).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipeline.alerts.rules import Duration, RuleBase
from pipeline.alerts.state import Observation
from pipeline.query.alert_inputs import AlertInputs

_NANO = Decimal("0.000000001")


class UnpricedRule(RuleBase):
    kind: Literal["unpriced"] = "unpriced"
    # Default: checked unless the rule sets only max_share.
    new_models: bool | None = Field(
        default=None, description="Alert on models first seen unpriced (default: true "
        "unless max_share is set)",
    )  # fmt: skip
    max_share: Annotated[Decimal, Field(ge=0, le=1)] | None = None
    window: Duration = Field(default="1h", validate_default=True)

    @model_validator(mode="after")
    def _something(self) -> UnpricedRule:
        if self.new_models is False and self.max_share is None:
            raise ValueError("set new_models: true, max_share, or both")
        return self

    @property
    def checks_new_models(self) -> bool:
        return self.new_models if self.new_models is not None else self.max_share is None


def evaluate(rule: UnpricedRule, inputs: AlertInputs, at: datetime) -> list[Observation]:
    """The unpriced conditions that hold at ``at``."""
    out: list[Observation] = []
    start = at - rule.window
    match = {d.value: v for d, v in rule.match.items()}
    if rule.checks_new_models:
        first = inputs.first_unpriced(start, at)
        if first:
            counts = inputs.sums(["provider", "model"], match, start, at)
            for (provider, model), seen in sorted(first.items()):
                pair = {"provider": provider, "model": model}
                if any(match.get(k) not in (None, v) for k, v in pair.items()):
                    continue
                unpriced = counts.get((provider, model))
                out.append(
                    Observation(
                        {"provider": provider, "model": model},
                        value=unpriced.unpriced_calls if unpriced else 0,
                        details={"first_unpriced_hour": seen.isoformat()},
                    )
                )
    if rule.max_share is not None:
        group_by = [d.value for d in rule.group_by]
        for key, sums in inputs.sums(group_by, match, start, at).items():
            if sums.calls <= 0:
                continue
            share = Decimal(sums.unpriced_calls) / Decimal(sums.calls)
            if share > rule.max_share:
                out.append(
                    Observation(
                        {**dict(zip(group_by, key, strict=True)), "condition": "share"},
                        # Shown to 9 places; the counts beside it are exact.
                        value=share.quantize(_NANO),
                        expected=rule.max_share,
                        impact=None,
                        details={
                            "unpriced_calls": str(sums.unpriced_calls),
                            "calls": str(sums.calls),
                            "known_cost": str(sums.cost),
                        },
                    )
                )
    return out
