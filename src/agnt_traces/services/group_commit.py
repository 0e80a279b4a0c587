"""Group commit: concurrent single-trace writes share one store transaction.

Under load, every single-trace ingest (``POST /traces`` with one trace, MCP ``ingest_trace`` over HTTP or
stdio) would otherwise be a write transaction of its own, handed to the store's writer one at a time.
Here each caller validates its own trace first (its errors stay its own), then queues the record; one
flusher writes whatever has queued up meanwhile in one call per tenant; before each write it lets the event
loop turn until tens of turns in a row bring no new record (bounded in turns and in milliseconds), so that
requests already being read join it, however many turns their way through the transport takes; while writes
go one at a time (one caller in flight: an agent's calls, a quiet server) it lets the loop turn once, and goes
back to gathering as soon as a write is shared again. If a grouped write fails (e.g. one trace conflicts
with a stored one), its records are written again one by one, so each caller gets exactly the answer it would
have got alone. A caller is answered only after its trace is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from ..ingest_records import IngestResult, TraceRecord

__all__ = ["GroupCommit"]

logger = logging.getLogger("agnt_traces.services")

Write = Callable[[str, list[TraceRecord]], Awaitable[list[IngestResult]]]
_Item = tuple[str, TraceRecord, "asyncio.Future[IngestResult]"]


class GroupCommit:
    """Writes queued records through ``write(tenant, records)``, at most ``max_batch`` per call."""

    def __init__(
        self,
        write: Write,
        max_batch: int = 256,
        gather_rounds: int = 96,
        max_gather_rounds: int = 256,
        max_gather_seconds: float = 0.005,
        max_quiet_seconds: float = 0.003,
    ) -> None:
        self._write_records = write
        self.max_batch = max_batch
        self.gather_rounds = gather_rounds  # turns in a row that bring no new record end the gathering
        self.max_gather_rounds = max_gather_rounds  # the gathering's turns at most
        self.max_gather_seconds = max_gather_seconds  # its time at most, however long other work makes a turn
        self.max_quiet_seconds = max_quiet_seconds  # time without a new record that ends it too
        self._queue: list[_Item] = []
        self._flusher: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shared = False  # the last write carried more than one record: others are likely on their way

    async def submit(self, tenant: str, record: TraceRecord) -> IngestResult:
        """Store ``record`` (grouped with whatever else is queued) and return its result once committed.

        Raises:
            Whatever the store raised for this record written alone (e.g. ``Conflict``).
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new event loop (e.g. another asyncio.run)
            self._loop, self._queue, self._flusher = loop, [], None
        future: asyncio.Future[IngestResult] = loop.create_future()
        self._queue.append((tenant, record, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        return await asyncio.shield(future)  # a caller going away does not cancel the others' writes

    async def _flush(self) -> None:
        while self._queue:
            await self._gather()
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            self._shared = len(batch) > 1
            by_tenant: dict[str, list[_Item]] = {}
            for item in batch:
                by_tenant.setdefault(item[0], []).append(item)
            for tenant, items in by_tenant.items():
                await self._write(tenant, items)

    async def _gather(self) -> None:
        """Turns of the event loop before a write (about a microsecond each on uvloop when nothing else is
        ready): records already on their way reach the queue and share the write instead of waiting for the
        next one. Those of one burst of requests arrive spread over tens of turns (over stdio, a request takes
        several turns from the transport to here, and a client sends each next request as it reads an
        answer), so the gathering goes on until ``gather_rounds`` turns in a row bring nothing new, within
        ``max_gather_rounds`` turns, ``max_quiet_seconds`` without a new record and ``max_gather_seconds`` in
        all (turns that other work makes long end it by time), or until a batch is full."""
        if not self._shared and len(self._queue) == 1:
            await asyncio.sleep(0)  # one caller at a time: one turn, so that its answer is not held up
            return
        now = time.monotonic()
        deadline, last_new = now + self.max_gather_seconds, now
        quiet = turns = 0
        while quiet < self.gather_rounds and turns < self.max_gather_rounds and len(self._queue) < self.max_batch:
            queued = len(self._queue)
            await asyncio.sleep(0)
            turns += 1
            now = time.monotonic()
            if len(self._queue) > queued:
                quiet, last_new = 0, now
            else:
                quiet += 1
                if now - last_new >= self.max_quiet_seconds:
                    return
            if now >= deadline:
                return

    async def _write(self, tenant: str, items: list[_Item]) -> None:
        if len(items) > 1:
            try:
                results = await self._write_records(tenant, [rec for _, rec, _ in items])
            except Exception:
                logger.debug("grouped write of %d traces failed; writing them one by one", len(items), exc_info=True)
            else:
                for (_, _, future), result in zip(items, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                return
        for _, rec, future in items:
            try:
                (result,) = await self._write_records(tenant, [rec])
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

    async def aclose(self) -> None:
        """Wait for queued writes (at shutdown: acknowledged traces are never dropped)."""
        flusher = self._flusher
        if flusher is not None and self._loop is asyncio.get_running_loop():
            await asyncio.gather(flusher, return_exceptions=True)
