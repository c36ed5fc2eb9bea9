"""Which package may import which: the architecture, enforced.

The pure core (the input contract, pricing, the join, the stage records) imports no
Kafka, ClickHouse or Faust and nothing above it; the stages import the core and
the client helpers, never each other; process wiring and the CLI sit on top.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1] / "pipeline"
CLIENTS = {"confluent_kafka", "clickhouse_connect", "chdb", "faust", "mode", "aiokafka"}
# package (or top-level module) -> the costflow packages it may import
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    # JSON parsing at orjson's speed with the standard library's values.
    "json_codec": set(),
    # An alert instance's identity, for stage 1 and the evaluator alike.
    "alert_identity": set(),
    "resources": {"errors"},
    "events": {"errors", "json_codec"},
    "pricing": {"errors", "events"},
    "join": {"alert_identity", "events", "pricing"},
    "records": {"events", "join", "json_codec", "pricing"},
    "config": {"errors", "resources"},
    "kafka": {"config", "errors", "json_codec"},
    "embedded": {"errors"},
    "agents": {"config", "errors", "events", "join", "kafka", "pricing", "records"},
    "clickhouse": {"config", "errors", "resources"},
    "sink": {
        "alert_identity",
        "clickhouse",
        "config",
        "errors",
        "join",
        "json_codec",
        "kafka",
        "pricing",
        "records",
    },
    # Read models: SQL in, values out; the client is passed in.
    "query": {"clickhouse", "errors", "events", "pricing"},
    "schemas": {"alerts", "events", "pricing", "resources"},
    # Text for people, from the read models' values.
    "render": {"query"},
    "demo": set(),
    # Source records -> contract events, pure.
    "ingest": {"errors", "events"},
    # Events from applications and gateways: built by ingest's mappers, sent to Kafka.
    "emit": {"config", "errors", "events", "ingest", "kafka", "records"},
    # Rule kinds and their evaluation over the read models.
    "alerts": {"alert_identity", "config", "errors", "query"},
}
# Packages that must stay pure: no client library either.
PURE = {"alert_identity", "errors", "json_codec", "events", "pricing", "join", "records", "ingest"}


def imports_of(package: str) -> tuple[set[str], set[str]]:
    """(costflow packages, third-party top-level modules) imported under ``package``."""
    files = (
        list((ROOT / package).rglob("*.py"))
        if (ROOT / package).is_dir()
        else [ROOT / f"{package}.py"]
    )
    ours, theirs = set(), set()
    for path in files:
        # The module's own dotted package, for resolving relative imports.
        here = ["pipeline", *path.relative_to(ROOT).with_suffix("").parts]
        if here[-1] == "__init__":
            here.pop()
        else:
            here.pop()  # a module's relative imports start from its package
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom):
                base = (
                    node.module.split(".") if node.level == 0 and node.module
                    else here[: len(here) - node.level + 1] + (node.module or "").split(".")
                )  # fmt: skip
                base = [part for part in base if part]
                if base == ["pipeline"]:  # from pipeline import clickhouse, ...
                    names = [f"pipeline.{alias.name}" for alias in node.names]
                else:
                    names = [".".join(base)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "pipeline" and len(parts) > 1 and parts[1] != package:
                    ours.add(parts[1])
                elif parts[0] != "pipeline":
                    theirs.add(parts[0])
    return ours, theirs


def test_relative_and_package_imports_are_seen(tmp_path: Path, monkeypatch: Any) -> None:
    """``from pipeline import x`` and ``from ..x import y`` count like absolute imports."""
    package = tmp_path / "pipeline" / "ingest"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from pipeline import clickhouse\n")
    (package / "adapter.py").write_text("from ..kafka import topics\nfrom . import helpers\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path / "pipeline")
    ours, _ = imports_of("ingest")
    assert ours == {"clickhouse", "kafka"}


def test_every_package_imports_only_what_the_table_allows() -> None:
    for package, allowed in ALLOWED.items():
        ours, _ = imports_of(package)
        assert ours <= allowed, f"{package} imports {sorted(ours - allowed)}: not allowed"


def test_the_pure_core_imports_no_client_library() -> None:
    for package in PURE:
        _, theirs = imports_of(package)
        assert not theirs & CLIENTS, f"{package} imports {sorted(theirs & CLIENTS)}"


def test_every_package_is_in_the_table_or_on_top() -> None:
    on_top = {
        "agents",
        "app",
        "cli",
        "cli_alerts",
        "cli_analytics",
        "cli_focus",
        "cli_support",
        "runtime",
        "sink",
    }
    present = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
               if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}  # fmt: skip
    present -= {"__init__"}
    assert present <= set(ALLOWED) | on_top, f"add to ALLOWED: {present - set(ALLOWED) - on_top}"
