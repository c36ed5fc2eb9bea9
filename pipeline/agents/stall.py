"""Noticing that stage 1 has stopped making progress while input waits.

Seen on the embedded broker under load after restarts (a SIGKILLed worker's member
lingers until its session times out, so the new worker goes through two
rebalances): one input partition stayed behind (calls[2] at 114 of 255) while the
worker sat idle, processed nothing more and committed nothing for it, for minutes.
The cause inside Faust's fetcher is not pinned down. A worker that stops
advancing is not allowed to look healthy: when an assigned partition has input
waiting and neither its committed offset nor the worker's event counters have
moved for ``COSTFLOW_WORKER_STALL_TIMEOUT_S``, the worker exits with
:data:`STALL_EXIT`; ``costflow up``/``replay`` start it again (nothing is lost:
inputs are committed only after their outputs), and so does any orchestrator.
A table recovery whose changes left stop falling, or a rebalance that does not end,
counts the same (a CI run once hung in one for good while the watchdog skipped it),
and the exit's log line carries the consumer's state (``runtime.worker``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# EX_TEMPFAIL: "try again later" -- the supervisor restarts the worker.
STALL_EXIT = 75


@dataclass
class StallWatch:
    """Pure bookkeeping: is the worker stuck? Time in seconds, from any monotonic clock."""

    timeout_s: float
    _since: float | None = None
    _last: tuple[object, ...] | None = field(default=None)

    def observe(self, now: float, lagging: Mapping[str, tuple[int, int]], progress: int) -> bool:
        """``lagging``: partition -> (committed, end) for partitions with input waiting;
        ``progress``: events handled so far. True once nothing moved for the timeout."""
        if not lagging:
            self._since, self._last = None, None
            return False
        signature = (tuple(sorted((name, c) for name, (c, _end) in lagging.items())), progress)
        if signature != self._last:
            self._last, self._since = signature, now
            return False
        assert self._since is not None
        return now - self._since >= self.timeout_s
