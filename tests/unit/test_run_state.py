"""One stack per data directory, and whether its last run finished."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import EmbeddedStackError
from pipeline.runtime.run_state import DataDirLock, mark_drained, mark_running, unfinished


def test_a_second_stack_on_a_data_directory_is_refused(tmp_path: Path) -> None:
    with DataDirLock(tmp_path):
        # Another process, as a second `costflow up` would be.
        other = subprocess.run(
            [sys.executable, "-c",
             "import sys; from pathlib import Path; from pipeline.runtime.run_state import "
             "DataDirLock; DataDirLock(Path(sys.argv[1])).acquire()", str(tmp_path)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert other.returncode != 0 and "one costflow up or replay per data directory" in (
            other.stderr
        )
        with pytest.raises(EmbeddedStackError, match="in use by costflow pid"):
            DataDirLock(tmp_path).acquire()
    DataDirLock(tmp_path).acquire().release()  # free again once released


def test_a_run_that_did_not_drain_says_so(tmp_path: Path) -> None:
    assert unfinished(tmp_path) is None  # never run
    mark_running(tmp_path)
    why = unfinished(tmp_path)
    assert why is not None and "costflow up" in why
    mark_drained(tmp_path)
    assert unfinished(tmp_path) is None
