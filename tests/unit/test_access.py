"""Access control: the generated SQL parses in the real engine, and teams are granted
only tables their row policies cover and views built on those alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pipeline.clickhouse.access import (
    ALL_TEAMS_ONLY,
    OWNED_TABLES,
    TEAM_VIEWS,
    AccessPlan,
    access_statements,
    load_plan,
    password_sha256,
    render_sql,
)
from pipeline.clickhouse.migrate import migrate
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "access" / "teams.example.yaml"
PLAN = AccessPlan(database="acl", teams={"support": ["support-platform"], "data": ["data-eng"]})


def run_chdb(script: str, *args: str) -> str:
    """chDB in a child process: one engine per process, each with its own users config."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_every_statement_parses_in_the_engine(tmp_path: Path) -> None:
    statements = access_statements(PLAN, password_sha256("s3cret"))
    out = run_chdb(
        """
        import json, sys, chdb
        conn = chdb.connect(f"file:{sys.argv[1]}")
        cur = conn.cursor()
        kinds = []
        for statement in json.loads(sys.argv[2]):
            cur.execute("EXPLAIN AST " + statement)
            kinds.append(cur.fetchall()[0][0])
        print(json.dumps(kinds))
        """,
        str(tmp_path / "parse"),
        json.dumps(statements),
    )
    kinds = json.loads(out)
    assert len(kinds) == len(statements)
    policies = [s for s in statements if s.startswith("CREATE ROW POLICY")]
    # one unrestricted and one per team on every owned table
    assert len(policies) == len(OWNED_TABLES) * (1 + len(PLAN.teams))
    assert "s3cret" not in render_sql(PLAN, password_sha256("s3cret"))


def test_teams_are_granted_only_what_a_row_policy_covers(chdb_client: Any) -> None:
    """Every table a team may read has an owner column for its policy, and every view it
    may read is built only on such tables: no view leaks rows from an unfiltered table.

    chDB cannot prove the policies themselves: clickhouse-local has no writable access
    storage (CREATE ROLE / ROW POLICY fail) and ignores users.xml grants and row filters
    (checked: a config-file user with filters still reads every row).
    """
    migrate(chdb_client)
    for table in OWNED_TABLES:
        columns = {r[0] for r in chdb_client.query(f"DESCRIBE TABLE {table}").result_rows}
        assert "owner" in columns, table
    allowed = set(OWNED_TABLES) | set(TEAM_VIEWS)
    database = chdb_client.query("SELECT currentDatabase()").result_rows[0][0]
    for view in TEAM_VIEWS:
        query = chdb_client.query(
            "SELECT as_select FROM system.tables WHERE database = %(db)s AND name = %(v)s",
            parameters={"db": database, "v": view},
        ).result_rows[0][0]
        sources = set(re.findall(r"\b(?:FROM|JOIN)\s+(?:\w+\.)?(\w+)", query))
        assert sources and sources <= allowed, (view, sources - allowed)


def test_the_example_plan_loads_and_bad_plans_say_why(tmp_path: Path) -> None:
    assert load_plan(EXAMPLE).teams
    bad = tmp_path / "bad.yaml"
    bad.write_text("teams: {support: [a]}\nsuperuser: true\n")
    with pytest.raises(ConfigError, match="superuser"):
        load_plan(bad)
    quoted = AccessPlan(teams={"x": ["o'brien"]}).condition("x")
    assert quoted == "owner IN ('o\\'brien')"


def test_the_docs_list_every_column_of_every_view(chdb_client: Any) -> None:
    migrate(chdb_client)
    docs = (ROOT / "docs" / "analytics.md").read_text(encoding="utf-8")
    fixed_cost_views = [v for v in ALL_TEAMS_ONLY if v.startswith(("v_fixed", "v_scenario"))]
    for view in (*TEAM_VIEWS, *fixed_cost_views):
        section = docs.split(f"### `{view}`", 1)
        assert len(section) == 2, f"docs/analytics.md has no section for {view}"
        body = section[1].split("\n### ", 1)[0]
        for column, *_ in chdb_client.query(f"DESCRIBE TABLE {view}").result_rows:
            assert f"| `{column}` |" in body, f"{view}.{column} is not in docs/analytics.md"


def test_the_sink_role_covers_every_table_the_sink_reads_and_writes() -> None:
    """Read from the sink's own SQL: a table it touches without a grant fails only on a
    server with the restricted user, never under chDB."""
    from pipeline.clickhouse.access import SINK_INSERTS, SINK_SELECTS

    source = "\n".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "pipeline" / "sink").rglob("*.py")
    )
    reads = set(re.findall(r"\bFROM (\w+)", source))
    inserts = set(re.findall(r'insert\(\s*"(\w+)"', source))
    # Tables written through the plan log: the writer's PlanLog column map.
    inserts |= set(re.findall(r'"(\w+)": \w+_COLUMNS', source))
    assert reads and inserts
    assert reads <= set(SINK_SELECTS), f"grant SELECT on {sorted(reads - set(SINK_SELECTS))}"
    assert inserts <= set(SINK_INSERTS), f"grant INSERT on {sorted(inserts - set(SINK_INSERTS))}"
