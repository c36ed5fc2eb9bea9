"""Reads of the embedded ClickHouse while the stack runs, over ClickHouse's HTTP interface.

chDB lets one process open a data directory, and the sink is that process while
``costflow up`` runs; ``report``, ``sql``, ``compare`` and dashboards would have to
stop the pipeline to read. So the sink serves reads: a small HTTP server on
loopback, speaking the subset of ClickHouse's HTTP interface that
clickhouse-connect uses (``POST /`` with the query in the body or ``query``
parameter, ``database``, ``default_format``, ``param_*``; ``GET /ping``), answered
by chDB in the format the query asks for. Every reading command then works
unchanged against a running embedded stack and against a server: ``connect()``
finds the endpoint in ``<chDB directory>.http.json`` and uses it.

Read-only: only SELECT, WITH, SHOW, DESCRIBE, EXISTS and EXPLAIN statements are
run; anything else answers ``READONLY`` (the sink is the only writer). Loopback
only, no authentication, like the embedded broker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

import clickhouse_connect
from aiohttp import web

log = logging.getLogger("costflow.clickhouse")

_READ = re.compile(
    r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(select|with|show|describe|desc|exists|explain)\b",
    re.I | re.S,
)
_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.I)
_READONLY = 164  # ClickHouse's error code READONLY


def endpoint_file(chdb_path: Path) -> Path:
    """Where the serving process says where it listens: beside the chDB directory."""
    return chdb_path.parent / f"{chdb_path.name}.http.json"


class ReadServer:
    """Serve read queries against the chDB directory this process has open."""

    def __init__(self, chdb_path: Path) -> None:
        self.chdb_path = chdb_path
        self.port = 0
        self._clients: dict[str, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def _client(self, database: str) -> Any:
        # Clients on one chDB path share its engine; each keeps its own database.
        if database not in self._clients:
            self._clients[database] = clickhouse_connect.get_client(
                dsn=f"chdb://{self.chdb_path}", database=database
            )
        return self._clients[database]

    async def _handle(self, request: web.Request) -> web.Response:
        if request.path == "/ping":
            return web.Response(text="Ok.\n")
        body = (await request.read()).decode("utf-8", "replace")
        query = "\n".join(part for part in (request.query.get("query", ""), body) if part)
        database = request.query.get("database", "default")
        if not _READ.match(query):
            return _error(
                _READONLY,
                "costflow's embedded read endpoint is read-only: stop `costflow up` to write "
                "to the embedded ClickHouse, or use a ClickHouse server; to run alert rules "
                "under `costflow up`, give them to the sink (COSTFLOW_SINK_ALERT_RULES=FILES) "
                "(READONLY)",
            )
        found = _FORMAT.search(query)
        fmt = found.group(1) if found else request.query.get("default_format", "TabSeparated")
        if found:  # the format goes to the engine as an argument, not twice in the text
            query = query[: found.start()]
        params = {k[6:]: v for k, v in request.query.items() if k.startswith("param_")}
        loop = asyncio.get_running_loop()
        try:
            data = await loop.run_in_executor(
                None, lambda: self._client(database).raw_query(query, parameters=params, fmt=fmt)
            )
        except Exception as exc:  # the engine's own error text, as a server sends it
            return _error(0, str(exc), raw=True)
        return web.Response(
            body=data,
            headers={
                "X-ClickHouse-Format": fmt,
                "X-ClickHouse-Timezone": "UTC",
                "X-ClickHouse-Server-Display-Name": "costflow-embedded",
                "X-ClickHouse-Query-Id": request.query.get("query_id", ""),
                "Content-Type": "application/octet-stream",
            },
        )

    def start(self) -> ReadServer:
        """Listen on a free loopback port in a thread; write the endpoint file."""
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application(client_max_size=64 << 20)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self._runner = runner
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=serve, name="costflow-read-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        path = endpoint_file(self.chdb_path)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": f"http://127.0.0.1:{self.port}", "pid": os.getpid()}))
        os.replace(tmp, path)
        log.warning("serving reads of %s on http://127.0.0.1:%d", self.chdb_path, self.port)
        return self

    def stop(self) -> None:
        endpoint_file(self.chdb_path).unlink(missing_ok=True)
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


def _error(code: int, message: str, raw: bool = False) -> web.Response:
    text = message if raw else f"Code: {code}. DB::Exception: {message}"
    return web.Response(status=500, text=text, headers={"X-ClickHouse-Exception-Code": str(code)})


def running_endpoint(chdb_path: Path) -> str | None:
    """The URL of a live read endpoint for ``chdb_path``; None when nobody serves it."""
    path = endpoint_file(chdb_path)
    try:
        url = str(json.loads(path.read_text(encoding="utf-8"))["url"])
    except (OSError, ValueError, KeyError):
        return None
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:
            return url if answer.status == 200 else None
    except OSError:
        return None  # a stale file: its process is gone
