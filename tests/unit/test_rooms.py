"""The rooms for ingest adapters and alert rule kinds: registries that refuse clearly."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from pipeline import alerts, ingest
from pipeline.errors import ConfigError
from pipeline.events.models import CallEvent


class _Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["budget"]
    amount_usd: Decimal


class _Runaway(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["runaway_task"]
    max_cost_usd: Decimal


def test_rule_files_validate_against_the_union_of_registered_kinds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(alerts, "RULE_KINDS", {})  # whatever kinds exist, test the mechanism
    with pytest.raises(ConfigError, match="no alert rule kinds"):
        alerts.rule_type()
    monkeypatch.setitem(alerts.RULE_KINDS, "budget", _Budget)
    assert alerts.rule_type() is _Budget
    monkeypatch.setitem(alerts.RULE_KINDS, "runaway_task", _Runaway)
    rules = TypeAdapter(list[alerts.rule_type()])  # type: ignore[misc]
    parsed = rules.validate_python(
        [{"kind": "runaway_task", "max_cost_usd": "2.50"}, {"kind": "budget", "amount_usd": "100"}]
    )
    assert [type(r) for r in parsed] == [_Runaway, _Budget]
    assert parsed[0].max_cost_usd == Decimal("2.50")
    with pytest.raises(ValidationError) as refused:
        rules.validate_python([{"kind": "anomalous", "amount_usd": "1"}])
    assert "'budget', 'runaway_task'" in str(refused.value)
    # A kind registered under a name its model's literal does not carry is refused.
    monkeypatch.setitem(alerts.RULE_KINDS, "budgets", _Budget)
    with pytest.raises(ConfigError, match="'budgets'"):
        alerts.rule_type()


def test_an_adapter_is_found_by_name_and_an_unknown_one_names_the_known(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingest, "ADAPTERS", {})  # whatever adapters exist, test the mechanism
    with pytest.raises(ConfigError, match="registered: none yet"):
        ingest.adapter("otel")

    def one_call(record: Mapping[str, Any]) -> list[ingest.Event]:
        return [CallEvent.model_validate(dict(record))]

    monkeypatch.setitem(ingest.ADAPTERS, "contract", one_call)
    body = {"event_id": "c1", "task_id": "t1", "ts": "2026-11-02T10:00:00Z",
            "provider": "openai", "model": "gpt-4o-mini", "usage": {"input_tokens": 3}}  # fmt: skip
    (event,) = ingest.adapter("contract")(body)
    assert isinstance(event, CallEvent) and event.usage.input_tokens == 3
    with pytest.raises(ConfigError, match="no ingest adapter 'otel'; registered: contract"):
        ingest.adapter("otel")
