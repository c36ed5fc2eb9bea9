"""Who runs the embedded stack on a data directory, and whether its last run finished.

Two things a user of the embedded stack cannot see otherwise:

- **One stack per data directory.** A second ``costflow up`` (or ``replay``) on the
  same directory would start a second broker on the same log and a second worker
  with no state. :class:`DataDirLock` (an ``flock`` on ``<data dir>/stack.lock``,
  released by the kernel when the process dies, SIGKILL included) refuses it and
  names the process that holds it.
- **Whether everything acknowledged was processed.** A run marks the directory
  ``running`` when it starts and ``drained`` only after both stages committed the
  end of every topic. A run stopped any other way (a second Ctrl-C, a SIGKILL, a
  crash) leaves ``running`` behind, and ``costflow report`` says the figures miss
  acknowledged events until the next ``up`` or ``replay`` finishes them.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from pipeline.errors import EmbeddedStackError

_LOCK = "stack.lock"
_STATE = "run-state.json"


class DataDirLock:
    """Exclusive use of a data directory by one stack; a context manager."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / _LOCK
        self._handle: IO[str] | None = None

    def acquire(self) -> DataDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held for the stack's lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise EmbeddedStackError(
                f"{self.path.parent} is in use by {holder}: one costflow up or replay per "
                "data directory. Stop it first (Ctrl-C drains it), or give this one its own "
                "--data-dir."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"costflow pid {os.getpid()}")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing releases the flock
            self._handle = None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def mark_running(data_dir: Path) -> None:
    _write(data_dir, {"state": "running", "since": time.time()})


def mark_drained(data_dir: Path) -> None:
    _write(data_dir, {"state": "drained", "at": time.time()})


def running_holder(data_dir: Path) -> str | None:
    """Who holds the data directory's lock now (``costflow pid N``); None when no
    stack runs on it."""
    path = data_dir / _LOCK
    if not path.exists():
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


def unfinished(data_dir: Path) -> str | None:
    """Why the figures may miss acknowledged events: a stack still running (what it
    received in the last moments may not be written yet), or the last run stopped
    without draining. None when the last run finished."""
    holder = running_holder(data_dir)
    if holder is not None:
        return (
            f"LIVE: a stack runs on this data directory ({holder}); events it received in "
            "the last seconds may not be counted yet"
        )
    path = data_dir / _STATE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return f"{path} is unreadable"
    if state.get("state") == "drained":
        return None
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(state.get("since", 0)))
    return (
        f"INCOMPLETE: the stack started at {since} stopped without draining (a second "
        "Ctrl-C, a kill or a crash), so the figures may miss events the broker "
        "acknowledged; run `costflow up` (Ctrl-C drains) or another `costflow replay` to "
        "make sure"
    )


def _write(data_dir: Path, state: dict[str, object]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / (_STATE + ".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, data_dir / _STATE)
