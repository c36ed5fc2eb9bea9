"""Lookups by lists of ids, in queries that always fit ClickHouse's ``max_query_size``.

clickhouse-connect formats parameters into the query text, and ClickHouse refuses a
query text longer than ``max_query_size`` (256 KiB by default) with a syntax error. A
sink batch of 20,000 calls lists ~600 KB of ids: such a batch failed on every retry and
the sink stalled for good (seen in the pipeline benchmark once stage 1 fed it fast
enough). Every id-list lookup goes through :func:`id_chunks`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

# Bytes of ids per query: well under 256 KiB with the rest of the query and quoting.
ID_BYTES_PER_QUERY = 96_000


def id_chunks(ids: Sequence[str], budget: int = ID_BYTES_PER_QUERY) -> Iterator[Sequence[str]]:
    """``ids`` in consecutive slices whose quoted text stays within ``budget`` bytes
    (at least one id per slice)."""
    start, size = 0, 0
    for end, value in enumerate(ids):
        cost = len(value.encode()) + 4  # quotes, comma, space
        if size + cost > budget and end > start:
            yield ids[start:end]
            start, size = end, 0
        size += cost
    if start < len(ids):
        yield ids[start:]
