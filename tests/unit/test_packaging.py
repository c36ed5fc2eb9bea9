"""The package list in pyproject.toml and the bundled files it maps."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pipeline import resources

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_under_pipeline_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in ROOT.glob("pipeline/**/__init__.py")
    }
    assert on_disk <= listed, (
        f"add to pyproject.toml [tool.setuptools] packages: {on_disk - listed}"
    )
    mapped = config["tool"]["setuptools"]["package-dir"]
    assert mapped == resources.BUNDLED
    assert listed - on_disk == set(mapped)


def test_bundled_files_resolve_in_the_checkout() -> None:
    assert sorted(p.name for p in resources.sql_dir().glob("*.sql"))[0] == "0001_core_tables.sql"
    assert (resources.default_price_book() / "book.yaml").is_file()
    assert (resources.schema_dir() / "call.schema.json").is_file()
    assert resources.example_fixed_costs().is_file()
