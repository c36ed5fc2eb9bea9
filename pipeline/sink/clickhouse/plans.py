"""Write-ahead records of sink batches, so an interrupted insert is completed, not lost.

An INSERT into a table with materialized views is not atomic: if the server
dies after writing the source table's part and before a view's, the view misses
the block for good, and the sink, reading back the source table, would think
the batch applied. ClickHouse's remedy is to send the same block again with the
same deduplication token: parts that landed are skipped, missing ones are
written. So each batch gets an id, every row it writes carries that id, and
``sink_plans`` records "started" before and "done" after. On start and on every
partition assignment the sink re-sends, with the original tokens, the rows of
every batch that started and never finished. Re-sending is idempotent, so two
sinks repairing the same batch at once is harmless.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import orjson

log = logging.getLogger("costflow.sink")


def plan_id(ranges: Sequence[tuple[str, int, int, int]], rows: dict[str, list[Any]]) -> str:
    """Id of a batch: its offset ranges and a digest of the rows it writes.

    The same rows give the same id in any process (a re-consumed batch's inserts
    carry the same deduplication tokens); values are serialised by orjson, with
    ``str()`` for the types it lacks (``Decimal``: ``1.0`` and ``1.00`` differ, as
    they would in the row), a tenth of the cost of ``repr`` per row.
    """
    digest = hashlib.sha256()
    for topic, partition, first, last in sorted(ranges):
        digest.update(f"{topic}:{partition}:{first}-{last};".encode())
    for table in sorted(rows):
        digest.update(f"|{table}|".encode())
        try:
            digest.update(orjson.dumps(rows[table], default=str))
        except TypeError:  # an integer beyond 64 bits (no column of ours has one)
            digest.update(b"repr:" + repr(rows[table]).encode())
    return digest.hexdigest()[:32]


def token(plan: str, table: str) -> str:
    return f"{plan}:{table}"


class PlanLog:
    def __init__(self, client: Any, columns: dict[str, tuple[str, ...]]) -> None:
        self.client = client
        # Tables whose rows carry plan_id, with the columns the sink writes.
        self.columns = columns

    def _mark(self, plan: str, tables: list[str], state: str) -> None:
        self.client.insert(
            "sink_plans",
            [(plan, tables, state)],
            column_names=["plan_id", "tables", "state"],
            settings={"insert_deduplication_token": f"{plan}:{state}"},
        )

    def started(self, plan: str, tables: list[str]) -> None:
        self._mark(plan, tables, "started")

    def done(self, plan: str, tables: list[str]) -> None:
        self._mark(plan, tables, "done")

    def insert(self, plan: str, table: str, rows: list[tuple[Any, ...]]) -> None:
        self.client.insert(
            table,
            [(*row, plan) for row in rows],
            column_names=[*self.columns[table], "plan_id"],
            settings={
                "insert_deduplication_token": token(plan, table),
                "deduplicate_blocks_in_dependent_materialized_views": 1,
            },
        )

    def repair(self) -> int:
        """Re-send the rows of every unfinished batch; returns how many batches."""
        unfinished = self.client.query(
            "SELECT plan_id, any(tables) FROM sink_plans GROUP BY plan_id "
            "HAVING countIf(state = 'done') = 0"
        ).result_rows
        repaired = 0
        for plan, tables in unfinished:
            found = 0
            for table in tables:
                columns = self.columns[table]
                rows = self.client.query(
                    f"SELECT {', '.join(columns)} FROM {table} WHERE plan_id = %(plan)s",
                    parameters={"plan": plan},
                ).result_rows
                if rows:
                    self.insert(plan, table, [tuple(r) for r in rows])
                    found += len(rows)
            if found:
                # A batch with no rows stored yet may still be in flight in another
                # sink; leave it, it is re-checked next time (and expires by TTL).
                self.done(plan, tables)
                repaired += 1
                log.warning("completed interrupted sink batch %s (%d rows re-sent)", plan, found)
        return repaired
