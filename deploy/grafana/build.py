"""Writes the Grafana provisioning under deploy/grafana/ (dashboards and data sources).

    .venv/bin/python deploy/grafana/build.py           # rewrite the committed files
    .venv/bin/python deploy/grafana/build.py --check   # exit 1 if they have drifted

The JSON and YAML it writes are committed; tests/unit/test_grafana_dashboards.py
fails when they differ from what this script builds, and runs every ClickHouse
query of every panel (macros and variables expanded as the plugin expands them)
against demo data in chDB.

Panels read only the documented views (docs/analytics.md) and ``alert_events``
(docs/alerts.md). Money comes out of ClickHouse as Decimal; the plugin hands it to
Grafana as float64, which is fine for display (the exact figures stay in the views).

Data sources: one per team of deploy/access/teams.example.yaml, logging in as
``costflow_grafana_team_<team>`` whose default role is the team's row-policy role
``costflow_team_<team>`` from ``costflow access-sql``, and one for every owner
(``costflow_grafana_bi_all_teams``, role ``costflow_bi_all_teams``): the user is the
role's name with ``costflow_`` replaced by ``costflow_grafana_``. Fixed costs and the
alert history are granted to ``costflow_bi_all_teams`` only, so their panels use
that data source whatever the dashboard's ``datasource`` variable says.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.clickhouse.access import load_plan, team_role  # noqa: E402

CH_TYPE = "grafana-clickhouse-datasource"
ALL_TEAMS_ROLE = "costflow_bi_all_teams"
ALL_TEAMS_UID = "costflow-all-teams"
PROMETHEUS_UID = "costflow-prometheus"
TEAMS_FILE = ROOT / "deploy" / "access" / "teams.example.yaml"

CH = {"type": CH_TYPE, "uid": "${datasource}"}
CH_ALL = {"type": CH_TYPE, "uid": ALL_TEAMS_UID}
PROM = {"type": "prometheus", "uid": PROMETHEUS_UID}

# Label filters: each is 1=1 when its variable is All (the plugin's $__conditionalAll).
LABELS = """
  AND $__conditionalAll(scenario_id IN (${scenario}), $scenario)
  AND $__conditionalAll(owner IN (${owner}), $owner)
  AND $__conditionalAll(environment IN (${environment}), $environment)"""
SCENARIO_ONLY = """
  AND $__conditionalAll(scenario_id IN (${scenario}), $scenario)"""
# Day views: whole days of the range (a Date column against the range's dates).
DAYS = "$__dateFilter(day)"
# Hour views: every hour that overlaps the range.
HOURS = "hour >= toStartOfHour($__fromTime) AND hour <= $__toTime"

# The task_id box is free text, so it reaches the SQL percent-encoded (Grafana's
# :percentencode: everything but A-Z a-z 0-9 - _ . ~ becomes %XX) and ClickHouse decodes
# it inside a string literal nothing typed can leave. Not :sqlstring: it doubles single
# quotes but leaves backslashes, which ClickHouse reads as escapes, so an id ending in
# a backslash breaks the query and x\' OR 1=1 -- still runs its OR.
TASK_ID = "decodeURLComponent('${task_id:percentencode}')"

# Money columns carry the billing currency's unit. The costs in the views are in the
# price book's currency (pipeline/pricing/book.py, PriceBook.currency), one per book;
# the dashboards are built for the bundled book, whose currency is USD (the demo's).
# Grafana has units for a fixed list of currencies (currencyUSD, currencyEUR, ...);
# another book currency is shown as a suffix naming it, never as a bare number.
GRAFANA_CURRENCIES = {"USD", "EUR", "GBP", "JPY", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK",
                      "BRL", "INR", "KRW", "ZAR"}  # fmt: skip


def currency_unit(code: str) -> str:
    """Grafana's unit for money in ``code`` (an ISO 4217 code)."""
    return f"currency{code}" if code in GRAFANA_CURRENCIES else f"suffix: {code}"


def book_currency() -> str:
    from pipeline.pricing.book import load_price_book
    from pipeline.resources import default_price_book

    return load_price_book(default_price_book()).currency


CURRENCY = book_currency()
MONEY = currency_unit(CURRENCY)


def grafana_user(role: str) -> str:
    """The ClickHouse user a Grafana data source logs in as, for an access-sql role."""
    assert role.startswith("costflow_")
    return "costflow_grafana_" + role.removeprefix("costflow_")


def password_variable(user: str) -> str:
    return f"{user.upper()}_PASSWORD"


# -- panels ------------------------------------------------------------------------------


class Layout:
    """Places panels left to right, 24 columns a row."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def ident(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def _by_name(units: dict[str, str], extra: dict[str, list[dict[str, Any]]] | None = None) -> list:
    overrides = [
        {"matcher": {"id": "byName", "options": name}, "properties": [{"id": "unit", "value": u}]}
        for name, u in units.items()
    ]
    for name, properties in (extra or {}).items():
        overrides.append({"matcher": {"id": "byName", "options": name}, "properties": properties})
    return overrides


def ch_panel(
    layout: Layout,
    kind: str,
    title: str,
    sql: str,
    *,
    description: str,
    units: dict[str, str] | None = None,
    unit: str | None = None,
    w: int = 12,
    h: int = 8,
    datasource: dict[str, str] = CH,
    options: dict[str, Any] | None = None,
    custom: dict[str, Any] | None = None,
    extra: dict[str, list[dict[str, Any]]] | None = None,
    transformations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A panel with one ClickHouse query; ``units`` name the columns it formats."""
    timeseries = kind in {"timeseries", "heatmap"}
    defaults: dict[str, Any] = {}
    if unit:
        defaults["unit"] = unit
    if custom:
        defaults["custom"] = custom
    panel: dict[str, Any] = {
        "id": layout.ident(),
        "type": kind,
        "title": title,
        "description": description,
        "datasource": datasource,
        "gridPos": layout.place(w, h),
        "fieldConfig": {"defaults": defaults, "overrides": _by_name(units or {}, extra)},
        "options": options or {},
        "targets": [
            {
                "refId": "A",
                "datasource": datasource,
                "editorType": "sql",
                # sqlutil's formats: 0 time series (long frames made wide), 1 table.
                "format": 0 if timeseries and kind != "heatmap" else 1,
                "queryType": "timeseries" if timeseries else "table",
                "rawSql": sql.strip(),
            }
        ],
    }
    if transformations:
        panel["transformations"] = transformations
    return panel


def prom_panel(
    layout: Layout,
    kind: str,
    title: str,
    exprs: dict[str, str],
    *,
    description: str,
    unit: str = "short",
    w: int = 12,
    h: int = 8,
) -> dict[str, Any]:
    """A panel of PromQL expressions (legend -> expression)."""
    return {
        "id": layout.ident(),
        "type": kind,
        "title": title,
        "description": description,
        "datasource": PROM,
        "gridPos": layout.place(w, h),
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": PROM, "expr": expr, "legendFormat": legend}
            for i, (legend, expr) in enumerate(exprs.items())
        ],
    }


def row(layout: Layout, title: str) -> dict[str, Any]:
    layout.x, layout.y, layout.row_h = 0, layout.y + layout.row_h, 0
    pos = layout.place(24, 1)
    layout.x, layout.y, layout.row_h = 0, layout.y + 1, 0
    return {
        "id": layout.ident(),
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": pos,
        "panels": [],
    }


# -- variables ---------------------------------------------------------------------------


def label_variable(name: str, label: str, column: str) -> dict[str, Any]:
    """Multi-value with All: the plugin writes a selection as 'a','b' (for IN (...)),
    and $__conditionalAll drops the condition when All is selected."""
    sql = f"SELECT DISTINCT {column} FROM v_outcomes_daily\nWHERE {DAYS}\nORDER BY {column}"
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": CH,
        "query": {"refId": name, "editorType": "sql", "format": 1, "rawSql": sql},
        "definition": sql,
        "refresh": 2,  # on time range change
        "multi": True,
        "includeAll": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Team",
        "type": "datasource",
        "query": CH_TYPE,
        "current": {"text": "costflow (all teams)", "value": ALL_TEAMS_UID},
        "regex": "/^costflow/",
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[dict[str, Any]],
    *,
    labels: bool = True,
    extra_variables: list[dict[str, Any]] | None = None,
    time_from: str = "now-7d",
) -> dict[str, Any]:
    variables: list[dict[str, Any]] = []
    if labels:
        variables += [
            datasource_variable(),
            label_variable("scenario", "Scenario", "scenario_id"),
            label_variable("owner", "Owner", "owner"),
            label_variable("environment", "Environment", "environment"),
        ]
    variables += extra_variables or []
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["costflow"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": time_from, "to": "now"},
        "refresh": "",
        "templating": {"list": variables},
        "links": [
            {
                "type": "dashboards",
                "tags": ["costflow"],
                "asDropdown": True,
                "title": "costflow",
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "panels": panels,
    }


# -- dashboards --------------------------------------------------------------------------


def outcomes() -> dict[str, Any]:
    lay = Layout()
    panels = [
        ch_panel(
            lay,
            "stat",
            "Cost per accepted outcome",
            f"""
SELECT
  sum(o.total_cost) / nullIf(sum(o.accepted), 0) AS cost_per_accepted_outcome,
  sum(o.total_cost) AS total_cost,
  sum(o.accepted) AS accepted,
  sum(o.unpriced_calls) AS unpriced_calls
FROM v_outcomes_hourly AS o
WHERE {HOURS}{LABELS}""",
            description="Over the range: all call cost (failed and retried calls "
            "included) over accepted tasks. While unpriced calls > 0 cost is a lower "
            "bound.",
            # The panel's own unit is the currency (its headline is money), not only
            # overrides matched by column name; the two counts are overridden instead.
            unit=MONEY,
            units={"accepted": "short", "unpriced_calls": "short"},
            w=24,
            h=5,
        ),
        ch_panel(
            lay,
            "timeseries",
            "Cost per accepted outcome by scenario",
            f"""
SELECT
  $__timeInterval(hour) AS time,
  scenario_id,
  sum(total_cost) / nullIf(sum(accepted), 0) AS cost_per_accepted_outcome
FROM v_outcomes_hourly
WHERE {HOURS}{LABELS}
GROUP BY time, scenario_id
ORDER BY time""",
            description="By the hour of each task's first event, bucketed to the panel's interval.",
            unit=MONEY,
            w=24,
        ),
        ch_panel(
            lay,
            "table",
            "Final vs provisional, by scenario",
            f"""
SELECT
  scenario_id,
  sumIf(tasks, final = 1) AS final_tasks,
  sumIf(total_cost, final = 1) / nullIf(sumIf(accepted, final = 1), 0) AS final_cost_per_accepted,
  sumIf(tasks, final = 0) AS provisional_tasks,
  sumIf(pending, final = 0) AS pending_tasks,
  sumIf(total_cost, final = 0) / nullIf(sumIf(accepted, final = 0), 0)
    AS provisional_cost_per_accepted
FROM v_outcomes_hourly
WHERE {HOURS}{LABELS}
GROUP BY scenario_id
ORDER BY scenario_id""",
            description="Final hours have no task still inside its outcome window; "
            "provisional ones do, so their figure still moves as outcomes arrive.",
            units={"final_cost_per_accepted": MONEY, "provisional_cost_per_accepted": MONEY},
        ),
        ch_panel(
            lay,
            "table",
            "With and without fixed costs (all teams)",
            f"""
SELECT
  scenario_id,
  sum(f.variable_cost) AS variable_cost,
  sum(f.fixed_cost) AS fixed_cost,
  sum(f.full_cost) AS full_cost,
  sum(f.variable_cost) / nullIf(sum(f.accepted), 0) AS cost_per_accepted_outcome,
  sum(f.full_cost) / nullIf(sum(f.accepted), 0) AS full_cost_per_accepted_outcome,
  min(f.final) AS final
FROM v_scenario_full_cost_daily AS f
WHERE {DAYS}{SCENARIO_ONLY}
GROUP BY scenario_id
ORDER BY scenario_id""",
            description="Fixed costs are allocated per scenario, not per owner: this "
            "panel reads the all-teams data source (costflow_bi_all_teams) and "
            "filters by scenario only.",
            datasource=CH_ALL,
            units={
                "variable_cost": MONEY,
                "fixed_cost": MONEY,
                "full_cost": MONEY,
                "cost_per_accepted_outcome": MONEY,
                "full_cost_per_accepted_outcome": MONEY,
            },
        ),
        ch_panel(
            lay,
            "timeseries",
            "Tasks by outcome",
            f"""
SELECT
  $__timeInterval(hour) AS time,
  sum(accepted) AS accepted,
  sum(rejected) AS rejected,
  sum(failed) AS failed,
  sum(unresolved) AS unresolved,
  sum(pending) AS pending
FROM v_outcomes_hourly
WHERE {HOURS}{LABELS}
GROUP BY time
ORDER BY time""",
            description="Outcome status is judged now: pending tasks are still inside "
            "their window, unresolved ones are past it without an outcome.",
            custom={"stacking": {"mode": "normal"}, "drawStyle": "bars", "fillOpacity": 80},
            w=24,
        ),
    ]
    return dashboard(
        "costflow-outcomes",
        "costflow: cost per accepted outcome",
        "What an accepted outcome costs, final and provisional, with and without fixed costs.",
        panels,
    )


def _nearest_rank(alias: str, pct: int) -> str:
    return f"argMinIf(bin_mean, upto, upto >= intDiv(n * {pct} + 99, 100)) AS {alias}"


HEATMAP_BOUNDS = (
    "0",
    "0.0001",
    "0.0003",
    "0.001",
    "0.003",
    "0.01",
    "0.03",
    "0.1",
    "0.3",
    "1",
    "3",
    "10",
)


def _heatmap_columns() -> str:
    out = []
    for i, low in enumerate(HEATMAP_BOUNDS):
        high = HEATMAP_BOUNDS[i + 1] if i + 1 < len(HEATMAP_BOUNDS) else None
        cond = f"bin_lower >= {low}" + (f" AND bin_lower < {high}" if high else "")
        if i == 0:
            cond = f"bin_lower < {high}"
        out.append(f"  sumIf(tasks, {cond}) AS `{low}`")
    return ",\n".join(out)


def tails() -> dict[str, Any]:
    lay = Layout()
    # Nearest-rank quantiles from the summed 1% bins (docs/analytics.md): the mean cost
    # of the bin holding task ceil(pct% of n), within 1% of the exact figure.
    binned = f"""
WITH
  bins AS (
    SELECT @KEY@cost_bin, sum(tasks) AS k, sum(total_cost) AS c
    FROM v_task_cost_histogram
    WHERE {DAYS}{LABELS}
    GROUP BY @KEY@cost_bin
    HAVING k != 0
  ),
  ranked AS (
    SELECT @KEY@c / k AS bin_mean,
      sum(k) OVER (PARTITION BY @PART@ ORDER BY cost_bin ROWS UNBOUNDED PRECEDING) AS upto,
      sum(k) OVER (PARTITION BY @PART@) AS n
    FROM bins
  )"""
    per_day = binned.replace("@KEY@", "day, ").replace("@PART@", "day")
    per_scenario = binned.replace("@KEY@", "scenario_id, ").replace("@PART@", "scenario_id")
    panels = [
        ch_panel(
            lay,
            "timeseries",
            "Cost per task: p50, p95, p99",
            per_day
            + f"""
SELECT
  toDateTime(day) AS time,
  {_nearest_rank("p50", 50)},
  {_nearest_rank("p95", 95)},
  {_nearest_rank("p99", 99)}
FROM ranked
GROUP BY day
ORDER BY time""",
            description="Per day of the tasks' first event, over the selected "
            "scenarios, owners and environments: the mean of the 1% bin holding the "
            "nearest-rank task.",
            unit=MONEY,
            custom={"scaleDistribution": {"type": "log", "log": 10}},
            w=24,
        ),
        ch_panel(
            lay,
            "table",
            "Tails by scenario",
            per_scenario
            + f"""
SELECT
  scenario_id,
  any(n) AS tasks,
  {_nearest_rank("p50", 50)},
  {_nearest_rank("p90", 90)},
  {_nearest_rank("p95", 95)},
  {_nearest_rank("p99", 99)},
  p95 / nullIf(p50, 0) AS p95_p50_ratio
FROM ranked
GROUP BY scenario_id
ORDER BY scenario_id""",
            description="Over the whole range, from the summed bins.",
            units={"p50": MONEY, "p90": MONEY, "p95": MONEY, "p99": MONEY},
        ),
        ch_panel(
            lay,
            "heatmap",
            "Cost per task distribution",
            f"""
SELECT
  toDateTime(day) AS time,
{_heatmap_columns()}
FROM v_task_cost_histogram
WHERE {DAYS}{LABELS}
GROUP BY time
ORDER BY time""",
            description=f"Tasks per day by cost band ({CURRENCY}; each column holds tasks "
            "whose 1% bin starts at or above its name and below the next).",
            options={
                "calculate": False,
                "rowsFrame": {"layout": "ge"},
                "yAxis": {"unit": MONEY},
                "color": {"scheme": "Oranges", "mode": "scheme"},
                "cellGap": 1,
            },
        ),
        ch_panel(
            lay,
            "table",
            "Costliest tasks",
            f"""
SELECT
  task_id,
  day,
  scenario_id,
  owner,
  outcome,
  total_cost,
  calls,
  failed_calls,
  retried_calls,
  fallback_calls,
  unpriced_calls
FROM v_task_costs
WHERE {DAYS}{LABELS}
ORDER BY total_cost DESC, task_id
LIMIT 50""",
            description="The 100 costliest tasks of each day, the 50 costliest of the "
            "range here. Click a task for its call chain below.",
            units={"total_cost": MONEY},
            extra={
                "task_id": [
                    {
                        "id": "links",
                        "value": [
                            {
                                "title": "Call chain",
                                # Encoded explicitly: a task id may hold & or # (Grafana
                                # encodes data links by default only since 8.5).
                                "url": "/d/costflow-tails?${__url_time_range}"
                                "&${scenario:queryparam}"
                                "&${owner:queryparam}&${environment:queryparam}"
                                "&${datasource:queryparam}&var-task_id=${__value.raw:percentencode}",
                            }
                        ],
                    }
                ]
            },
            w=24,
            h=10,
        ),
        ch_panel(
            lay,
            "table",
            "Call chain of ${task_id}",
            f"""
SELECT
  ts,
  role,
  provider,
  model,
  status,
  attempt,
  fallback_from,
  latency_ms,
  input_tokens,
  cache_read_tokens,
  output_tokens,
  reasoning_tokens,
  cost_total,
  cost_known,
  pricing_error
FROM v_task_call_chain
WHERE task_id = {TASK_ID}
ORDER BY ts, event_id""",
            description="Every call of the task picked in Costliest tasks (or typed "
            "into the task_id box), in order.",
            units={"cost_total": MONEY, "cost_known": MONEY, "latency_ms": "ms"},
            w=24,
            h=10,
        ),
    ]
    task_id = {
        "name": "task_id",
        "label": "task_id",
        "type": "textbox",
        "query": "",
        "current": {"text": "", "value": ""},
    }
    return dashboard(
        "costflow-tails",
        "costflow: tails",
        "Cost per task quantiles, its distribution, and the costliest tasks "
        "with their call chains.",
        panels,
        extra_variables=[task_id],
    )


def waste() -> dict[str, Any]:
    lay = Layout()
    panels = [
        ch_panel(
            lay,
            "timeseries",
            "Waste: cost of tasks that did not pay off",
            f"""
SELECT
  $__timeInterval(hour) AS time,
  sum(rejected_cost) AS rejected,
  sum(failed_cost) AS failed,
  sum(unresolved_cost) AS unresolved,
  sum(pending_cost) AS pending
FROM v_outcomes_hourly
WHERE {HOURS}{LABELS}
GROUP BY time
ORDER BY time""",
            description="Cost of rejected, failed and unresolved tasks (pending is not waste yet).",
            unit=MONEY,
            custom={"stacking": {"mode": "normal"}, "fillOpacity": 40},
        ),
        ch_panel(
            lay,
            "stat",
            "Waste share",
            f"""
SELECT
  sum(o.waste_cost) / nullIf(sum(o.total_cost), 0) AS waste_share,
  sum(o.waste_cost) AS waste_cost
FROM v_outcomes_hourly AS o
WHERE {HOURS}{LABELS}""",
            description="Waste over all cost in the range.",
            units={"waste_share": "percentunit", "waste_cost": MONEY},
        ),
        ch_panel(
            lay,
            "timeseries",
            "Overhead: retries, fallbacks, failed calls",
            f"""
SELECT
  toDateTime(day) AS time,
  sum(retry_cost) AS retries,
  sum(fallback_cost) AS fallbacks,
  sum(failed_call_cost) AS failed_calls
FROM v_call_overhead_daily
WHERE {DAYS}{LABELS}
GROUP BY time
ORDER BY time""",
            description="Per day of the call, by the labels the call reported.",
            unit=MONEY,
        ),
        ch_panel(
            lay,
            "table",
            "Overhead by scenario",
            f"""
SELECT
  scenario_id,
  sum(o.calls) AS calls,
  sum(o.total_cost) AS total_cost,
  sum(o.retry_calls) / nullIf(sum(o.calls), 0) AS retry_rate,
  sum(o.retry_cost) AS retry_cost,
  sum(o.fallback_calls) AS fallback_calls,
  sum(o.fallback_cost) AS fallback_cost,
  sum(o.failed_calls) / nullIf(sum(o.calls), 0) AS failed_call_rate,
  sum(o.failed_call_cost) AS failed_call_cost,
  sum(o.unpriced_calls) AS unpriced_calls
FROM v_call_overhead_daily AS o
WHERE {DAYS}{LABELS}
GROUP BY scenario_id
ORDER BY total_cost DESC""",
            description="Rates are weighted by calls over the range.",
            units={
                "total_cost": MONEY,
                "retry_cost": MONEY,
                "fallback_cost": MONEY,
                "failed_call_cost": MONEY,
                "retry_rate": "percentunit",
                "failed_call_rate": "percentunit",
            },
        ),
        ch_panel(
            lay,
            "barchart",
            "Cost by role",
            f"""
SELECT
  role,
  sum(total_cost) AS total_cost,
  sum(calls) AS calls
FROM v_cost_by_role_daily
WHERE {DAYS}{LABELS}
GROUP BY role
ORDER BY total_cost DESC""",
            description="The hidden chains: classifier, generator, critic, refiner, judge ...",
            units={"total_cost": MONEY},
            options={"xField": "role", "orientation": "horizontal"},
        ),
        ch_panel(
            lay,
            "table",
            "Cost by role and model",
            f"""
SELECT
  role,
  model,
  sum(calls) AS calls,
  sum(total_cost) AS total_cost,
  sum(prompt_tokens) AS prompt_tokens,
  sum(completion_tokens) AS completion_tokens
FROM v_cost_by_role_daily
WHERE {DAYS}{LABELS}
GROUP BY role, model
ORDER BY total_cost DESC""",
            description="Per role inside the task and model.",
            units={"total_cost": MONEY},
        ),
    ]
    return dashboard(
        "costflow-waste",
        "costflow: waste and overhead",
        "Tasks that did not pay off, retries, fallbacks, failed calls and cost by role.",
        panels,
    )


def cache_tokens() -> dict[str, Any]:
    lay = Layout()
    panels = [
        ch_panel(
            lay,
            "timeseries",
            "Cache hit rate on prompt tokens",
            f"""
SELECT
  toDateTime(day) AS time,
  model,
  sum(cache_read_tokens)
    / nullIf(sum(input_tokens) + sum(cache_read_tokens) + sum(cache_write_tokens), 0)
    AS cache_hit_rate
FROM v_cache_economics_daily
WHERE {DAYS}{LABELS}
GROUP BY time, model
ORDER BY time""",
            description="Cache-read tokens over prompt tokens, per model.",
            unit="percentunit",
        ),
        ch_panel(
            lay,
            "table",
            "Cache economics by model",
            f"""
SELECT
  provider,
  model,
  sum(cache_read_savings) AS cache_read_savings,
  sum(cache_write_premium) AS cache_write_premium,
  sum(net_cache_savings) AS net_cache_savings,
  sum(stable_prefix_cost) AS stable_prefix_cost,
  sum(dynamic_input_cost) AS dynamic_input_cost
FROM v_cache_economics_daily
WHERE {DAYS}{LABELS}
GROUP BY provider, model
ORDER BY net_cache_savings DESC""",
            description="What cache reads saved against the input rate, what cache "
            "writes cost above it, and the input cost split into the stable (cached) "
            "prefix and the dynamic part.",
            units={
                c: MONEY
                for c in (
                    "cache_read_savings",
                    "cache_write_premium",
                    "net_cache_savings",
                    "stable_prefix_cost",
                    "dynamic_input_cost",
                )
            },
        ),
        ch_panel(
            lay,
            "timeseries",
            "Token mix",
            f"""
SELECT
  toDateTime(day) AS time,
  sum(input_tokens) AS input,
  sum(cache_read_tokens) AS cache_read,
  sum(cache_write_tokens) AS cache_write,
  sum(output_tokens) AS output,
  sum(reasoning_tokens) AS reasoning
FROM v_token_economics_daily
WHERE {DAYS}{LABELS}
GROUP BY time
ORDER BY time""",
            description="Tokens per day by class.",
            unit="short",
            custom={"stacking": {"mode": "normal"}, "fillOpacity": 50},
        ),
        ch_panel(
            lay,
            "table",
            "Tokens by model",
            f"""
SELECT
  provider,
  model,
  sum(t.calls) AS calls,
  sum(t.prompt_tokens) / nullIf(sum(t.calls), 0) AS avg_prompt_tokens,
  (sum(t.output_tokens) + sum(t.reasoning_tokens)) / nullIf(sum(t.calls), 0)
    AS avg_completion_tokens,
  sum(t.reasoning_tokens)
    / nullIf(sum(t.prompt_tokens) + sum(t.output_tokens) + sum(t.reasoning_tokens), 0)
    AS reasoning_share,
  sum(t.capped_calls) / nullIf(sum(t.calls_with_cap), 0) AS cap_hit_rate
FROM v_token_economics_daily AS t
WHERE {DAYS}{LABELS}
GROUP BY provider, model
ORDER BY calls DESC""",
            description="Average prompt and completion sizes, reasoning share, and how "
            "often calls with an output cap hit it.",
            units={"reasoning_share": "percentunit", "cap_hit_rate": "percentunit"},
        ),
    ]
    return dashboard(
        "costflow-cache-tokens",
        "costflow: cache and tokens",
        "Prompt cache economics and the token mix.",
        panels,
    )


def models() -> dict[str, Any]:
    lay = Layout()
    panels = [
        ch_panel(
            lay,
            "table",
            "Decision template: models",
            f"""
SELECT
  scenario_id,
  provider,
  model,
  sum(d.calls) AS calls,
  sum(d.raw_token_cost) AS raw_token_cost,
  sum(d.cache_adjusted_cost) AS cache_adjusted_cost,
  sum(d.retry_rate * d.calls) / nullIf(sum(d.calls), 0) AS retry_rate,
  avg(d.quality_pass_rate) AS quality_pass_rate,
  max(d.latency_p95_ms) AS worst_daily_latency_p95_ms,
  sum(d.tasks) AS tasks,
  sum(d.accepted) AS accepted,
  sum(d.task_cost) / nullIf(sum(d.accepted), 0) AS cost_per_accepted_outcome,
  min(d.final) AS final
FROM v_model_decision_daily AS d
WHERE {DAYS}{LABELS}
GROUP BY scenario_id, provider, model
ORDER BY scenario_id, cache_adjusted_cost DESC""",
            description="Call-level figures (call labels) beside the task-level ones "
            "of the tasks that used the model (whole task cost, every model). A task "
            "that used several models counts under each. Latency quantiles do not add "
            "up over days: the worst daily p95 is shown; `costflow compare` gives the "
            "period's from summed bins.",
            units={
                "raw_token_cost": MONEY,
                "cache_adjusted_cost": MONEY,
                "cost_per_accepted_outcome": MONEY,
                "retry_rate": "percentunit",
                "quality_pass_rate": "percentunit",
                "worst_daily_latency_p95_ms": "ms",
            },
            w=24,
            h=10,
        ),
        ch_panel(
            lay,
            "timeseries",
            "Cost per accepted outcome by model in the chain",
            f"""
SELECT
  toDateTime(day) AS time,
  arm AS model,
  sum(total_cost) / nullIf(sum(accepted), 0) AS cost_per_accepted_outcome
FROM v_arm_outcomes_daily
WHERE dimension = 'model' AND {DAYS}{LABELS}
GROUP BY time, model
ORDER BY time""",
            description="Tasks that used the model (whole task cost).",
            unit=MONEY,
        ),
        ch_panel(
            lay,
            "table",
            "Experiment arms",
            f"""
SELECT
  scenario_id,
  arm,
  sum(a.tasks) AS tasks,
  sum(a.accepted) AS accepted,
  sum(a.accepted) / nullIf(sum(a.tasks), 0) AS acceptance_rate,
  sum(a.total_cost) AS total_cost,
  sum(a.total_cost) / nullIf(sum(a.accepted), 0) AS cost_per_accepted_outcome,
  sum(a.waste_cost) AS waste_cost,
  min(a.final) AS final
FROM v_arm_outcomes_daily AS a
WHERE dimension = 'experiment' AND {DAYS}{LABELS}
GROUP BY scenario_id, arm
ORDER BY scenario_id, arm""",
            description="Arms of attributes.experiment. Whether a difference is "
            "outside the noise: `costflow compare --scenario S --experiment` (95% "
            "interval, at least 30 accepted outcomes per arm).",
            units={
                "total_cost": MONEY,
                "cost_per_accepted_outcome": MONEY,
                "waste_cost": MONEY,
                "acceptance_rate": "percentunit",
            },
        ),
    ]
    return dashboard(
        "costflow-models",
        "costflow: models and experiments",
        "The decision template: what an accepted outcome costs per model and experiment arm.",
        panels,
    )


def alerts() -> dict[str, Any]:
    lay = Layout()
    latest = """
SELECT
  alert,
  fingerprint,
  argMax(e.state, e.at) AS state,
  argMax(e.severity, e.at) AS severity,
  toString(argMax(e.labels, e.at)) AS labels,
  argMax(e.value, e.at) AS value,
  argMax(e.expected, e.at) AS expected,
  argMax(e.impact, e.at) AS impact,
  min(e.starts_at) AS starts_at,
  max(e.at) AS last_event_at
FROM alert_events AS e FINAL
WHERE e.at <= $__toTime_ms AND e.state != 'restated'
GROUP BY alert, fingerprint"""
    panels = [
        ch_panel(
            lay,
            "table",
            "Open alerts at the end of the range",
            f"""
SELECT *
FROM ({latest.strip()})
WHERE state IN ('firing', 'cleared', 'recurred', 'pending')
ORDER BY severity, impact DESC""",
            description="Each instance's latest state up to the end of the range; "
            "cleared instances are still firing until keep_firing_for runs out.",
            datasource=CH_ALL,
            units={"impact": MONEY},
            w=24,
        ),
        ch_panel(
            lay,
            "timeseries",
            "Notifications",
            """
SELECT
  $__timeInterval(at) AS time,
  state,
  count() AS events
FROM alert_events FINAL
WHERE $__timeFilter_ms(at) AND state IN ('firing', 'resolved')
GROUP BY time, state
ORDER BY time""",
            description="Firing and resolved events: what receivers are told.",
            datasource=CH_ALL,
            custom={"drawStyle": "bars", "fillOpacity": 80},
        ),
        ch_panel(
            lay,
            "barchart",
            "Money at stake by alert",
            """
SELECT
  alert,
  sum(impact) AS impact
FROM alert_events FINAL
WHERE $__timeFilter_ms(at) AND state = 'firing'
GROUP BY alert
ORDER BY impact DESC""",
            description="Sum of impact over firings in the range (kinds that can say).",
            datasource=CH_ALL,
            units={"impact": MONEY},
            options={"xField": "alert", "orientation": "horizontal"},
        ),
        ch_panel(
            lay,
            "table",
            "Alert history",
            """
SELECT
  at,
  alert,
  kind,
  state,
  severity,
  value,
  expected,
  impact,
  toString(e.labels) AS labels,
  toString(e.details) AS details
FROM alert_events AS e FINAL
WHERE $__timeFilter_ms(at)
ORDER BY at DESC, alert
LIMIT 500""",
            description="Every event in the range, restatements included (docs/alerts.md).",
            datasource=CH_ALL,
            units={"impact": MONEY},
            w=24,
            h=10,
        ),
    ]
    return dashboard(
        "costflow-alerts",
        "costflow: alerts",
        "The alert history (alert_events), read with the all-teams data source.",
        panels,
        labels=False,
    )


def pipeline_health() -> dict[str, Any]:
    lay = Layout()
    r = "[$__rate_interval]"

    def rate(metric: str, by: str = "") -> str:
        grouping = f"sum by ({by}) " if by else "sum"
        return f"{grouping}(rate({metric}{r}))"

    panels = [
        prom_panel(
            lay,
            "timeseries",
            "Events consumed by stage 1",
            {
                "{{type}}": f"sum by (type) (rate(costflow_worker_events_total{r}))",
                "duplicates {{type}}": rate("costflow_worker_duplicate_events_total", "type"),
            },
            description="Input events applied per second, by type.",
            unit="ops",
        ),
        prom_panel(
            lay,
            "timeseries",
            "Dead letters and unpriced calls",
            {
                "dead letters {{reason}}": rate("costflow_worker_dead_letters_total", "reason"),
                "unpriced {{provider}}/{{model}}": rate(
                    "costflow_worker_unpriced_calls_total", "provider, model"
                ),
                "otlp dead letters {{reason}}": rate(
                    "costflow_ingest_otlp_dead_letters_total", "reason"
                ),
            },
            description="Records set aside and calls the price book could not price.",
            unit="ops",
        ),
        prom_panel(
            lay,
            "timeseries",
            "Consumer lag",
            {
                "worker {{topic}}": "sum by (topic) (costflow_worker_consumer_lag_records)",
                "sink {{topic}}": "sum by (topic) (costflow_sink_consumer_lag_records)",
            },
            description="Records after the committed offset, per topic.",
            unit="short",
        ),
        prom_panel(
            lay,
            "timeseries",
            "Event-time watermark age",
            {
                "worker p{{partition}}": "costflow_worker_event_time_watermark_age_seconds",
                "alert data time": "costflow_alerts_data_time_age_seconds",
            },
            description="Wall clock minus the latest event time applied; an idle "
            "partition ages too.",
            unit="s",
        ),
        prom_panel(
            lay,
            "timeseries",
            "Sink writes",
            {
                "rows {{table}}": f"sum by (table) (rate(costflow_sink_rows_written_total{r}))",
                "failed writes": f"sum(rate(costflow_sink_failed_writes_total{r}))",
                "restatements": f"sum(rate(costflow_sink_task_restatements_total{r}))",
            },
            description="Rows made durable per second, by table.",
            unit="ops",
        ),
        prom_panel(
            lay,
            "timeseries",
            "Sink write latency",
            {
                "p50": "histogram_quantile(0.5, sum by (le) "
                f"(rate(costflow_sink_write_duration_seconds_bucket{r})))",
                "p99": "histogram_quantile(0.99, sum by (le) "
                f"(rate(costflow_sink_write_duration_seconds_bucket{r})))",
            },
            description="Time to make one batch durable.",
            unit="s",
        ),
        prom_panel(
            lay,
            "stat",
            "Since the last durable write and commit",
            {
                "write": "time() - max(costflow_sink_last_durable_write_timestamp_seconds)",
                "commit": "time() - max(costflow_sink_last_commit_timestamp_seconds)",
            },
            description="Seconds since the sink last made a batch durable and committed.",
            unit="s",
            w=8,
        ),
        prom_panel(
            lay,
            "stat",
            "Open tasks in stage-1 state",
            {
                "open": "sum(costflow_worker_open_tasks)",
                "evicted/s": f"sum(rate(costflow_worker_evicted_tasks_total{r}))",
            },
            description="Tasks held in state across workers, and evictions.",
            w=8,
        ),
        prom_panel(
            lay,
            "stat",
            "Alerts firing",
            {
                "{{alert}} ({{severity}})": "sum by (alert, severity) (costflow_alerts_firing)",
                "failed cycles": f"sum(increase(costflow_alerts_failed_cycles_total{r}))",
            },
            description="From `costflow alerts run` (COSTFLOW_ALERTS_METRICS_PORT), or the "
            "sink when it evaluates the rules itself.",
            w=8,
        ),
        prom_panel(
            lay,
            "timeseries",
            "HTTP collector",
            {
                "{{endpoint}} {{code}}": rate(
                    "costflow_collector_requests_total", "endpoint, code"
                ),
                "records {{endpoint}} {{outcome}}": rate(
                    "costflow_collector_records_total", "endpoint, outcome"
                ),
            },
            description="Requests by endpoint and status, records by outcome.",
            unit="ops",
        ),
        prom_panel(
            lay,
            "timeseries",
            "Ingest: OTLP spans",
            {
                "spans": f"rate(costflow_ingest_otlp_spans_total{r})",
                "call events": f"rate(costflow_ingest_otlp_call_events_total{r})",
                "skipped spans": f"rate(costflow_ingest_otlp_skipped_spans_total{r})",
            },
            description="Trace export spans read, call events sent, spans that were "
            "not model calls.",
            unit="ops",
        ),
        # The collector's latency has a panel of its own: in the OTLP spans panel it
        # read as a span rate (seconds on an ops axis) and the title did not name it.
        prom_panel(
            lay,
            "timeseries",
            "HTTP collector request latency",
            {
                "p50 {{endpoint}}": "histogram_quantile(0.5, sum by (le, endpoint) "
                f"(rate(costflow_collector_request_duration_seconds_bucket{r})))",
                "p99 {{endpoint}}": "histogram_quantile(0.99, sum by (le, endpoint) "
                f"(rate(costflow_collector_request_duration_seconds_bucket{r})))",
            },
            description="Time from a request to its answer, broker acknowledgements "
            "included, by endpoint.",
            unit="s",
        ),
        prom_panel(
            lay,
            "table",
            "Build and price book",
            {
                "{{job}} {{version}} {{price_book}}": "costflow_build_info",
            },
            description="Version of costflow and of the price book each stage runs.",
            w=24,
            h=5,
        ),
    ]
    return dashboard(
        "costflow-pipeline",
        "costflow: pipeline health",
        "Prometheus metrics of the stages; money is not here (it lives in ClickHouse).",
        panels,
        labels=False,
        time_from="now-6h",
    )


DASHBOARDS = {
    "outcomes.json": outcomes,
    "tails.json": tails,
    "waste.json": waste,
    "cache-tokens.json": cache_tokens,
    "models.json": models,
    "alerts.json": alerts,
    "pipeline.json": pipeline_health,
}


# -- provisioning ------------------------------------------------------------------------


def clickhouse_source(name: str, uid: str, role: str) -> dict[str, Any]:
    user = grafana_user(role)
    return {
        "name": name,
        "uid": uid,
        "type": CH_TYPE,
        "access": "proxy",
        "editable": False,
        "jsonData": {
            "host": "clickhouse",
            "port": 8123,
            "protocol": "http",
            # The plugin's settings loader reads the user from jsonData, not basicAuth.
            "username": user,
            "defaultDatabase": "costflow",
            "queryTimeout": "60",
        },
        # From the environment of the Grafana process (a secret in Kubernetes).
        "secureJsonData": {"password": f"$__env{{{password_variable(user)}}}"},
    }


def datasources() -> dict[str, Any]:
    plan = load_plan(TEAMS_FILE)
    sources = [
        clickhouse_source("costflow (all teams)", ALL_TEAMS_UID, ALL_TEAMS_ROLE),
        *(
            clickhouse_source(f"costflow (team {team})", f"costflow-team-{team}", team_role(team))
            for team in sorted(plan.teams)
        ),
    ]
    sources[0]["isDefault"] = True
    sources.append(
        {
            "name": "Prometheus",
            "uid": PROMETHEUS_UID,
            "type": "prometheus",
            "access": "proxy",
            "url": "http://prometheus:9090",
            "editable": False,
            "jsonData": {"timeInterval": "15s"},
        }
    )
    return {"apiVersion": 1, "datasources": sources}


def dashboards_provider() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "costflow",
                "folder": "costflow",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {"path": "/etc/grafana/dashboards/costflow"},
            }
        ],
    }


HEADER = "# Generated by deploy/grafana/build.py from {source}; edit that, not this file.\n"


def files() -> dict[Path, str]:
    out: dict[Path, str] = {}
    for name, build in DASHBOARDS.items():
        out[HERE / "dashboards" / name] = json.dumps(build(), indent=2) + "\n"
    out[HERE / "provisioning" / "datasources" / "costflow.yaml"] = HEADER.format(
        source="deploy/access/teams.example.yaml"
    ) + yaml.safe_dump(datasources(), sort_keys=False)
    out[HERE / "provisioning" / "dashboards" / "costflow.yaml"] = HEADER.format(
        source="itself"
    ) + yaml.safe_dump(dashboards_provider(), sort_keys=False)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the files drifted")
    args = parser.parse_args(argv)
    drifted = []
    for path, text in files().items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        drifted.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in drifted:
        print(f"{'drifted' if args.check else 'wrote'}: {path.relative_to(ROOT)}")
    return 1 if args.check and drifted else 0


if __name__ == "__main__":
    sys.exit(main())
