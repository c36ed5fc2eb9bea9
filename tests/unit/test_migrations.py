from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from pipeline.clickhouse.migrate import discover, migrate, split_statements
from pipeline.errors import MigrationError
from pipeline.resources import sql_dir

SNAPSHOT = Path(__file__).resolve().parents[1] / "snapshots" / "schema.sql"


def test_migrations_are_numbered_uniquely_and_idempotent_in_text() -> None:
    migrations = discover()
    assert [m.number for m in migrations] == sorted({m.number for m in migrations})
    for migration in migrations:
        for statement in migration.statements():
            upper = statement.upper()
            # A plain view may be replaced in place: atomic, and idempotent as well.
            if upper.startswith("CREATE") and not upper.startswith("CREATE OR REPLACE VIEW"):
                assert "IF NOT EXISTS" in upper, f"{migration.path.name}: {statement[:60]}"


def test_migrate_applies_once_and_is_a_no_op_after(chdb_client: Any) -> None:
    first = migrate(chdb_client)
    assert [m.number for m in first] == [m.number for m in discover()]
    assert migrate(chdb_client) == []
    tables = {row[0] for row in chdb_client.query("SHOW TABLES").result_rows}
    assert {"calls", "tasks", "dead_letters", "v_cost_per_outcome"} <= tables


def test_an_edited_shipped_migration_is_refused(chdb_client: Any, tmp_path: Path) -> None:
    sql = tmp_path / "sql"
    shutil.copytree(sql_dir(), sql)
    migrate(chdb_client, sql)
    first = sorted(sql.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="never edited"):
        migrate(chdb_client, sql)


def test_bad_migration_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "1_oops.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match="NNNN_snake_name"):
        discover(tmp_path)


def test_statement_splitting_ignores_comment_lines() -> None:
    text = "-- a; comment\nCREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = Memory;\n\nSELECT 1;\n"
    assert split_statements(text) == [
        "CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = Memory",
        "SELECT 1",
    ]


def _schema_dump(client: Any) -> str:
    database = client.query("SELECT currentDatabase()").result_rows[0][0]
    names = [row[0] for row in client.query("SHOW TABLES").result_rows]
    parts = []
    for name in sorted(names):
        ddl = client.query(f"SHOW CREATE TABLE {name}").result_rows[0][0]
        parts.append(re.sub(rf"\b{database}\.", "", ddl) + ";\n")
    return "\n".join(parts)


def test_schema_snapshot(chdb_client: Any) -> None:
    """Every CREATE as the engine sees it; a change must be deliberate.

    Regenerate with UPDATE_SNAPSHOTS=1 after adding a migration.
    """
    migrate(chdb_client)
    dump = _schema_dump(chdb_client)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(dump, encoding="utf-8")
    assert SNAPSHOT.exists(), "run with UPDATE_SNAPSHOTS=1 once to create the snapshot"
    assert dump == SNAPSHOT.read_text(encoding="utf-8")


def test_each_materialized_view_lists_its_target_columns_in_order(chdb_client: Any) -> None:
    """ClickHouse matches an MV's columns to its target by name; same order keeps them legible."""
    migrate(chdb_client)

    def columns(table: str) -> list[str]:
        return [
            row[0]
            for row in chdb_client.query(
                "SELECT name FROM system.columns WHERE database = currentDatabase() "
                "AND table = %(t)s ORDER BY position",
                parameters={"t": table},
            ).result_rows
        ]

    views = chdb_client.query(
        "SELECT name, create_table_query FROM system.tables "
        "WHERE database = currentDatabase() AND engine = 'MaterializedView'"
    ).result_rows
    assert len(views) >= 2
    for name, ddl in views:
        target = re.search(r"\bTO\s+(?:\w+\.)?(\w+)", ddl)
        assert target, f"{name}: materialized views write TO an explicit table"
        assert columns(name), name
        assert columns(name) == columns(target.group(1)), name


def test_every_written_table_deduplicates_retried_blocks(chdb_client: Any) -> None:
    """Without the window, a non-replicated table ignores insert_deduplication_token,
    and a retried insert would be counted twice by the aggregates fed from it."""
    migrate(chdb_client)
    tables = chdb_client.query(
        "SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase() "
        "AND engine LIKE '%MergeTree' AND name != 'schema_migrations'"
    ).result_rows
    assert {name for name, _ in tables} >= {"calls", "tasks", "task_changes", "dead_letters"}
    for name, ddl in tables:
        assert "non_replicated_deduplication_window" in ddl, name


def test_a_missing_or_empty_migration_directory_is_refused(tmp_path: Path) -> None:
    """ "Nothing to apply" from a directory that is not there left databases without tables."""
    with pytest.raises(MigrationError, match="does not exist"):
        discover(tmp_path / "nowhere")
    with pytest.raises(MigrationError, match="no migrations"):
        discover(tmp_path)


# sha256 of every shipped migration. A shipped migration is never edited (databases
# that applied it would differ from new ones): add a new numbered file instead, and
# its digest here in the same commit.
SHIPPED = {
    "0001_core_tables.sql": "ea3dd6c9cc658621cc1e7f136aef41b735d049e612f7771b8ad21e92e410852e",
    "0002_cost_per_outcome.sql": "2feb47d40142a805bb938f453408c7a6f9b3af98881337d44f01e818311ea25c",
    "0003_cache_write_1h.sql": "ac74e0864a71e11fac39276f420f43a565389102e496ca329f6249a8637e9951",
    "0004_task_restatement.sql": "36d797613f354710da160253c41f655ddf1927389e8bfb2f28baba2671a69376",
    "0005_pricing_dimensions_and_reprice.sql": (
        "da02119bfe134c5515c3c90383c8d4c196e8b085c71ddc44b020ecc306b3544f"
    ),
    "0006_analytics.sql": "7e51e37473ae4c4edacd1d853274a0c77a769a629f3ee1f22cfe6dbc5221832f",
    "0007_arms_and_fixed_costs.sql": (
        "2f5885ea49730f3be7db83b88b13e68f92edc53dd49d6d5ec681edf1845dadff"
    ),
    "0008_task_states.sql": "901dcf4ac78df6ee7770b239b28cec191c1ece679e053423d9649529bb321677",
    "0009_bin_quantile_function.sql": (
        "c2d9db71a30350e9c8fbfd05796bd948f167255a2795fd7e1f60ea02faa0cff8"
    ),
    "0010_audio_image_tokens.sql": (
        "398a7835877bc787a46af83b7bdbde26735a00767fcf6ae7a21f173cdeb3cb2a"
    ),
    "0011_partial_cost.sql": "f9655c2e8af969a281bbb6af1145ccdb3071a7c890254b890ac9082e9c11b843",
    "0012_alert_events.sql": "7e6c15c134800279e21ee28e2278aef432c619897edcdb84cd6f6c83321c5e1a",
    "0013_alert_pending_states.sql": (
        "793622f59d1156b8a90f74aa387474d1b5bee90e1d90202fb6758449c876c689"
    ),
    "0014_alert_delivery_outcomes.sql": (
        "c71f238c5d1e879ace182b08fea788e1ead5e83d8a43c0565885dcf8335904a3"
    ),
    "0015_alert_cleared_states.sql": (
        "1eedb8b8169358323697335e338f71f0ce7089d0ca59a7e691c5df8824c3ecda"
    ),
    "0016_alert_judgements.sql": (
        "26594ceac25a5c27ed9fc869f763b9a77636ef94c354e366a4811c263c2026c5"
    ),
    "0017_cost_reconciliation.sql": (
        "b55b5fb575637839fc5eb6943b2e412697488adb0de7e5910ad0ebc8daf6402d"
    ),
    "0018_focus_export.sql": ("5e33f22d598b3fb154f8d650ee0e482533303c408ea3d8dbf758da0460510fc3"),
    "0019_alert_task_judgements.sql": (
        "8faea367dbd0058d85c210977c6f099196fa9a3501b9408348f04a52149afa3c"
    ),
    "0020_task_costs.sql": ("beea08870bd5bc56cf84b3ace6c14704a242d86f655816e373d575ce7e713b3f"),
}


def test_shipped_migrations_are_unchanged_and_every_one_is_pinned() -> None:
    found = {m.path.name: m.checksum for m in discover()}
    assert found == SHIPPED, "a shipped migration changed, or a new one has no digest here"
