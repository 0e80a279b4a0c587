"""Group commit for single-trace ingest: concurrent POSTs share one store transaction.

Under load, every ``POST /traces`` with one trace would otherwise be its own write transaction, handed to
the store's writer thread one at a time. Here each request validates its own trace (its errors stay its
own), then queues the record; one flusher writes whatever has queued up meanwhile in one
``insert_traces`` call per tenant. With one request in flight a batch is that request alone, so there is
no added latency. If a batch fails (e.g. one trace conflicts with a stored one), its records are retried
one by one, so each request gets exactly the answer it would have got alone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..services.traces import TraceService
from ..store.base import IngestResult, TraceRecord

__all__ = ["IngestBatcher"]

logger = logging.getLogger("agnt_traces.http")

_Item = tuple[str, TraceRecord, "asyncio.Future[IngestResult]"]


class IngestBatcher:
    def __init__(self, traces: TraceService, max_batch: int = 256) -> None:
        self.traces = traces
        self.max_batch = max_batch
        self._queue: list[_Item] = []
        self._flusher: asyncio.Task[None] | None = None

    async def ingest(self, tenant: str, payload: Any) -> dict[str, Any]:
        record = self.traces.prepare(payload, tenant)  # validation errors are this request's alone
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._queue.append((tenant, record, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        result = await asyncio.shield(future)  # a client hanging up does not cancel others' writes
        return {"id": result.id, "created": result.created}

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            by_tenant: dict[str, list[_Item]] = {}
            for item in batch:
                by_tenant.setdefault(item[0], []).append(item)
            for tenant, items in by_tenant.items():
                await self._write(tenant, items)

    async def _write(self, tenant: str, items: list[_Item]) -> None:
        store = self.traces.store
        if len(items) > 1:
            try:
                results = await store.insert_traces(tenant, [rec for _, rec, _ in items])
            except Exception:
                logger.debug("batched ingest of %d traces failed; retrying one by one", len(items), exc_info=True)
            else:
                for (_, _, future), result in zip(items, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                return
        for _, rec, future in items:
            try:
                (result,) = await store.insert_traces(tenant, [rec])
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

    async def aclose(self) -> None:
        """Wait for queued writes (at shutdown: acknowledged traces are never dropped)."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
