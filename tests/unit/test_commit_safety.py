"""The two at-least-once holes of faust-streaming 0.15.3, reproduced deterministically.

Each test fails on the code before :mod:`pipeline.agents.commit_safety`: the first
against Faust's own ProducerBuffer, the second against the agents' loop.
"""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace
from typing import Any

import faust
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.producer import ProducerBuffer

from pipeline.agents.commit_safety import drain_fully


def test_faust_internals_the_fixes_rely_on_are_unchanged() -> None:
    """Fails when an upgrade of faust-streaming moves what commit_safety patches."""
    assert faust.__version__ == "0.15.3"
    commit = inspect.getsource(faust_consumer.Consumer._commit_offsets)
    assert "await self.app.producer.flush()" in commit
    assert commit.index("producer.flush()") < commit.index("self._commit(")
    assert "await self.buffer.flush()" in inspect.getsource(faust_aiokafka.Producer.flush)
    flush_atmost = inspect.getsource(ProducerBuffer.flush_atmost)
    assert "timeout=0.1" in flush_atmost and "return flushed_messages" in flush_atmost
    assert "self.message_sent.set()" in inspect.getsource(ProducerBuffer)
    assert {"size", "state", "flush"} <= set(dir(ProducerBuffer))


async def _buffer_with_slow_sends(
    seconds_per_record: float, patch: bool = False
) -> tuple[ProducerBuffer, list[int]]:
    """A real Faust ProducerBuffer whose records take longer to send than its 0.1 s wait."""
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))
    sent: list[int] = []

    async def slow_send(fut: Any) -> None:
        await asyncio.sleep(seconds_per_record)
        sent.append(fut)

    buffer._send_pending = slow_send  # type: ignore[method-assign]
    if patch:
        drain_fully(SimpleNamespace(buffer=buffer))
    await buffer.start()
    for n in range(3):
        buffer.put(n)  # type: ignore[arg-type]
    return buffer, sent


def test_faust_buffer_flush_returns_with_records_left() -> None:
    """The hole itself, on unpatched Faust: flush() comes back before the buffer is empty."""

    async def run() -> tuple[int, int]:
        buffer, sent = await _buffer_with_slow_sends(0.25)
        await buffer.flush()
        left, sent_then = buffer.size, len(sent)
        while buffer.size:  # let the rest go before stopping (stop flushes, and would raise)
            await asyncio.sleep(0.05)
        await buffer.stop()
        return left, sent_then

    left, sent = asyncio.run(run())
    assert left > 0, "Faust's own flush drained the buffer: the fix may no longer be needed"
    assert sent < 3


def test_drained_flush_waits_for_every_record() -> None:
    async def run() -> tuple[int, list[int]]:
        buffer, sent = await _buffer_with_slow_sends(0.25, patch=True)
        await buffer.flush()
        left = buffer.size
        await buffer.stop()
        return left, sent

    left, sent = asyncio.run(run())
    assert left == 0
    assert sent == [0, 1, 2]


def test_a_flush_waits_for_what_was_queued_before_it_not_for_later_records() -> None:
    """Agents keep queueing while a commit flushes; the flush must not chase them."""

    async def run() -> tuple[int, int]:
        buffer, sent = await _buffer_with_slow_sends(0.05, patch=True)  # 3 queued
        flushing = asyncio.ensure_future(buffer.flush())
        await asyncio.sleep(0)  # the flush has started and taken its target
        for n in range(3, 23):  # 20 more records arrive while it waits
            buffer.put(n)  # type: ignore[arg-type]
        await flushing
        done_at_return = len(sent)
        while len(sent) < 23:  # let the rest go before stopping (stop flushes too)
            await asyncio.sleep(0.05)
        await buffer.stop()
        return done_at_return, len(sent)

    at_return, total = asyncio.run(run())
    assert 3 <= at_return < 23 and total == 23
