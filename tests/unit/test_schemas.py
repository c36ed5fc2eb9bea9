from __future__ import annotations

from pathlib import Path

from pipeline import schemas
from pipeline.resources import schema_dir


def test_committed_json_schema_matches_the_models() -> None:
    for name, text in schemas.generate().items():
        path = schema_dir() / name
        assert path.exists(), f"{name} missing; run: costflow schemas --write"
        assert path.read_text(encoding="utf-8") == text, (
            f"schemas/{name} drifted from the pydantic model; run: costflow schemas --write"
        )


def test_price_book_schema_forbids_unknown_fields() -> None:
    import json

    book = json.loads(schemas.generate()["price-book.schema.json"])
    assert book["additionalProperties"] is False
    assert book["$defs"]["PriceEntry"]["additionalProperties"] is False


def test_drift_names_each_file_that_differs(tmp_path: Path) -> None:
    schemas.write(tmp_path)
    assert schemas.drift(tmp_path) == []
    (tmp_path / "call.schema.json").write_text("{}", encoding="utf-8")
    (tmp_path / "task.schema.json").unlink()
    assert schemas.drift(tmp_path) == ["call.schema.json", "task.schema.json"]
