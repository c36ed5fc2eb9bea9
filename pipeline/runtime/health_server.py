"""``/metrics``, ``/healthz`` and ``/readyz`` for a stage, on a port of its own.

A small threaded WSGI server (the standard library's) around prometheus_client's
WSGI app, so the stage's own loop is never involved in a scrape: metrics are read
from the stage's counters at scrape time (see :mod:`pipeline.runtime.stage_metrics`).

- ``/healthz``: 200 while the process serves (liveness);
- ``/readyz``: 200 when the stage says it is ready, else 503 with its reason (the
  worker: not restoring state nor rebalancing; the sink: its last write succeeded).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import prometheus_client as prom

from pipeline.errors import ConfigError

log = logging.getLogger("costflow.metrics")

# () -> (ready, why not)
Readiness = Callable[[], tuple[bool, str]]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is not news


class HealthServer:
    """Serves until :meth:`close` (or the process ends: its thread is a daemon).

    Raises :class:`~pipeline.errors.ConfigError` when the port cannot be bound."""

    def __init__(
        self, host: str, port: int, registry: prom.CollectorRegistry, ready: Readiness
    ) -> None:
        metrics = prom.make_wsgi_app(registry)

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/metrics":
                return metrics(environ, start_response)  # type: ignore[no-any-return]
            if path == "/healthz":
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"ok\n"]
            if path == "/readyz":
                ok, why = ready()
                status = "200 OK" if ok else "503 Service Unavailable"
                start_response(status, [("Content-Type", "text/plain")])
                return [(why or "ready").encode() + b"\n"]
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"/metrics, /healthz or /readyz\n"]

        try:
            self.server = make_server(
                host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot serve /metrics on {host}:{port} ({exc.strerror or exc}): another "
                "process holds the port; set this stage's COSTFLOW_*_METRICS_PORT to a free "
                "one, or leave it unset to serve none"
            ) from exc
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="costflow-metrics", daemon=True
        )
        self._thread.start()
        log.warning("metrics on http://%s:%d/metrics", host, self.port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
