"""JSON Schema generated from the pydantic models, committed under ``schemas/``.

The models are the source of truth; ``costflow schemas --write`` regenerates the
files and a test fails when they drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.alerts.rules import rule_file_model
from pipeline.events.models import CallEvent, OutcomeEvent, TaskEvent
from pipeline.pricing.book import PriceBook
from pipeline.pricing.fixed_costs import FixedCosts
from pipeline.resources import schema_dir

_MODELS: dict[str, Any] = {
    "call.schema.json": CallEvent,
    "task.schema.json": TaskEvent,
    "outcome.schema.json": OutcomeEvent,
    "price-book.schema.json": PriceBook,
    "fixed-costs.schema.json": FixedCosts,
    "alert-rules.schema.json": rule_file_model(),
}


def generate() -> dict[str, str]:
    out = {}
    for name, model in _MODELS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def drift(directory: Path | None = None) -> list[str]:
    """Names of committed schema files that differ from the models (or are missing)."""
    directory = directory or schema_dir()
    return [
        name
        for name, text in generate().items()
        if not (directory / name).exists() or (directory / name).read_text(encoding="utf-8") != text
    ]


def write(directory: Path | None = None) -> list[Path]:
    directory = directory or schema_dir()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generate().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
