"""A batch's plan id: the same rows give the same id in every process; any
difference a ClickHouse row would show gives another id."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.sink.clickhouse.plans import plan_id

_RANGES = [("costflow.priced-calls", 0, 10, 19)]
_ROW = ("t1", "e1", Decimal("0.00021315"), datetime(2026, 11, 2, 10, 0, tzinfo=UTC), ["a"], None, 3)


def _id(row: tuple[object, ...]) -> str:
    return plan_id(_RANGES, {"calls": [row]})


def test_the_same_rows_give_the_same_id_in_another_process() -> None:
    code = (
        "import datetime; from decimal import Decimal\n"
        "from pipeline.sink.clickhouse.plans import plan_id\n"
        f"print(plan_id({_RANGES!r}, {{'calls': [{_ROW!r}]}}))"
    )
    # Another hash seed: nothing in the id may depend on Python's str hashing.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert out.stdout.strip() == _id(_ROW)


@pytest.mark.parametrize(
    "changed",
    [
        ("t1", "e1", Decimal("0.000213150"), *_ROW[3:]),  # the same value, another scale
        ("t1", "e1", Decimal("0.00021316"), *_ROW[3:]),
        (*_ROW[:3], datetime(2026, 11, 2, 10, 0, 0, 1, tzinfo=UTC), *_ROW[4:]),
        (*_ROW[:4], ["a", "b"], *_ROW[5:]),
        (*_ROW[:5], "", 3),  # None is not the empty string
        (*_ROW[:6], 3.0),  # nor an integer its float
        (*_ROW[:6], 2**70),  # beyond orjson's integers: still an id, another one
    ],
)
def test_any_difference_gives_another_id(changed: tuple[object, ...]) -> None:
    assert _id(changed) != _id(_ROW)


def test_the_offset_ranges_are_part_of_the_id() -> None:
    rows = {"calls": [_ROW]}
    assert plan_id(_RANGES, rows) != plan_id([("costflow.priced-calls", 0, 10, 20)], rows)
