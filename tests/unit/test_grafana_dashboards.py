"""The Grafana dashboards cannot rot: every panel's query runs on demo data in chDB.

Grafana is not installable here, so the test does what Grafana and the ClickHouse
plugin (grafana-clickhouse-datasource 4.x) do to a panel's SQL before ClickHouse sees
it, in their order:

1. the plugin's frontend replaces ``$__conditionalAll(cond, $var)`` by ``1=1`` when the
   variable's current value is All (or empty), else by ``cond``
   (``applyConditionalAll``: innermost-last, arguments split at top-level commas);
2. Grafana's template service replaces ``$var`` / ``${var}`` / ``${var:format}``
   with the plugin's formatter: a multi-value (or All) selection becomes
   ``'a','b'`` (joined, quoted, not escaped), a single value is inserted raw;
   ``:sqlstring`` wraps each value in single quotes with its single quotes doubled
   (joined with ","), ``:percentencode`` percent-encodes all but ``A-Za-z0-9-_.~``
   (a multi-value as ``{a,b}``), as Grafana's formatRegistry does;
3. the plugin's backend expands its macros (pkg/macros/macros.go):
   ``$__timeFilter(c)`` -> ``c >= toDateTime(<from s>) AND c <= toDateTime(<to s>)``,
   ``$__timeFilter_ms(c)`` the same with ``fromUnixTimestamp64Milli(<ms>)``,
   ``$__dateFilter(c)`` -> ``c >= toDate('YYYY-MM-DD') AND c <= toDate(...)``,
   ``$__fromTime`` / ``$__toTime`` (``toDateTime``), ``$__fromTime_ms`` /
   ``$__toTime_ms`` (``fromUnixTimestamp64Milli``), ``$__timeInterval(c)`` ->
   ``toStartOfInterval(toDateTime(c), INTERVAL <s> second)``, ``$__interval_s``.

Each query then runs against the demo workload (the real stage 1 and sink into chDB,
the demo's fixed costs, the demo rules' alerts from the real engine) and must return
rows with every column the panel's field config names.
"""

from __future__ import annotations

import importlib.util
import json
import re
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_build", GRAFANA / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _build_module()


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((GRAFANA / "dashboards").glob("*.json"))
    }


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        if panel["type"] != "row":
            yield panel
        yield from panel.get("panels", [])


def is_clickhouse(target_or_panel: dict[str, Any]) -> bool:
    return target_or_panel.get("datasource", {}).get("type") == build.CH_TYPE


# -- what the plugin and Grafana do to the SQL -------------------------------------------


def _macro_args(text: str, open_paren: int) -> tuple[list[str], int]:
    """Arguments of the call whose "(" is at ``open_paren``, split at top-level commas
    (the plugin's getMacroArgs), and the index after the closing ")"."""
    depth, start, args = 0, open_paren + 1, []
    for i in range(open_paren, len(text)):
        char = text[i]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                args.append(text[start:i])
                return args, i + 1
        elif char == "," and depth == 1:
            args.append(text[start:i])
            start = i + 1
    raise AssertionError(f"unbalanced macro call in {text[open_paren : open_paren + 80]!r}")


def conditional_all(sql: str, variables: dict[str, str | list[str]]) -> str:
    macro = "$__conditionalAll("
    while (index := sql.rfind(macro)) != -1:
        args, end = _macro_args(sql, index + len(macro) - 1)
        assert len(args) == 2, args
        name = re.search(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+", args[1].strip())
        phrase = args[0]
        if name:
            value = variables.get(name.group(0))
            if value in ("", "$__all", ["$__all"]):
                phrase = "1=1"
        sql = sql[:index] + phrase + sql[end:]
    return sql


_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}"
)


def template(sql: str, variables: dict[str, str | list[str]], options: dict[str, list[str]]) -> str:
    """Grafana's templateSrv.replace with the plugin's format function."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        if name not in variables:
            return match.group(0)  # $__timeFilter & co: the backend's
        current = variables[name]
        if current in ("$__all", ["$__all"]):
            current = options[name]  # All without allValue: every option
        form = match.group(3) or match.group(6)
        if form == "sqlstring":
            values = current if isinstance(current, list) else [current]
            return ",".join("'" + v.replace("'", "''") + "'" for v in values)
        if form == "percentencode":
            text = "{" + ",".join(current) + "}" if isinstance(current, list) else current
            return quote(text, safe="")  # encodeURIComponent, and !'()* too
        assert form is None, f"format :{form} is not reproduced here"
        if isinstance(current, list):
            return "'" + "','".join(current) + "'"
        return current

    return _VARIABLE.sub(value, sql)


def backend_macros(sql: str, start: datetime, end: datetime, interval_s: int) -> str:
    def dt(t: datetime) -> str:
        return f"toDateTime({int(t.timestamp())})"

    def dt64(t: datetime) -> str:
        return f"fromUnixTimestamp64Milli({int(t.timestamp() * 1000)})"

    def date(t: datetime) -> str:
        return f"toDate('{t.astimezone(UTC):%Y-%m-%d}')"

    with_column = {
        "timeFilter": lambda c: f"{c} >= {dt(start)} AND {c} <= {dt(end)}",
        "timeFilter_ms": lambda c: f"{c} >= {dt64(start)} AND {c} <= {dt64(end)}",
        "dateFilter": lambda c: f"{c} >= {date(start)} AND {c} <= {date(end)}",
        "timeInterval": lambda c: (
            f"toStartOfInterval(toDateTime({c}), INTERVAL {max(interval_s, 1)} second)"
        ),
    }
    bare = {
        "fromTime": dt(start), "toTime": dt(end), "fromTime_ms": dt64(start),
        "toTime_ms": dt64(end), "interval_s": str(max(interval_s, 1)),
    }  # fmt: skip
    out, pos = [], 0
    for match in re.finditer(r"\$__(\w+)", sql):
        if match.start() < pos:
            continue
        name = match.group(1)
        out.append(sql[pos : match.start()])
        if name in with_column:
            assert sql[match.end() : match.end() + 1] == "(", f"$__{name} needs (column)"
            args, pos = _macro_args(sql, match.end())
            assert len(args) == 1, f"$__{name}: {args}"
            out.append(with_column[name](args[0].strip()))
        elif name in bare:
            out.append(bare[name])
            pos = match.end()
        else:
            raise AssertionError(f"$__{name} is not a macro this test reproduces")
    out.append(sql[pos:])
    return "".join(out)


def expand(
    sql: str,
    variables: dict[str, str | list[str]],
    options: dict[str, list[str]],
    start: datetime,
    end: datetime,
    interval_s: int = 300,
) -> str:
    sql = template(conditional_all(sql, variables), variables, options)
    sql = backend_macros(sql, start, end, interval_s)
    assert "$" not in sql, f"not expanded: {sql}"
    return sql


def test_the_expansion_matches_the_plugins_own_examples() -> None:
    """Cases from the plugin's tests (CHDatasource.test.ts, macros_test.go)."""
    sql = "select stuff from table where $__conditionalAll(fieldVal in ($fieldVal), $fieldVal);"
    assert conditional_all(sql, {"fieldVal": ["$__all"]}) == "select stuff from table where 1=1;"
    kept = conditional_all(sql, {"fieldVal": ["a", "b"]})
    assert kept == "select stuff from table where fieldVal in ($fieldVal);"
    assert template(kept, {"fieldVal": ["a", "b"]}, {}) == (
        "select stuff from table where fieldVal in ('a','b');"
    )
    start = datetime(2021, 1, 1, tzinfo=UTC)
    end = datetime(2021, 1, 1, 0, 0, 10, 123000, tzinfo=UTC)
    assert backend_macros("$__timeFilter(col)", start, end, 1) == (
        "col >= toDateTime(1609459200) AND col <= toDateTime(1609459210)"
    )
    assert backend_macros("$__timeFilter_ms(col)", start, end, 1) == (
        "col >= fromUnixTimestamp64Milli(1609459200000) "
        "AND col <= fromUnixTimestamp64Milli(1609459210123)"
    )
    assert backend_macros("$__timeInterval(ts)", start, end, 20) == (
        "toStartOfInterval(toDateTime(ts), INTERVAL 20 second)"
    )
    with pytest.raises(AssertionError):
        backend_macros("$__timeGroup(ts, 5m)", start, end, 1)  # not reproduced here


def test_the_formats_match_grafanas_own_examples() -> None:
    """Cases from Grafana's formatRegistry tests."""
    assert template("${v:sqlstring}", {"v": "test'value"}, {}) == "'test''value'"
    assert template("${v:sqlstring}", {"v": ["test", "test'value2"]}, {}) == (
        "'test','test''value2'"
    )
    assert template("${v:percentencode}", {"v": "foo()bar BAZ"}, {}) == "foo%28%29bar%20BAZ"
    assert template("${v:percentencode}", {"v": ["foo()bar BAZ", "test2"]}, {}) == (
        "%7Bfoo%28%29bar%20BAZ%2Ctest2%7D"
    )


# -- files --------------------------------------------------------------------------------


def test_committed_files_are_what_build_py_writes() -> None:
    drifted = [
        str(path.relative_to(ROOT))
        for path, text in build.files().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    assert not drifted, f"run .venv/bin/python deploy/grafana/build.py: {drifted}"
    assert {p.name for p in (GRAFANA / "dashboards").glob("*.json")} == set(build.DASHBOARDS)


def test_one_data_source_per_team_logging_in_with_its_row_policy_role() -> None:
    from pipeline.clickhouse.access import access_statements, load_plan, team_role

    plan = load_plan(ROOT / "deploy" / "access" / "teams.example.yaml")
    config = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "costflow.yaml").read_text()
    )
    clickhouse = [s for s in config["datasources"] if s["type"] == build.CH_TYPE]
    users = {s["jsonData"]["username"]: s for s in clickhouse}
    expected = {f"costflow_grafana_team_{t}": team_role(t) for t in plan.teams}
    expected["costflow_grafana_bi_all_teams"] = "costflow_bi_all_teams"
    assert set(users) == set(expected)
    created = " ".join(access_statements(plan, None))
    for user, role in expected.items():
        assert f"CREATE ROLE IF NOT EXISTS {role}" in created
        assert build.grafana_user(role) == user
        source = users[user]
        assert "password" not in json.dumps(source["jsonData"]).lower()
        assert source["secureJsonData"] == {"password": f"$__env{{{user.upper()}_PASSWORD}}"}
    assert users["costflow_grafana_bi_all_teams"]["uid"] == build.ALL_TEAMS_UID
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "costflow.yaml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards/costflow"


def documented_views() -> set[str]:
    text = (ROOT / "docs" / "analytics.md").read_text(encoding="utf-8")
    return set(re.findall(r"^### `(v_\w+)`", text, flags=re.MULTILINE))


def read_objects(sql: str) -> set[str]:
    names = set(re.findall(r"\bFROM\s+(\w+)", sql, flags=re.IGNORECASE))
    ctes = set(re.findall(r"(\w+)\s+AS\s*\(", sql, flags=re.IGNORECASE))
    return names - ctes


def all_queries() -> Iterator[tuple[str, str, dict[str, Any] | None, dict[str, Any]]]:
    """(dashboard, title, panel or None for a variable, target) for every ClickHouse query."""
    for name, board in dashboards().items():
        for variable in board["templating"]["list"]:
            if variable["type"] == "query" and is_clickhouse(variable):
                query = {**variable["query"], "datasource": variable["datasource"]}
                yield name, f"variable {variable['name']}", None, query
        for panel in panels(board):
            for target in panel.get("targets", []):
                if is_clickhouse(target):
                    yield name, panel["title"], panel, target


def test_panels_read_only_documented_views_with_a_source_allowed_to() -> None:
    """Team data sources see the views access-sql grants teams; fixed costs and alert
    history are granted to the all-teams role only, so those panels use its source."""
    from pipeline.clickhouse.access import ALL_TEAMS_ONLY, TEAM_VIEWS

    documented = documented_views() | {"alert_events"}
    seen = 0
    for name, title, _panel, target in all_queries():
        objects = read_objects(target["rawSql"])
        assert objects, (name, title)
        assert objects <= documented, (name, title, objects - documented)
        if target["datasource"]["uid"] == build.ALL_TEAMS_UID:
            assert objects <= set(TEAM_VIEWS) | set(ALL_TEAMS_ONLY)
        else:
            assert target["datasource"]["uid"] == "${datasource}", (name, title)
            assert objects <= set(TEAM_VIEWS), (name, title, objects - set(TEAM_VIEWS))
        seen += 1
    assert seen >= 30


def defined_metrics() -> set[str]:
    """Sample names the stages expose, from their real collectors."""
    from pipeline.runtime.collector import Metrics
    from pipeline.runtime.stage_metrics import (
        AlertLoopMetrics,
        IngestMetrics,
        SinkMetrics,
        WorkerMetrics,
        registry,
        write_timer,
    )

    counters = SimpleNamespace(processed={}, duplicates={}, dead_lettered={}, unpriced={},
                               evicted=0)  # fmt: skip
    store = type("Store", (), {"__len__": lambda self: 0,
                               "retention": SimpleNamespace(watermark={0: 1_000})})()  # fmt: skip
    worker = WorkerMetrics(SimpleNamespace(counters=counters, store=store))  # type: ignore[arg-type]
    sink_state = SimpleNamespace(skipped=dict, restatements=lambda: 0)
    runner = SimpleNamespace(written={}, failed_writes=0, last_durable_at=None,
                             last_commit_at=None, batch=[], sink=sink_state, lag={})  # fmt: skip
    loop = SimpleNamespace(cycles=0, failed_cycles=0, firing={}, data_time=datetime.now(UTC))
    ingest = SimpleNamespace(records=0, spans=0, calls=0, not_model_calls=0, dead_lettered={})
    registries = [Metrics().registry]
    for collector in (worker, SinkMetrics(runner), AlertLoopMetrics(loop), IngestMetrics(ingest)):
        registries.append(registry(collector, "book@1"))  # type: ignore[arg-type]
    write_timer(registries[-1])
    names: set[str] = set()
    suffixes = {"counter": ["_total"], "gauge": [""], "info": ["_info"],
                "histogram": ["_bucket", "_sum", "_count"]}  # fmt: skip
    for reg in registries:
        for family in reg.collect():
            names |= {family.name + s for s in suffixes.get(family.type, [""])}
    return names


def test_pipeline_health_panels_use_metrics_the_stages_expose() -> None:
    exposed = defined_metrics()
    used: set[str] = set()
    for panel in panels(dashboards()["pipeline.json"]):
        assert panel["datasource"]["type"] == "prometheus"
        for target in panel["targets"]:
            used |= set(re.findall(r"\bcostflow_\w+", target["expr"]))
    assert used, "no metric in the pipeline dashboard"
    assert used <= exposed, sorted(used - exposed)
    # The headline series of issue 18 are there.
    for needed in ("costflow_worker_events_total", "costflow_worker_consumer_lag_records",
                   "costflow_sink_rows_written_total", "costflow_build_info",
                   "costflow_sink_write_duration_seconds_bucket",
                   "costflow_worker_event_time_watermark_age_seconds"):  # fmt: skip
        assert needed in used


# -- the queries against the demo data ---------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The demo's workload, smaller (spike and runaway agent included), through the real
    stage 1 and sink; the demo's fixed costs; the demo rules' alerts recorded."""
    from pipeline.alerts.engine import backtest
    from pipeline.alerts.history import AlertHistory
    from pipeline.alerts.rules import load_rules
    from pipeline.demo.workload import START, generate
    from pipeline.pricing.fixed_costs import load_fixed_costs
    from pipeline.query import fixed_costs
    from pipeline.query.alert_inputs import ClickHouseAlertInputs
    from pipeline.resources import example_alert_rules, example_fixed_costs
    from pipeline.runtime.demo import DEMO_RUNAWAY, DEMO_SPIKE
    from tests.chdb import chdb_database
    from tests.unit.test_analytics_views import run_stage1_and_sink

    with chdb_database(tmp_path_factory.mktemp("grafana-chdb"), "gf") as client:
        events = generate(500, seed=18, spike=DEMO_SPIKE, spike_tasks=60, runaway=DEMO_RUNAWAY)
        run_stage1_and_sink(client, events, waves=2)
        fixed_costs.load(client, *load_fixed_costs(example_fixed_costs()))
        rules = load_rules(example_alert_rules().with_name("demo.yaml"))
        # History up to an hour into the demo's cost spike: its alert is still open.
        until = DEMO_SPIKE + timedelta(hours=2)
        AlertHistory(client).record(backtest(rules, ClickHouseAlertInputs(client), START, until))
        open_alerts = client.query(
            "SELECT count() FROM alert_events FINAL WHERE fingerprint NOT IN "
            "(SELECT fingerprint FROM alert_events WHERE state = 'resolved')"
        )
        assert open_alerts.result_rows[0][0] > 0  # the spike's alert, for the open-alerts panel
        yield client


RANGE = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 8, tzinfo=UTC))
TIMINGS: dict[str, float] = {}


def options_of(client: Any, board: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            sql = expand(variable["query"]["rawSql"], {}, {}, *RANGE)
            out[variable["name"]] = [str(r[0]) for r in client.query(sql).result_rows]
    return out


def run(client: Any, sql: str) -> tuple[list[str], list[str], list[tuple[Any, ...]], float]:
    started = time.perf_counter()
    result = client.query(sql)
    elapsed = time.perf_counter() - started
    columns, types = list(result.column_names), [t.name for t in result.column_types]
    if not columns:  # an empty result carries no header here: ask for it
        described = client.query(f"DESCRIBE TABLE ({sql})").result_rows
        columns, types = [r[0] for r in described], [r[1] for r in described]
    return columns, types, result.result_rows, elapsed


def referenced_fields(panel: dict[str, Any]) -> set[str]:
    fields = {
        o["matcher"]["options"]
        for o in panel["fieldConfig"]["overrides"]
        if o["matcher"]["id"] == "byName"
    }
    if "xField" in panel.get("options", {}):
        fields.add(panel["options"]["xField"])
    return fields


def test_every_panel_query_runs_on_demo_data_and_returns_its_fields(demo: Any) -> None:
    client = demo
    costliest = client.query(
        "SELECT task_id FROM v_costliest_tasks ORDER BY total_cost DESC LIMIT 1"
    ).result_rows[0][0]
    failures: list[str] = []
    checked = 0
    for name, board in dashboards().items():
        options = options_of(client, board)
        for variable, values in options.items():
            if not values:
                failures.append(f"{name}: variable {variable} has no values")
        everything: dict[str, str | list[str]] = {v: ["$__all"] for v in options}
        everything["task_id"] = costliest
        # A selection of one or two values exercises IN ('a','b') instead of 1=1.
        picked: dict[str, str | list[str]] = {v: values[:2] for v, values in options.items()}
        picked["task_id"] = costliest
        for panel in panels(board):
            for target in panel.get("targets", []):
                if not is_clickhouse(target):
                    continue
                label = f"{name} / {panel['title']}"
                for variables, need_rows in ((everything, True), (picked, False)):
                    sql = expand(target["rawSql"], variables, options, *RANGE)
                    try:
                        columns, types, rows, elapsed = run(client, sql)
                    except Exception as exc:  # report every broken panel at once
                        failures.append(f"{label}: {str(exc).splitlines()[0][:300]}")
                        break
                    TIMINGS[label] = max(TIMINGS.get(label, 0.0), elapsed)
                    if need_rows and not rows:
                        failures.append(f"{label}: no rows on the demo data")
                    missing = referenced_fields(panel) - set(columns)
                    if missing:
                        failures.append(f"{label}: no column {sorted(missing)}")
                    time_first = columns[0] == "time" and types[0].startswith("DateTime")
                    if target["format"] == 0 and not time_first:  # time series
                        failures.append(f"{label}: first column {columns[0]} {types[0]}")
                    if panel["type"] == "heatmap":
                        buckets = [float(c) for c in columns[1:]]
                        if buckets != sorted(buckets) or columns[0] != "time":
                            failures.append(f"{label}: heatmap rows {columns}")
                checked += 1
    assert not failures, "\n".join(failures)
    assert checked == sum(1 for _, _, panel, _ in all_queries() if panel is not None) >= 25
    slowest = sorted(TIMINGS.items(), key=lambda kv: -kv[1])[:5]
    print("\nslowest panel queries on the demo data (chDB):")
    for label, seconds in slowest:
        print(f"  {seconds * 1000:7.1f} ms  {label}")
    print(f"  median {statistics.median(TIMINGS.values()) * 1000:.1f} ms over {len(TIMINGS)}")


def test_a_selection_changes_what_a_panel_returns(demo: Any) -> None:
    """The variables reach the SQL: one scenario's total is not every scenario's."""
    board = dashboards()["outcomes.json"]
    stat = next(p for p in panels(board) if p["type"] == "stat")
    options = options_of(demo, board)
    assert len(options["scenario"]) > 1
    every = {v: ["$__all"] for v in options}
    one = {**every, "scenario": options["scenario"][:1]}
    sql_all = expand(stat["targets"][0]["rawSql"], every, options, *RANGE)
    sql_one = expand(stat["targets"][0]["rawSql"], one, options, *RANGE)
    assert "1=1" in sql_all and f"IN ('{options['scenario'][0]}')" in sql_one
    total_all = demo.query(sql_all).result_rows[0][1]
    total_one = demo.query(sql_one).result_rows[0][1]
    assert 0 < total_one < total_all


def call_chain_sql() -> str:
    board = dashboards()["tails.json"]
    panel = next(p for p in panels(board) if p["title"] == "Call chain of ${task_id}")
    return str(panel["targets"][0]["rawSql"])


@pytest.mark.parametrize(
    "task_id", ["it's", "x' OR 1=1 --", "x\\' OR 1=1 --", "ends in \\", "é%20&"]
)
def test_a_typed_task_id_is_a_value_never_sql(demo: Any, task_id: str) -> None:
    """The task_id box is free text: quotes, backslashes and percent signs stay in the
    value, so the query runs and finds no task, rather than failing or matching all."""
    sql = expand(call_chain_sql(), {"task_id": task_id}, {}, *RANGE)
    assert demo.query(sql).result_rows == []
    # And the id reaches ClickHouse as typed.
    typed = expand(f"SELECT {build.TASK_ID}", {"task_id": task_id}, {}, *RANGE)
    assert demo.query(typed).result_rows == [(task_id,)]


def test_sqlstring_alone_would_let_a_backslash_end_the_literal(demo: Any) -> None:
    """Why the panel percent-encodes rather than using :sqlstring: ClickHouse reads a
    backslash as an escape, which :sqlstring leaves as it is."""
    assert "${task_id:percentencode}" in call_chain_sql()
    naive = call_chain_sql().replace(build.TASK_ID, "${task_id:sqlstring}")
    sql = expand(naive, {"task_id": "x\\' OR 1=1 --"}, {}, *RANGE)
    assert demo.query(sql).result_rows  # every call of every task: injected


def test_each_pipeline_panel_holds_what_its_title_says() -> None:
    """The OTLP ingest panel reads the ingest's metrics only; a latency quantile sits on
    a panel in seconds whose title names its component."""
    for panel in panels(dashboards()["pipeline.json"]):
        metrics = {m for t in panel["targets"] for m in re.findall(r"\bcostflow_\w+", t["expr"])}
        if panel["title"].startswith("Ingest: OTLP"):
            assert all(m.startswith("costflow_ingest_otlp_") for m in metrics), panel["title"]
        if any(m.endswith("_duration_seconds_bucket") for m in metrics):
            assert panel["fieldConfig"]["defaults"]["unit"] == "s", panel["title"]
            assert "latency" in panel["title"].lower(), panel["title"]
            if any(m.startswith("costflow_collector_") for m in metrics):
                assert "collector" in panel["title"].lower(), panel["title"]


def test_money_is_shown_in_the_books_currency() -> None:
    """Every money column has the currency's unit (the bundled book's: USD), the
    headline stat as the panel's own unit; another currency is named, not dropped."""
    assert build.MONEY == "currencyUSD" == build.currency_unit(build.book_currency())
    assert build.currency_unit("EUR") == "currencyEUR"
    assert build.currency_unit("AUD") == "suffix: AUD"
    stat = next(p for p in panels(dashboards()["outcomes.json"]) if p["type"] == "stat")
    assert stat["title"] == "Cost per accepted outcome"
    assert stat["fieldConfig"]["defaults"]["unit"] == build.MONEY
    money = re.compile(r"cost|saving|premium|impact|^p\d\d$")
    for name, board in dashboards().items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                if not is_clickhouse(target):
                    continue
                sql = target["rawSql"]
                columns = set(re.findall(r"\bAS\s+(\w+)", sql))
                columns |= set(re.findall(r"^\s+(\w+),?$", sql, flags=re.MULTILINE))
                config = panel["fieldConfig"]
                units = {
                    o["matcher"]["options"]: p["value"]
                    for o in config["overrides"]
                    for p in o["properties"]
                    if p["id"] == "unit"
                }
                for column in {c for c in columns if money.search(c)}:
                    unit = units.get(column, config["defaults"].get("unit"))
                    assert unit == build.MONEY, (name, panel["title"], column, unit)
