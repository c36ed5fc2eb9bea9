"""Access control for a ClickHouse server: read-only BI roles, per-team row policies, a sink user.

``costflow access-sql --teams FILE`` prints the SQL; an administrator runs it
after ``costflow migrate``. Every table a team can read carries an ``owner``
column, and each team's row policy keeps the rows of its own owners. Tables
without an owner (dead letters with their original bytes, sink bookkeeping,
reprice history) are not granted to teams at all.

Why the statements look as they do:
- ClickHouse hides every row of a table with a row policy from a user that no
  policy of that table names, so the sink and the all-teams reader get a
  ``USING 1`` policy of their own.
- Views read with the invoker's rights (SQL SECURITY INVOKER, the default for
  plain views), so a team reading ``v_outcomes_daily`` gets its policy applied to
  the aggregate table underneath; it needs SELECT on both.
- Materialized views insert with their definer's rights, so the sink needs
  INSERT only on the tables it writes, not on the aggregates behind them.
- The sink's password is never in the SQL: only its SHA-256, from
  ``COSTFLOW_SINK_PASSWORD`` or a file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ConfigError

_IDENT = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]

# Tables with an owner column that BI may read (row policies apply to each).
OWNED_TABLES = (
    "calls", "tasks", "task_changes", "task_outcomes_daily", "task_costs_hourly",
    "task_cost_histogram_daily", "call_costs_hourly", "call_latency_daily", "task_arms_daily",
    "focus_rates",
)  # fmt: skip
# Views over those tables only; a team reading one sees its own owners' rows.
TEAM_VIEWS = (
    "v_cost_per_outcome", "v_outcomes_hourly", "v_outcomes_daily", "v_task_cost_histogram",
    "v_task_cost_tails_daily", "v_costliest_tasks", "v_task_costs", "v_task_call_chain",
    "v_call_overhead_daily", "v_cost_by_role_daily", "v_cache_economics_daily",
    "v_token_economics_daily", "v_model_calls_daily", "v_focus_costs", "v_arm_outcomes_daily",
    "v_model_decision_daily", "v_cost_reconciliation_calls", "v_cost_reconciliation_daily",
)  # fmt: skip
# Fixed costs have no owner: allocated per scenario, read by those who see every team.
ALL_TEAMS_ONLY = (
    "fixed_costs", "v_fixed_costs", "v_fixed_cost_allocation_daily", "v_fixed_cost_items",
    "v_scenario_full_cost_daily", "v_reprice_comparison", "call_repricings",
    "alert_events", "alert_deliveries", "alert_judgements",
)  # fmt: skip
# `costflow alerts run`: reads the call tables every owner's rows, writes only its
# history (the rules evaluate on aggregates; nothing else changes).
ALERTS_SELECTS = ("calls", "call_cancellations", "call_costs_hourly", "alert_events",
                  "alert_deliveries", "alert_judgements", "schema_migrations")  # fmt: skip
ALERTS_INSERTS = ("alert_events", "alert_deliveries", "alert_judgements")
# What the sink writes, and reads back to stay idempotent.
# (alert_events: stage 1's task_budget firings, recorded once per task and rule.)
SINK_INSERTS = ("calls", "task_changes", "task_states", "call_repricings",
                "call_cancellations", "dead_letters", "sink_plans", "alert_events")  # fmt: skip
SINK_SELECTS = ("calls", "task_changes", "task_states", "call_repricings",
                "call_cancellations", "sink_plans", "alert_events")  # fmt: skip


class AccessPlan(BaseModel):
    """Teams and the owners whose rows each may read (deploy/access/teams.example.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database: _IDENT = "costflow"
    teams: dict[_IDENT, list[Annotated[str, Field(min_length=1, max_length=256)]]]
    sink_user: _IDENT = "costflow_sink"

    def condition(self, team: str) -> str:
        """The row filter of a team: its owners, as SQL string literals."""
        owners = ", ".join(_quote(owner) for owner in sorted(set(self.teams[team])))
        return f"owner IN ({owners})"


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def load_plan(path: Path) -> AccessPlan:
    try:
        return AccessPlan.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: not a valid access plan: {exc}") from None


def password_sha256(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def access_statements(plan: AccessPlan, sink_password_sha256: str | None) -> list[str]:
    """The SQL, statement by statement; idempotent (IF NOT EXISTS, GRANT is additive)."""
    db = plan.database
    readable = [*OWNED_TABLES, *TEAM_VIEWS]
    out = [
        "CREATE SETTINGS PROFILE IF NOT EXISTS costflow_read_only SETTINGS readonly = 2",
        "CREATE ROLE IF NOT EXISTS costflow_bi_reader SETTINGS PROFILE 'costflow_read_only'",
        *(f"GRANT SELECT ON {db}.{name} TO costflow_bi_reader" for name in readable),
        # Sees every owner's rows: finance, platform on-call.
        "CREATE ROLE IF NOT EXISTS costflow_bi_all_teams",
        "GRANT costflow_bi_reader TO costflow_bi_all_teams",
        *(f"GRANT SELECT ON {db}.{name} TO costflow_bi_all_teams" for name in ALL_TEAMS_ONLY),
        "CREATE ROLE IF NOT EXISTS costflow_sink_writer",
        *(f"GRANT INSERT ON {db}.{name} TO costflow_sink_writer" for name in SINK_INSERTS),
        *(f"GRANT SELECT ON {db}.{name} TO costflow_sink_writer" for name in SINK_SELECTS),
        "CREATE ROLE IF NOT EXISTS costflow_alerts_evaluator",
        *(f"GRANT SELECT ON {db}.{name} TO costflow_alerts_evaluator" for name in ALERTS_SELECTS),
        *(f"GRANT INSERT ON {db}.{name} TO costflow_alerts_evaluator" for name in ALERTS_INSERTS),
    ]
    if sink_password_sha256 is not None:
        out.append(
            f"CREATE USER IF NOT EXISTS {plan.sink_user} IDENTIFIED WITH sha256_hash BY "
            f"'{sink_password_sha256}' DEFAULT ROLE costflow_sink_writer "
            f"DEFAULT DATABASE {db}"
        )
        out.append(f"GRANT costflow_sink_writer TO {plan.sink_user}")
    for team in sorted(plan.teams):
        role = team_role(team)
        out += [f"CREATE ROLE IF NOT EXISTS {role}", f"GRANT costflow_bi_reader TO {role}"]
    for table in OWNED_TABLES:
        unrestricted = [
            "costflow_bi_all_teams",
            "costflow_sink_writer",
            "costflow_alerts_evaluator",
        ]
        out.append(
            f"CREATE ROW POLICY IF NOT EXISTS costflow_all_owners ON {db}.{table} "
            f"FOR SELECT USING 1 TO {', '.join(unrestricted)}"
        )
        for team in sorted(plan.teams):
            out.append(
                f"CREATE ROW POLICY IF NOT EXISTS {team_role(team)} ON {db}.{table} "
                f"FOR SELECT USING {plan.condition(team)} TO {team_role(team)}"
            )
    return out


def team_role(team: str) -> str:
    return f"costflow_team_{team}"


def render_sql(plan: AccessPlan, sink_password_sha256: str | None) -> str:
    header = (
        "-- costflow access control, generated by `costflow access-sql`; run as an admin\n"
        "-- after `costflow migrate`. Then grant roles to people:\n"
        "--   CREATE USER alice IDENTIFIED BY '...' DEFAULT ROLE costflow_team_<team>;\n"
        "--   GRANT costflow_team_<team> TO alice;\n"
    )
    return header + "".join(f"{s};\n" for s in access_statements(plan, sink_password_sha256))
