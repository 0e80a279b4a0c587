"""SQLite connections used from async code: a pool whose calls each run whole on a worker thread.

A ``sqlite3.Connection`` is never used by two threads at once: a call checks one out of the pool, runs
``fn(conn, *args)`` in a worker thread and puts it back. The writer is a pool of one (calls run in the
order they were made); readers are a pool of several, so one slow read never queues the others.

A read pool gives every call a time budget: SQLite's progress handler interrupts the statement that
runs past it, and the call raises :class:`ReadBudgetExceeded`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from ..errors import InvalidArgument

__all__ = ["ConnectionPool", "FulltextGate", "ReadBudgetExceeded"]

T = TypeVar("T")

# SQLite calls the progress handler every this many virtual-machine instructions (well under a
# millisecond of work); each call takes the GIL, so not much more often than that.
_PROGRESS_EVERY = 20_000


class ReadBudgetExceeded(InvalidArgument):
    """A read ran past the query time budget and was interrupted."""


class ConnectionPool:
    """``size`` connections to one database file; see the module docstring."""

    def __init__(self, connections: list[sqlite3.Connection], budget_ms: float | None) -> None:
        self._all = list(connections)
        self._free = list(connections)
        self._slots = anyio.Semaphore(len(connections))  # FIFO: calls get a connection in arrival order
        self._threads = anyio.CapacityLimiter(len(connections))  # not shared with other thread users
        self.budget_ms = budget_ms

    @classmethod
    async def open(
        cls,
        path: str,
        size: int,
        configure: Callable[[sqlite3.Connection], None],
        *,
        budget_ms: float | None = None,
    ) -> ConnectionPool:
        """Open ``size`` connections and run ``configure`` on each (in a worker thread)."""

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                configure(conn)
            except BaseException:
                conn.close()
                raise
            return conn

        connections: list[sqlite3.Connection] = []
        try:
            for _ in range(size):
                connections.append(await anyio.to_thread.run_sync(connect))
        except BaseException:
            for conn in connections:
                conn.close()
            raise
        return cls(connections, budget_ms)

    @property
    def size(self) -> int:
        return len(self._all)

    async def run(self, fn: Callable[..., T], *args: Any, unbudgeted: bool = False) -> T:
        """``fn(conn, *args)`` on a free connection in a worker thread, within the pool's budget unless
        ``unbudgeted`` (maintenance that must run to the end).

        Raises:
            ReadBudgetExceeded: the call ran past its budget and SQLite interrupted it.
        """
        budget = None if unbudgeted else self.budget_ms
        async with self._slots:
            conn = self._free.pop()
            try:
                call = partial(_call_with_budget, conn, budget, fn, *args) if budget else partial(fn, conn, *args)
                # Not abandoned on cancellation: the connection goes back only when the thread is done with it.
                return await anyio.to_thread.run_sync(call, limiter=self._threads)
            finally:
                self._free.append(conn)

    async def close(self) -> None:
        for _ in self._all:  # wait until no call uses a connection, and let none start after
            await self._slots.acquire()
        for conn in self._all:
            conn.close()


def _call_with_budget(conn: sqlite3.Connection, budget_ms: float, fn: Callable[..., T], *args: Any) -> T:
    deadline = time.monotonic() + budget_ms / 1000

    def over_budget() -> bool:
        return time.monotonic() > deadline  # a true value makes SQLite interrupt the statement

    conn.set_progress_handler(over_budget, _PROGRESS_EVERY)
    try:
        return fn(conn, *args)
    except sqlite3.OperationalError as exc:
        if time.monotonic() > deadline and "interrupt" in str(exc):
            raise ReadBudgetExceeded(
                f"the query took longer than the {budget_ms:g} ms budget and was stopped: narrow it with filters "
                "(since, promptName, status …) or ask for fewer rows",
                {"budgetMs": budget_ms},
            ) from None
        raise
    finally:
        conn.set_progress_handler(None, 0)


class FulltextGate:
    """Admission for full-text reads, the ones that can run to the budget: one at a time per tenant, and
    at most ``total`` at once, so a tenant's searches queue behind its own and ordinary reads always
    find a free reader connection."""

    def __init__(self, total: int) -> None:
        self._total = anyio.Semaphore(max(1, total))
        self._per_tenant: dict[str, tuple[anyio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, tenant: str) -> AsyncIterator[None]:
        entry = self._per_tenant.get(tenant)
        if entry is None:
            entry = self._per_tenant[tenant] = (anyio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock, self._total:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._per_tenant[tenant]
