"""Numbered, idempotent migrations from ``sql/``; shipped files are never edited.

Each applied file is recorded with its checksum; if a shipped file changes, the
next migrate refuses to run instead of leaving two installations that differ.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import MigrationError
from pipeline.resources import sql_dir as sql_dir_default

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def statements(self) -> list[str]:
        return split_statements(self.text)


def split_statements(text: str) -> list[str]:
    """Split on ``;`` at line ends, dropping ``--`` comment lines (no ; inside strings here)."""
    lines = [line for line in text.splitlines() if not line.strip().startswith("--")]
    parts = re.split(r";\s*(?:\n|$)", "\n".join(lines))
    return [part.strip() for part in parts if part.strip()]


def discover(sql_dir: Path | None = None) -> list[Migration]:
    """The migrations in ``sql_dir`` (default: the ones costflow ships), in order.

    Raises MigrationError for a missing or empty directory: "nothing to apply" from
    a directory that is not there would leave a database without its tables.
    """
    sql_dir = sql_dir or sql_dir_default()
    if not sql_dir.is_dir():
        raise MigrationError(f"migration directory {sql_dir} does not exist; reinstall costflow")
    found = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migrations are named NNNN_snake_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    if not found:
        raise MigrationError(f"no migrations (NNNN_name.sql) in {sql_dir}; reinstall costflow")
    numbers = [m.number for m in found]
    if len(set(numbers)) != len(numbers):
        raise MigrationError(f"duplicate migration numbers in {sql_dir}: {numbers}")
    return found


_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    number UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY number
"""


def migrate(client: Any, sql_dir: Path | None = None) -> list[Migration]:
    """Apply what is not yet applied, in order. Returns the migrations applied now."""
    client.command(_LEDGER)
    applied = {
        row[0]: (row[1], row[2])
        for row in client.query(
            "SELECT number, name, checksum FROM schema_migrations FINAL"
        ).result_rows
    }
    done = []
    for migration in discover(sql_dir):
        if migration.number in applied:
            _, checksum = applied[migration.number]
            if checksum != migration.checksum:
                raise MigrationError(
                    f"sql/{migration.path.name} changed after it was applied; shipped "
                    "migrations are never edited: revert it and add a new numbered file"
                )
            continue
        for statement in migration.statements():
            try:
                client.command(statement)
            except Exception as exc:
                raise MigrationError(f"{migration.path.name}: {exc}") from None
        client.insert(
            "schema_migrations",
            [(migration.number, migration.name, migration.checksum)],
            column_names=["number", "name", "checksum"],
        )
        done.append(migration)
    return done


def pending(client: Any, sql_dir: Path | None = None) -> list[Migration]:
    """Shipped migrations the database has not applied (all of them on an empty one)."""
    try:
        applied = {
            row[0] for row in client.query("SELECT number FROM schema_migrations FINAL").result_rows
        }
    except Exception:  # no ledger: nothing applied yet
        applied = set()
    return [m for m in discover(sql_dir) if m.number not in applied]


def require_current(client: Any) -> None:
    """Refuse to read a database this costflow's queries do not match.

    Raises MigrationError naming the first migration not applied, and what to do.
    """
    missing = pending(client)
    if missing:
        first = missing[0]
        raise MigrationError(
            f"the database has not applied {len(missing)} of this costflow's migrations "
            f"(first: {first.path.name}); run `costflow migrate` (with the sink stopped: "
            "`costflow up` and `replay` migrate when they start) and retry"
        )
