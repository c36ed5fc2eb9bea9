"""Runs broker (when embedded), worker and sink as child processes.

Stop order matters: the HTTP collector first (it stops taking requests and
delivers what it accepted), the worker (its last outputs get flushed and its
offsets committed), then the sink (it writes what it holds), then the broker.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from pipeline.agents.stall import STALL_EXIT
from pipeline.config import Settings
from pipeline.embedded.broker import port_is_free, signal_on_parent_death, wait_until_ready
from pipeline.errors import EmbeddedStackError
from pipeline.runtime import run_state
from pipeline.runtime.run_state import DataDirLock

log = logging.getLogger("costflow.up")


# No stage outlives `costflow up`; SIGTERM lets it commit what it finished.
_stop_with_parent = signal_on_parent_death(signal.SIGTERM)


# role -> its costflow command line (a role is its own command unless named here)
ROLE_COMMANDS = {"collector": ["ingest", "http"]}

# Automatic restarts allowed per role within the window, before `up` gives up.
RESTARTS_PER_WINDOW = 5
RESTART_WINDOW_S = 600.0


class Stack:
    def __init__(
        self,
        settings: Settings,
        log_dir: Path | None = None,
        roles: tuple[str, ...] = ("sink", "worker"),
    ) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.roles = roles
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.lock: DataDirLock | None = None
        # role -> monotonic times of its recent automatic restarts
        self._restarts: dict[str, list[float]] = {}

    def _spawn(self, role: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env.update(self.settings.env())
        out: int | object = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{role}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", *ROLE_COMMANDS.get(role, [role])],
            env=env,
            stdout=out,  # type: ignore[arg-type]
            stderr=subprocess.STDOUT if out is not None else None,
            # A session of its own: Ctrl-C reaches only the supervisor, which drains
            # and then stops the children in order (see drain()).
            start_new_session=True,
            preexec_fn=_stop_with_parent,
        )
        self.children[role] = process
        return process

    def log_hint(self, role: str) -> str:
        return f"; see {self.log_dir / (role + '.log')}" if self.log_dir else ""

    def start(self) -> Stack:
        kafka = self.settings.kafka
        if kafka.embedded:
            # One stack per data directory; "running" until a drain completes.
            self.lock = DataDirLock(self.settings.stack.data_dir).acquire()
        # Before the run is recorded: a start refused here is no run stopped undrained.
        self._check_ports()
        if kafka.embedded:
            run_state.mark_running(self.settings.stack.data_dir)
            broker = self._spawn("broker")
            wait_until_ready(kafka.resolved_bootstrap(), 30, broker)
        from pipeline.kafka.topics import ensure_topics

        ensure_topics(kafka, self.settings.topics)
        for role in self.roles:
            self._spawn(role)
        return self

    def _check_ports(self) -> None:
        """Raises EmbeddedStackError for a port this stack must listen on that another
        socket listens on (a lingering TIME_WAIT is no obstacle: see port_is_free)."""
        kafka = self.settings.kafka
        if kafka.embedded and not port_is_free(kafka.embedded_port):
            raise EmbeddedStackError(
                f"port {kafka.embedded_port} is taken (another costflow up?); set "
                "COSTFLOW_KAFKA_EMBEDDED_PORT or COSTFLOW_KAFKA_BOOTSTRAP"
            )
        if "collector" in self.roles:
            from pipeline.config import IngestSettings

            port = IngestSettings().http_port
            if not port_is_free(port):
                raise EmbeddedStackError(
                    f"port {port} is taken (an OpenTelemetry Collector? another costflow up?); "
                    "set COSTFLOW_INGEST_HTTP_PORT for costflow's HTTP collector"
                )

    def respawn(self, role: str) -> None:
        """Start ``role`` again after it exited (a supervisor's restart, or a crash test's)."""
        process = self.children.get(role)
        if process is not None and process.poll() is None:
            raise EmbeddedStackError(f"{role} is still running; stop it before respawning")
        self._spawn(role)

    def _restart_stalled(self, role: str, code: int | None) -> bool:
        """Start a stage again when a restart is the fix: the worker asked for one (75:
        it stalled, agents.stall, or the broker would not take its outputs), or the
        worker or sink was SIGKILLed (the OOM killer, an operator): both resume from
        their committed offsets, nothing is lost. Not a bug's exit (70, 1, ...): that
        would fail the same way again. At most RESTARTS_PER_WINDOW in RESTART_WINDOW_S."""
        retry = role == "worker" and code == STALL_EXIT
        killed = role in ("worker", "sink") and code == -signal.SIGKILL
        if not (retry or killed):
            return False
        now = time.monotonic()
        recent = [t for t in self._restarts.get(role, []) if now - t < RESTART_WINDOW_S]
        if len(recent) >= RESTARTS_PER_WINDOW:
            raise EmbeddedStackError(
                f"{role} exited with code {code} and was restarted {len(recent)} times in "
                f"{RESTART_WINDOW_S // 60:.0f} min; not again{self.log_hint(role)}"
            )
        self._restarts[role] = [*recent, now]
        why = "was killed (SIGKILL)" if killed else "exited to be restarted (stall or broker)"
        log.warning("the %s %s; starting it again%s", role, why, self.log_hint(role))
        sys.stderr.write(f"costflow: the {role} {why}; restarting it (nothing is lost)\n")
        self._spawn(role)
        return True

    def check_alive(self) -> None:
        for role, process in list(self.children.items()):
            code = process.poll()
            if code is not None and not self._restart_stalled(role, code):
                raise EmbeddedStackError(f"{role} exited with code {code}{self.log_hint(role)}")

    def wait(self) -> int:
        """Foreground: return when any child exits (its exit code) or on Ctrl-C."""
        try:
            while True:
                for role, process in list(self.children.items()):
                    code = process.poll()
                    if code is not None and not self._restart_stalled(role, code):
                        log.error("%s exited with code %s; stopping the rest", role, code)
                        return code or 1
                time.sleep(0.5)
        except KeyboardInterrupt:
            return 0

    def drain(self, timeout_s: float = 3600) -> bool:
        """Wait until the running stages have processed what the broker holds now.

        Progress lines go to stderr. Returns False if interrupted (a second Ctrl-C):
        then the caller stops at once, which loses nothing (inputs stay in Kafka,
        offsets are committed only after outputs).
        """
        from pipeline.runtime.progress import PipelineProgress

        sys.stderr.write(
            "costflow: draining: finishing what the broker holds "
            "(Ctrl-C again stops at once; nothing is lost either way)\n"
        )
        try:
            with PipelineProgress(self.settings) as progress:
                progress.wait_flushed(timeout_s, self.check_alive)
        except KeyboardInterrupt:
            sys.stderr.write("\ncostflow: stopping at once; the rest is processed next time\n")
            return False
        self.drained()
        return True

    def drained(self) -> None:
        """Both stages have committed everything the broker held: the run is complete."""
        if self.lock is not None:
            run_state.mark_drained(self.settings.stack.data_dir)

    def stop(self) -> None:
        # The collector first: it stops taking requests, then delivers what it holds.
        for role in ("collector", "worker", "sink", "broker"):
            self.stop_role(role)
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def stop_role(self, role: str) -> None:
        """SIGTERM one child and wait for it (SIGKILL after 60 s); it is no longer
        watched (a role stopped on purpose is not a crash)."""
        process = self.children.pop(role, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            log.error("%s did not stop within 60 s; killing it", role)
            process.kill()
            process.wait()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
