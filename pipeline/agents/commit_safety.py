"""Two holes in faust-streaming 0.15.3's at-least-once, closed for stage 1.

1. **A commit could precede its outputs.** Before committing input offsets
   Faust awaits ``producer.flush()``, which first drains the ``send_soon``
   buffer with ``ProducerBuffer.flush_atmost(None)``. That loop returns as soon
   as one 0.1 s wait passes without a record leaving the buffer, with records
   still in it; the commit then goes ahead. A crash right after loses those
   records (task snapshots, priced calls, the table's changelog writes) while
   their inputs count as done. Seen here: a SIGKILL of the stack lost one state
   update of ten tasks in 300. :func:`drain_fully` makes the buffer's flush wait
   until it is empty (the records then sit in aiokafka's accumulator, whose
   own ``flush()`` Faust awaits next and which waits for the broker's acks).

2. **An unexpected error acked its event.** Faust's stream iterator acks the
   current message in a ``finally:``; an exception from our code other than
   the decode errors we dead-letter (a bug, a pricing error nobody foresaw)
   let Faust's supervisor restart the agent with the event acked and its
   outputs never produced. :func:`fail_stop` ends the process at once instead,
   before the ``finally`` runs: nothing is acked, nothing committed, and a
   restart re-delivers the event (fail-stop: a worker that stops is visible, a
   silently skipped event is not).

The internals touched here are pinned by ``tests/unit/test_commit_safety.py``,
which fails when a Faust upgrade changes them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from types import MethodType
from typing import Any

log = logging.getLogger("costflow.worker")

# Exit code of a fail-stop: EX_SOFTWARE, "internal software error".
FAIL_STOP_EXIT = 70
# EX_TEMPFAIL, "try again later": the broker failed (the same code as a stall; the
# supervisor restarts the worker on it).
RETRY_EXIT = 75


class _Tally:
    """Records handed to the buffer and records it has passed on to aiokafka."""

    def __init__(self) -> None:
        self.queued = 0
        self.passed_on = 0


async def _flush_until_passed_on(buffer: Any, tally: _Tally) -> None:
    """Wait until every record handed to ``send_soon`` before this call is in
    aiokafka's accumulator.

    Not ``buffer.size == 0``: the record the buffer's task is handing over has
    already left the queue, and aiokafka's ``flush()`` would not wait for it. And
    not "until nothing is queued": the records of the offsets being committed were
    all queued before the commit began, while agents keep queueing new ones; chasing
    those starved commits under steady load.
    """
    target = tally.queued
    while tally.passed_on < target:
        if buffer.state != "running":
            raise RuntimeError(
                f"cannot flush: the producer buffer is {buffer.state} with "
                f"{target - tally.passed_on} records not yet sent"
            )
        buffer.message_sent.clear()
        if tally.passed_on >= target:
            break
        try:
            await asyncio.wait_for(buffer.message_sent.wait(), timeout=1.0)
        except TimeoutError:
            continue  # still running: keep waiting, never give up with records left


def drain_fully(producer: Any) -> None:
    """Make ``producer.buffer.flush()`` return only once every buffered record is
    in aiokafka's hands. Call before the producer starts (its task reads
    ``_send_pending`` once, when it starts)."""
    buffer = producer.buffer
    tally = _Tally()
    put, send_pending = buffer.put, buffer._send_pending

    def counted_put(fut: Any) -> None:
        tally.queued += 1
        put(fut)

    async def counted_send(fut: Any) -> None:
        await send_pending(fut)
        tally.passed_on += 1

    async def flush(self: Any) -> None:
        await _flush_until_passed_on(self, tally)

    buffer.put = counted_put
    buffer._send_pending = counted_send
    buffer.flush = MethodType(flush, buffer)


def fail_stop(error: BaseException, where: str, code: int = FAIL_STOP_EXIT) -> None:
    """Log an unexpected error and end the process without acking or committing.

    ``code``: :data:`FAIL_STOP_EXIT` for a bug (a restart fails the same way: look
    first), :data:`RETRY_EXIT` for a failure of the broker (a restart is the fix, and
    ``costflow up``/``replay`` restart the worker on it, as on a stall).
    """
    log.critical(
        "stage 1 stops: %s %s while %s: %s. Nothing was acked past the last commit, so a "
        "restart re-processes these events%s",
        "a broker failure," if code == RETRY_EXIT else "unexpected",
        type(error).__name__,
        where,
        error,
        "."
        if code == RETRY_EXIT
        else "; if it fails again, dead-letter or fix the input and report the error.",
        exc_info=error,
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(code)
