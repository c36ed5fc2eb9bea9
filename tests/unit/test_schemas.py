from __future__ import annotations

from pipeline import schemas


def test_committed_json_schema_matches_the_models() -> None:
    for name, text in schemas.generate().items():
        path = schemas.SCHEMA_DIR / name
        assert path.exists(), f"{name} missing; run: costflow schemas --write"
        assert path.read_text(encoding="utf-8") == text, (
            f"schemas/{name} drifted from the pydantic model; run: costflow schemas --write"
        )


def test_price_book_schema_forbids_unknown_fields() -> None:
    import json

    book = json.loads(schemas.generate()["price-book.schema.json"])
    assert book["additionalProperties"] is False
    assert book["$defs"]["PriceEntry"]["additionalProperties"] is False
