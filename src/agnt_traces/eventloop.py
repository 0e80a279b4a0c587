"""Event loops this package runs itself: anyio is told once that they are asyncio's.

anyio asks sniffio which async library is running at every checkpoint, cancel scope, memory-stream send
and event; unless the loop's owner has said so, sniffio finds out by calling ``asyncio.current_task()``, a
Python function on 3.11, each time: about 7 % of an MCP server's CPU under load. ``anyio.run`` says so
for the loops it starts; the servers here run under ``asyncio.run`` and uvicorn, so :func:`asyncio_owned`
says it the way sniffio provides for a library that owns the loop (``sniffio.thread_local``): on the
loop's thread only (anyio's worker threads and ours ask on their own) and for the loop's lifetime only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sniffio

__all__ = ["asyncio_owned"]


@contextlib.contextmanager
def asyncio_owned() -> Iterator[None]:
    """Inside, this thread runs an asyncio event loop (wrap ``asyncio.run(...)`` or uvicorn's ``run`` in it)."""
    before = sniffio.thread_local.name
    sniffio.thread_local.name = "asyncio"
    try:
        yield
    finally:
        sniffio.thread_local.name = before
