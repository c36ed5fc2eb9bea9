"""One client API for a ClickHouse server and for embedded chDB."""

from __future__ import annotations

from typing import Any

import clickhouse_connect

from pipeline.config import ClickHouseSettings, StackSettings
from pipeline.errors import ClickHouseError


def connect(
    clickhouse: ClickHouseSettings,
    stack: StackSettings,
    *,
    create: bool = True,
    owner: bool = False,
) -> Any:
    """A client whose default database is the configured one (created if asked).

    For embedded chDB: when a running stack serves reads of the directory
    (:mod:`pipeline.clickhouse.read_server`), a reader gets an HTTP client to it
    instead of opening the directory; ``owner=True`` (the sink) always opens it.
    """
    dsn = clickhouse.resolved_dsn(stack)
    if dsn.startswith("chdb://") and not owner:
        from pathlib import Path

        from pipeline.clickhouse.read_server import running_endpoint

        url = running_endpoint(Path(dsn.removeprefix("chdb://")))
        if url is not None:
            return clickhouse_connect.get_client(dsn=url, database=clickhouse.database)
    credentials: dict[str, Any] = {}
    if clickhouse.username:
        credentials["username"] = clickhouse.username
    if clickhouse.password is not None:
        credentials["password"] = clickhouse.password.get_secret_value()
    if dsn.startswith("chdb://"):
        path = dsn.removeprefix("chdb://")
        if path:
            from pathlib import Path

            Path(path).mkdir(parents=True, exist_ok=True)
            _refuse_if_held(Path(path))
    try:
        if create:
            bootstrap = clickhouse_connect.get_client(dsn=dsn, **credentials)
            bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {clickhouse.database}")
        return clickhouse_connect.get_client(dsn=dsn, database=clickhouse.database, **credentials)
    except Exception as exc:
        text = str(exc)
        if dsn.startswith("chdb://") and ("lock" in text.lower() or "in use" in text.lower()):
            raise ClickHouseError(
                f"the embedded ClickHouse at {dsn.removeprefix('chdb://')} is open in another "
                "process (a running `costflow up` or sink): only one process may open it. Stop "
                "it first (Ctrl-C drains), or point COSTFLOW_CLICKHOUSE_DSN at a ClickHouse "
                f"server. [{text.strip().splitlines()[0][:200]}]"
            ) from None
        raise ClickHouseError(f"cannot open ClickHouse at {_redact(dsn)}: {text}") from None


def _refuse_if_held(path: Any) -> None:
    """Raises ClickHouseError naming the process that holds the embedded ClickHouse at
    ``path`` (its ``status`` file, locked while an engine runs there and naming its
    PID): chDB itself answers a second opener with a lock message and then an unrelated
    BAD_ARGUMENTS. This process's own engine on the path is no obstacle."""
    import fcntl
    import os

    status = path / "status"
    try:
        handle = status.open("rb")
    except FileNotFoundError:
        return
    with handle:
        text = handle.read(400).decode(errors="replace")
        pid = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                    if line.startswith("PID:")), "?")  # fmt: skip
        if pid == str(os.getpid()):
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
        except BlockingIOError:
            raise ClickHouseError(
                f"the embedded ClickHouse at {path} is open in process {pid} (a running "
                "`costflow up`, sink, `alerts run` or report): only one process may open it. "
                "Stop that process first, run this while `costflow up` serves reads, or "
                "point COSTFLOW_CLICKHOUSE_DSN at a ClickHouse server"
            ) from None


def _redact(dsn: str) -> str:
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return dsn
