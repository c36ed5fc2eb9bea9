"""`costflow alerts run` as its own process serves /metrics, /healthz and /readyz:
scraped while it runs, its figures worked out from the one call stored."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.embedded.broker import free_port
from tests.integration.conftest import await_condition
from tests.integration.test_metrics import _get, _samples

pytestmark = pytest.mark.integration

# chDB admits one engine path per process, so the database is built in a child.
BUILD = """
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from pipeline.clickhouse.client import connect
from pipeline.clickhouse.migrate import migrate
from pipeline.config import ClickHouseSettings, StackSettings
from tests.integration.test_alerts import store
from tests.unit.alert_reference import Call

directory = Path({directory!r})
client = connect(ClickHouseSettings(dsn={dsn!r}, database="metrics"),
                 StackSettings(data_dir=directory))
migrate(client)
labels = {{"provider": "p", "model": "m", "scenario_id": "search"}}
store(client, [Call(datetime(2026, 11, 30, 11, 30, tzinfo=UTC), Decimal(60), labels)])
client.close()
"""


def test_alerts_run_serves_its_metrics(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'ch'}"
    build = BUILD.format(directory=str(tmp_path), dsn=dsn)
    subprocess.run([sys.executable, "-c", textwrap.dedent(build)], check=True, cwd=Path.cwd())
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "groups:\n  - name: g\n    interval: 5m\n    rules:\n"
        "      - {alert: Budget, kind: budget, amount: '100', thresholds: ['0.5'],"
        " burn_windows: [], severity: warning}\n"
    )
    port = free_port()
    env = {**os.environ, "COSTFLOW_CLICKHOUSE_DSN": dsn,
           "COSTFLOW_CLICKHOUSE_DATABASE": "metrics", "COSTFLOW_DATA_DIR": str(tmp_path),
           "COSTFLOW_ALERTS_METRICS_PORT": str(port)}  # fmt: skip
    command = ["alerts", "run", str(rules), "--data-time", "stored"]
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", *command],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await_condition(lambda: _get(f"{url}/readyz")[0] == 200, 60, "alerts run /readyz")
        samples = _samples(_get(f"{url}/metrics")[1])
        assert samples["costflow_alerts_cycles_total"] >= 1
        assert samples["costflow_alerts_failed_cycles_total"] == 0
        # $60 of a $100 budget is over its 50% threshold: one instance firing.
        assert samples['costflow_alerts_firing{alert="Budget",severity="warning"}'] == 1
        # --data-time stored: windows end 1 ms after the one call, 2026-11-30T11:30Z
        # (56 years from 1970 with 14 leap days, 333 days of 2026, 11.5 h).
        expected_s = ((56 * 365 + 14 + 333) * 24 + 11) * 3600 + 30 * 60 + 0.001
        assert samples["costflow_alerts_data_time_timestamp_seconds"] == expected_s
        assert _get(f"{url}/healthz")[0] == 200
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert "1 rules" in output, output
