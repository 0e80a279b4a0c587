"""Event loops this package runs itself: anyio is told once that they are asyncio's, and servers run on
uvloop where it is installed.

The HTTP server runs under uvicorn, which picks uvloop by itself; the stdio server asks for it here
(:func:`server_loop_factory`), so both transports turn their loop at the same cost (about half of asyncio's
own, which group commit spends turns of while a write gathers). Where uvloop is missing (Windows), asyncio's
loop serves.

anyio asks sniffio which async library is running at every checkpoint, cancel scope, memory-stream send
and event; unless the loop's owner has said so, sniffio finds out by calling ``asyncio.current_task()``, a
Python function on 3.11, each time: about 7 % of an MCP server's CPU under load. ``anyio.run`` says so
for the loops it starts; the servers here run under ``asyncio.run`` and uvicorn, so :func:`asyncio_owned`
says it the way sniffio provides for a library that owns the loop (``sniffio.thread_local``): on the
loop's thread only (anyio's worker threads and ours ask on their own) and for the loop's lifetime only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import sniffio

__all__ = ["asyncio_owned", "server_loop_factory"]


@contextlib.contextmanager
def asyncio_owned() -> Iterator[None]:
    """Inside, this thread runs an asyncio event loop (wrap ``asyncio.run(...)`` or uvicorn's ``run`` in it)."""
    before = sniffio.thread_local.name
    sniffio.thread_local.name = "asyncio"
    try:
        yield
    finally:
        sniffio.thread_local.name = before


def server_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop for a server process, as uvicorn picks it; None (asyncio's own) when it is not installed."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
