"""The thin CLI over real chDB: migrate, sql, report, schemas, and clear errors."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from pipeline.cli import main


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COSTFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COSTFLOW_CLICKHOUSE_DATABASE", f"cli_{uuid.uuid4().hex[:8]}")
    return tmp_path


def test_migrate_then_sql_then_report(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    assert "0001_core_tables" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["sql", "SELECT 6 * 7 AS answer", "--format", "JSONEachRow"]) == 0
    assert json.loads(capsys.readouterr().out) == {"answer": 42}
    # A query that names its own format keeps it (and a trailing ; is fine)
    assert main(["sql", "SELECT 6 * 7 AS answer FORMAT JSONEachRow;"]) == 0
    assert json.loads(capsys.readouterr().out) == {"answer": 42}
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert "Cost per accepted outcome" in out and "dead-lettered: 0" in out


def test_dead_letter_stats_says_when_there_are_none(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    capsys.readouterr()
    assert main(["dead-letter", "stats"]) == 0
    assert "no dead letters" in capsys.readouterr().out


def test_errors_are_one_line_with_advice(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSTFLOW_CLICKHOUSE_DSN", "postgres://nope")
    assert main(["report"]) == 2
    err = capsys.readouterr().err
    assert "costflow report:" in err and "chdb:///path" in err


def test_schemas_check_passes_on_a_clean_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_reprice_dry_run_and_bad_windows(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    capsys.readouterr()
    assert main(["reprice", "--from", "2026-11-02", "--to", "2026-11-01"]) == 2
    err = capsys.readouterr().err
    assert "--to 2026-11-01T00:00:00+00:00 must be after --from 2026-11-02T00:00:00+00:00" in err
    assert main(["reprice", "--from", "yesterday", "--to", "2026-11-01"]) == 2
    assert "--from 'yesterday' is not a date or RFC 3339 time" in capsys.readouterr().err
    # Nothing stored: a dry run scans nothing and sends nothing.
    assert main(["reprice", "--from", "2026-11-01", "--to", "2026-11-02", "--dry-run"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["dry_run"], result["calls_scanned"], result["records_sent"]) == (True, 0, 0)


def test_a_database_without_tables_gets_advice_not_a_traceback(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report"]) == 2
    err = capsys.readouterr().err
    assert "run `costflow migrate`" in err and "Traceback" not in err


def test_decision_commands_end_to_end_and_their_errors(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(__file__).resolve().parents[2]
    assert main(["migrate"]) == 0
    capsys.readouterr()
    assert main(["fixed-costs", "load", str(root / "pricing/fixed-costs/2026-11.yaml")]) == 0
    out = capsys.readouterr().out
    assert "loaded 3 fixed cost items from 2026-11.yaml sha256:" in out
    # No usage yet: the weighted item accrues, the usage-share ones wait for usage.
    assert "staging-capacity (staging, usage_share)" in out and "$0.00 allocated" in out
    # Fixed costs belong to scenarios: a slice by owner says so instead of guessing.
    assert main(["report", "--owner", "devtools"]) == 0
    assert "fixed costs are allocated per scenario; drop --owner" in capsys.readouterr().out
    assert main(["fixed-costs", "load"]) == 2
    assert "needs a FILE" in capsys.readouterr().err
    assert main(["compare", "--scenario", "s", "--a", "x"]) == 2
    assert "give both --a and --b" in capsys.readouterr().err
    assert main(["compare", "--scenario", "s", "--experiment"]) == 0
    assert "No two arms to compare." in capsys.readouterr().out
    whatif = ["whatif", "--scenario", "s", "--model", "openai/gpt-4o-mini", "--growth"]
    assert main([*whatif, "ten"]) == 2
    assert "expected a factor such as 10x" in capsys.readouterr().err
    assert main([*whatif, "1e400x"]) == 2  # no traceback from Decimal's context
    assert "at most 1000000x" in capsys.readouterr().err
    assert main([*whatif, "10x"]) == 0
    assert "ESTIMATE: s, no tasks" in capsys.readouterr().out


def test_global_flags_override_the_environment_without_writing_to_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pipeline.cli import build_parser
    from pipeline.cli_support import settings_from

    monkeypatch.setenv("COSTFLOW_CLICKHOUSE_DATABASE", "from_env")
    monkeypatch.setenv("COSTFLOW_KAFKA_BOOTSTRAP", "env-host:9092")
    args = build_parser().parse_args(
        ["--data-dir", str(tmp_path), "--database", "from_flag", "report"]
    )
    settings = settings_from(args)
    assert settings.clickhouse.database == "from_flag"
    assert settings.kafka.bootstrap == "env-host:9092"  # no flag: the environment's
    assert settings.stack.data_dir == tmp_path
    assert os.environ["COSTFLOW_CLICKHOUSE_DATABASE"] == "from_env"  # untouched


def test_pricing_import_goes_through_the_importer_registry(tmp_path: Path) -> None:
    """`pricing import litellm` and the older `pricing import-litellm` write the same book."""
    listing = {
        "gpt-x": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 2e-06,
                  "output_cost_per_token": 8e-06},
    }  # fmt: skip
    source = tmp_path / "prices.json"
    source.write_text(json.dumps(listing))
    for command, out in ((["import", "litellm"], "a"), (["import-litellm"], "b")):
        args = ["pricing", *command, str(source), "--out", str(tmp_path / out),
                "--effective-from", "2026-01-01", "--version", "v1"]  # fmt: skip
        assert main(args) == 0
    books = [(tmp_path / d / "book.yaml").read_text() for d in ("a", "b")]
    assert books[0] == books[1] and "gpt-x" in "".join(
        p.read_text() for p in (tmp_path / "a").glob("*.yaml")
    )
    report = json.loads((tmp_path / "a" / "import-report.json").read_text())
    assert report == {"skipped": {}, "ignored_prices": {}, "rounded": {}, "aliased": {}}


def test_pricing_import_of_a_missing_file_says_what_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.json"
    assert main(["pricing", "import", "litellm", str(missing), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "cannot read the litellm price list" in err and "Traceback" not in err


def test_up_serves_metrics_on_free_default_ports_and_says_when_taken() -> None:
    import socket

    from pipeline.cli import UP_METRICS_PORTS, with_local_metrics
    from pipeline.config import Settings, SinkSettings

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        free = UP_METRICS_PORTS["worker"]
        # The sink's own port is kept; the worker's default is used when it is free.
        settings = Settings(sink=SinkSettings(metrics_port=taken))
        chosen, where = with_local_metrics(settings)
        assert chosen.sink.metrics_port == taken
        assert f"sink http://127.0.0.1:{taken}/metrics" in where
        if chosen.worker.metrics_port is not None:
            assert chosen.worker.metrics_port == free
        # A default port another process holds: not served, and the line says how.
        original = dict(UP_METRICS_PORTS)
        UP_METRICS_PORTS["worker"] = taken
        try:
            chosen, where = with_local_metrics(Settings())
        finally:
            UP_METRICS_PORTS.update(original)
        assert chosen.worker.metrics_port is None
        assert f"worker: not served (127.0.0.1:{taken} is taken" in where
        assert "COSTFLOW_WORKER_METRICS_PORT" in where


def test_output_cut_short_by_a_closed_pipe_is_not_an_error() -> None:
    """`costflow focus export … | head -c 300`: the reader leaves early; the command
    ends quietly with 0 (a BrokenPipeError traceback was printed before)."""
    import subprocess
    import sys

    script = (
        "import sys\nfrom pipeline import cli\n"
        "def lots(args):\n    for _ in range(200_000):\n        print('x' * 100)\n    return 0\n"
        "cli.COMMANDS['schemas'] = lots\nsys.exit(cli.main(['schemas']))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(300) == b"x" * 100 + b"\n" + b"x" * 100 + b"\n" + b"x" * 98
    process.stdout.close()  # what head(1) does once it has its bytes
    err = process.stderr.read().decode()
    assert process.wait(60) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_a_second_process_on_the_embedded_clickhouse_is_told_who_holds_it(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    from pipeline.clickhouse.client import connect
    from pipeline.config import ClickHouseSettings, StackSettings
    from pipeline.errors import ClickHouseError

    path = tmp_path / "ch"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import clickhouse_connect, sys\n"
         f"held = clickhouse_connect.get_client(dsn='chdb://{path}')\nheld.command('SELECT 1')\n"
         "print('open', flush=True)\nsys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        settings = ClickHouseSettings(dsn=f"chdb://{path}", database="d")
        with pytest.raises(ClickHouseError, match=f"open in process {holder.pid} "):
            connect(settings, StackSettings(data_dir=tmp_path))
    finally:
        holder.communicate("", timeout=60)


def test_a_port_left_in_time_wait_by_a_stopped_server_is_free_again() -> None:
    """A scraped /metrics server closes its connections first, leaving them in
    TIME_WAIT for a minute after it stops: `up` restarted then must still serve there."""
    import socket

    from pipeline.embedded.broker import port_is_free

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    assert not port_is_free(port)  # listening: taken
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: its end waits in TIME_WAIT
    client.recv(1)
    client.close()
    server.close()
    assert port_is_free(port)
