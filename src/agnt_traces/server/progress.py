"""Progress notifications that keep a client's request timeout alive while a long tool call runs.

Clients that reset their timeout on progress (the TypeScript SDK's ``resetTimeoutOnProgress``) give up
on a silent call after 60 s, even while the server still works on it. :class:`ProgressBeat` reports each
finished step and, between steps, a heartbeat every few seconds. MCP requires the progress value to
increase with every notification, so a heartbeat adds a fraction that grows with the elapsed time and
never reaches the next whole step.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

__all__ = ["HEARTBEAT_SECONDS", "ProgressBeat"]

HEARTBEAT_SECONDS = 3.0


class ProgressBeat:
    def __init__(self, ctx: Any, interval: float = HEARTBEAT_SECONDS) -> None:
        self._ctx = ctx
        self._interval = interval
        self._done = 0
        self._total: int | None = None
        self._last = -1.0
        self._started = time.monotonic()

    def _value(self) -> float:
        elapsed = time.monotonic() - self._started
        # Grows with time, stays below the next whole step: 0.5 after one interval's worth of 10, → 0.99.
        fraction = 0.99 * elapsed / (elapsed + 10 * self._interval)
        return self._done + fraction

    async def _send(self, message: str) -> None:
        value = self._value()
        if value <= self._last:
            return
        self._last = value
        await self._ctx.report_progress(value, self._total, message=message)

    async def report(self, done: int, total: int, message: str) -> None:
        """A step finished (``done`` of ``total``)."""
        self._done, self._total = max(done, self._done), total
        await self._send(message)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Send a heartbeat every interval while the body runs. A body that ends within the first
        interval (most calls) costs a timer, not a task: the beat task starts when the first one is due."""

        async def beat() -> None:
            while True:
                elapsed = time.monotonic() - self._started
                total = f" of {self._total}" if self._total else ""
                await self._send(f"still running: {self._done}{total} done after {elapsed:.0f} s")
                await anyio.sleep(self._interval)

        # A task of its own rather than a task group: an error of the body must reach the caller as
        # itself (tool_errors maps it), not wrapped in an ExceptionGroup.
        loop = asyncio.get_running_loop()
        task: asyncio.Task[None] | None = None

        def start() -> None:
            nonlocal task
            task = loop.create_task(beat())

        first = loop.call_later(self._interval, start)
        try:
            yield
        finally:
            first.cancel()
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
