"""docker-compose.yml and deploy/ must stay consistent with the code (no Docker engine here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pipeline import config

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def known_variables() -> set[str]:
    names = set()
    for cls in (
        config.StackSettings,
        config.KafkaSettings,
        config.TopicSettings,
        config.ClickHouseSettings,
        config.WorkerSettings,
        config.SinkSettings,
        config.IngestSettings,
        config.AlertsSettings,
    ):
        prefix = cls.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in cls.model_fields}
    return names


def test_services_and_their_wiring() -> None:
    services = compose()["services"]
    assert set(services) == {
        "kafka", "clickhouse", "worker", "sink", "alerts", "alertmanager",
        "otel-collector", "ingest-otlp", "collector", "prometheus", "grafana",
    }  # fmt: skip
    assert services["collector"]["command"] == ["ingest", "http"]
    assert services["ingest-otlp"]["command"] == ["ingest", "otlp"]
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    # The broker's log (topics, offsets, stage 1's changelog) is on its volume.
    [volume] = services["kafka"]["volumes"]
    assert volume.split(":")[1] == services["kafka"]["environment"]["KAFKA_LOG_DIRS"]
    assert services["worker"]["command"] == ["worker"]
    assert services["sink"]["command"] == ["sink"]
    assert services["alerts"]["command"][:2] == ["alerts", "run"]
    for name in ("worker", "sink", "alerts", "ingest-otlp", "collector"):
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (ROOT / services[name]["build"]["dockerfile"]).exists()
        for dependency in services[name]["depends_on"]:
            assert dependency in services


def test_every_costflow_variable_is_a_real_setting() -> None:
    known = known_variables()
    for name, service in compose()["services"].items():
        for variable in service.get("environment", {}):
            if variable.startswith("COSTFLOW_") and name in {
                "worker",
                "sink",
                "alerts",
                "ingest-otlp",
            }:
                assert variable in known, f"{name}: {variable} is not a costflow setting"


def test_no_secret_is_written_into_the_files() -> None:
    text = (ROOT / "docker-compose.yml").read_text() + (
        ROOT / "deploy" / "clickhouse-users.xml"
    ).read_text()
    password_keys = re.findall(r"^\s*\w*PASSWORD:\s*(\S+)", text, flags=re.MULTILINE)
    assert password_keys, "expected the ClickHouse password to be wired from the environment"
    assert all(value.startswith("${") for value in password_keys), password_keys
    assert "<password>" not in text


def test_dockerfile_copies_what_the_package_needs_at_run_time(tmp_path: Path) -> None:
    """The image's build context, as the Dockerfile's COPY lines make it, builds the
    wheel (a package directory the Dockerfile does not copy fails `pip install .`)."""
    import shutil
    import subprocess
    import sys
    import tomllib
    import zipfile

    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    copies = re.findall(r"^COPY (.+) (\S+)$", dockerfile, flags=re.MULTILINE)
    context = tmp_path / "app"
    for sources, target in copies:
        for source in sources.split():
            destination = context / (target if target not in ("./", ".") else source)
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, destination, ignore=shutil.ignore_patterns(
                    "__pycache__"))  # fmt: skip
            else:
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, context / Path(source).name)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for package, folder in project["tool"]["setuptools"]["package-dir"].items():
        assert (context / folder).is_dir(), f"the Dockerfile does not copy {folder} ({package})"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path / "dist"), str(context)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("costflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "pipeline/_alert_rules/rules.yaml" in names
    assert any(n.startswith("pipeline/_sql/") and n.endswith(".sql") for n in names)


def test_the_alert_services_read_the_shipped_rules_with_their_own_role() -> None:
    from pipeline.alerts.rules import load_rules
    from pipeline.clickhouse.access import ALERTS_INSERTS

    services = compose()["services"]
    mounted = {v.split(":")[1]: ROOT / v.split(":")[0] for v in services["alerts"]["volumes"]}
    rules = services["alerts"]["command"][2]
    host = mounted["/etc/costflow/alerts"] / Path(rules).name
    urls = {r.url for r in load_rules(host).receivers if r.type == "alertmanager"}
    assert urls == {"http://alertmanager:9093"}  # the compose service's name and port
    assert services["worker"]["environment"]["COSTFLOW_WORKER_ALERT_RULES"] == rules
    assert services["alerts"]["environment"]["COSTFLOW_CLICKHOUSE_USERNAME"] == "costflow_alerts"
    users = (ROOT / "deploy" / "clickhouse-users.xml").read_text()
    granted = set(re.findall(r"GRANT INSERT ON costflow\.(\w+)", users))
    assert granted == set(ALERTS_INSERTS) == {"alert_events", "alert_deliveries",
                                              "alert_judgements"}  # fmt: skip


def test_the_collector_writes_what_ingest_otlp_reads_and_no_content() -> None:
    collector = yaml.safe_load((ROOT / "deploy" / "otel-collector" / "config.yaml").read_text())
    traces = collector["exporters"]["kafka"]["traces"]
    ingest = config.IngestSettings()
    assert (traces["topic"], traces["encoding"]) == (ingest.otlp_topic, ingest.otlp_encoding)
    pipeline = collector["service"]["pipelines"]["traces"]
    assert "attributes/drop_genai_content" in pipeline["processors"]
    deleted = {
        a.get("key") for a in collector["processors"]["attributes/drop_genai_content"]["actions"]
    }
    assert {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
    } <= deleted
    for processor in pipeline["processors"]:
        assert processor in collector["processors"]


def test_prometheus_scrapes_each_stage_on_its_metrics_port() -> None:
    services = compose()["services"]
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = set()
    for job in scrape["scrape_configs"]:
        targets |= {t for c in job.get("static_configs", []) for t in c["targets"]}
        targets |= {f"{n}:{c['port']}" for c in job.get("dns_sd_configs", []) for n in c["names"]}
    ports = {
        "worker": "COSTFLOW_WORKER_METRICS_PORT", "sink": "COSTFLOW_SINK_METRICS_PORT",
        "ingest-otlp": "COSTFLOW_INGEST_METRICS_PORT", "collector": "COSTFLOW_INGEST_HTTP_PORT",
        "alerts": "COSTFLOW_ALERTS_METRICS_PORT",
    }  # fmt: skip
    for name, variable in ports.items():
        assert f"{name}:{services[name]['environment'][variable]}" in targets
    mounted = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    assert mounted["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"


def test_grafana_gets_its_provisioning_plugin_and_every_data_source_password() -> None:
    grafana = compose()["services"]["grafana"]
    assert grafana["environment"]["GF_PLUGINS_PREINSTALL"] == "grafana-clickhouse-datasource"
    mounted = {v.split(":")[1]: ROOT / v.split(":")[0] for v in grafana["volumes"] if "/" in v}
    provisioning = mounted["/etc/grafana/provisioning"]
    sources = (provisioning / "datasources" / "costflow.yaml").read_text()
    needed = set(re.findall(r"\$__env\{(\w+)\}", sources))
    assert needed and needed <= set(grafana["environment"])
    provider = yaml.safe_load((provisioning / "dashboards" / "costflow.yaml").read_text())
    assert mounted[provider["providers"][0]["options"]["path"]].glob("*.json")
    # The all-teams user the compose data source logs in as: SELECT on what access-sql
    # grants costflow_bi_all_teams, nothing else.
    from pipeline.clickhouse.access import ALL_TEAMS_ONLY, OWNED_TABLES, TEAM_VIEWS

    users = (ROOT / "deploy" / "clickhouse-users.xml").read_text()
    block = users.split("<costflow_grafana_bi_all_teams>")[1].split("</costflow_grafana")[0]
    granted = re.findall(r"<query>GRANT SELECT ON costflow\.(\w+)</query>", block)
    assert sorted(granted) == sorted({*OWNED_TABLES, *TEAM_VIEWS, *ALL_TEAMS_ONLY})
    assert 'from_env="COSTFLOW_GRAFANA_BI_ALL_TEAMS_PASSWORD"' in block


def test_the_sink_user_may_run_every_kind_of_statement_the_migrations_hold() -> None:
    """The sink applies migrations at start as costflow_sink (compose): each kind of DDL
    in sql/ needs its privilege granted, or the sink restarts in a loop on a server."""
    needs = {
        "CREATE TABLE": "CREATE TABLE", "CREATE VIEW": "CREATE VIEW",
        "CREATE MATERIALIZED VIEW": "CREATE VIEW", "CREATE OR REPLACE VIEW": "DROP VIEW",
        "DROP VIEW": "DROP VIEW", "ALTER TABLE": "ALTER", "INSERT INTO": "INSERT",
        "CREATE FUNCTION": "CREATE FUNCTION",
    }  # fmt: skip
    statements = set()
    for path in sorted((ROOT / "sql").glob("*.sql")):
        for match in re.finditer(
            r"^\s*(CREATE OR REPLACE VIEW|CREATE MATERIALIZED VIEW|CREATE \w+|DROP \w+|"
            r"ALTER \w+|INSERT INTO|RENAME \w+|TRUNCATE)\b",
            path.read_text(),
            flags=re.MULTILINE,
        ):
            statements.add(match.group(1))
    assert statements - set(needs) == set(), "a new kind of statement: grant its privilege"
    users = (ROOT / "deploy" / "clickhouse-users.xml").read_text()
    block = users.split("<costflow_sink>", 1)[1].split("</costflow_sink>", 1)[0]
    granted = {
        privilege.strip()
        for grant in re.findall(r"<query>GRANT (.+?) ON ", block)
        for privilege in grant.split(",")
    }
    assert {needs[s] for s in statements} <= granted
