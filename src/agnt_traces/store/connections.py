"""SQLite connections used from async code: a pool whose calls each run whole on a worker thread.

A ``sqlite3.Connection`` is never used by two threads at once: a call checks one out of the pool, runs
``fn(conn, *args)`` in a worker thread and puts it back. The writer is a pool of one (calls run in the
order they were made); readers are a pool of several, so one slow read never queues the others.

A read pool gives every call a time budget: a watchdog interrupts (``sqlite3_interrupt``) the statement
that runs past it, and the call raises :class:`ReadBudgetExceeded`. (A progress handler would do the
same but calls back into Python, taking the GIL, every N steps; and a step that is one costly
virtual-table call, as full-text search makes, may be far fewer steps than N.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from ..errors import InvalidArgument

__all__ = ["ConnectionPool", "FulltextGate", "ReadBudgetExceeded"]

T = TypeVar("T")

# A backstop for the watchdog: SQLite calls back into Python (taking the GIL) only every this many
# virtual-machine steps, a few milliseconds of work; most reads finish before the first call.
_PROGRESS_EVERY = 100_000


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
                if budget is None:
                    # Not abandoned on cancellation: the connection goes back only when the thread is done.
                    return await anyio.to_thread.run_sync(partial(fn, conn, *args), limiter=self._threads)
                return await self._run_within(budget, conn, fn, *args)
            finally:
                self._free.append(conn)

    async def _run_within(self, budget_ms: float, conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
        """Run the call; a watchdog interrupts the connection once the budget is spent.

        ``sqlite3_interrupt`` stops the running statement at its next step (and is a no-op when none is
        running), from any thread, without the per-step callback a progress handler costs.
        """
        fired = [False]
        failure: list[Exception] = []
        result: list[T] = []

        async def watchdog() -> None:
            await anyio.sleep(budget_ms / 1000)
            fired[0] = True
            conn.interrupt()

        async with anyio.create_task_group() as tg:
            tg.start_soon(watchdog)
            try:
                call = partial(_call_interruptible, fired, conn, fn, *args)
                result.append(await anyio.to_thread.run_sync(call, limiter=self._threads))
            except Exception as exc:  # raised below, outside the task group (which would wrap it in a group)
                failure.append(exc)
            finally:
                tg.cancel_scope.cancel()
        if failure:
            error = failure[0]
            if fired[0] and isinstance(error, sqlite3.OperationalError) and "interrupt" in str(error):
                raise ReadBudgetExceeded(
                    f"the query took longer than the {budget_ms:g} ms budget and was stopped: narrow it with "
                    "filters (since, promptName, status …) or ask for fewer rows",
                    {"budgetMs": budget_ms},
                ) from None
            raise error
        return result[0]

    async def close(self) -> None:
        for _ in self._all:  # wait until no call uses a connection, and let none start after
            await self._slots.acquire()
        for conn in self._all:
            conn.close()


def _call_interruptible(fired: list[bool], conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    # An interrupt that lands between two statements of ``fn`` is a no-op: the progress handler, every
    # _PROGRESS_EVERY steps, stops a later statement once the watchdog has fired.
    conn.set_progress_handler(lambda: fired[0], _PROGRESS_EVERY)
    try:
        return fn(conn, *args)
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
