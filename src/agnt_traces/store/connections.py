"""SQLite connections used from async code: a pool whose calls each run whole on a worker thread.

A ``sqlite3.Connection`` is never used by two threads at once: a call checks one out of the pool, runs
``fn(conn, *args)`` in a worker thread and puts it back. The writer is a pool of one (calls run in the
order they were made); readers are a pool of several, so one slow read never queues the others.

A read pool gives every call a time budget: a watchdog thread interrupts (``sqlite3_interrupt``) the
statement that runs past it, and the call raises :class:`ReadBudgetExceeded`. (A progress handler would do the
same but calls back into Python, taking the GIL, every N steps; and a step that is one costly
virtual-table call, as full-text search makes, may be far fewer steps than N.)
"""

from __future__ import annotations

import heapq
import itertools
import sqlite3
import threading
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

# A backstop for the watchdog: SQLite calls back into Python (taking the GIL) only every this many
# virtual-machine steps, a few milliseconds of work; most reads finish before the first call.
_PROGRESS_EVERY = 100_000
_IDLE_WAKE = 1.0  # seconds between looks of the read-budget watchdog while no read is running


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
                call = partial(fn, conn, *args)
                if budget is not None:
                    call = partial(_WATCHDOG.run, budget, conn, call)
                # Not abandoned on cancellation: the connection goes back only when the thread is done.
                return await anyio.to_thread.run_sync(call, limiter=self._threads)
            finally:
                self._free.append(conn)

    async def close(self) -> None:
        for _ in self._all:  # wait until no call uses a connection, and let none start after
            await self._slots.acquire()
        for conn in self._all:
            conn.close()


class _Watchdog:
    """One thread for the whole process that interrupts calls running past their deadline.

    A call registers itself (on its worker thread) before it starts and unregisters when it ends; the
    watchdog interrupts a connection only while its call is registered, under the same lock, so an
    interrupt never reaches the next call on that connection. ``sqlite3_interrupt`` stops the running
    statement at its next step; one that lands between two statements is a no-op, so a progress
    handler stops the next statement of an interrupted call.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._deadlines: list[tuple[float, int]] = []  # heap of (deadline, call number)
        self._calls: dict[int, tuple[sqlite3.Connection, list[bool]]] = {}
        self._numbers = itertools.count()
        self._thread: threading.Thread | None = None
        # When the watchdog wakes up next (monotonic): a call whose deadline is later need not wake it, so a
        # quiet server's reads (an agent's) cost no thread wake-up each; idle, it looks every _IDLE_WAKE s.
        self._wake_at = 0.0

    def run(self, budget_ms: float, conn: sqlite3.Connection, call: Callable[[], T]) -> T:
        """``call()`` (which uses ``conn``), interrupted once it runs ``budget_ms`` long.

        Raises:
            ReadBudgetExceeded: it was interrupted.
        """
        fired = [False]
        number = next(self._numbers)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="sqlite-read-budget", daemon=True)
                self._thread.start()
            deadline = time.monotonic() + budget_ms / 1000
            heapq.heappush(self._deadlines, (deadline, number))
            self._calls[number] = (conn, fired)
            if deadline < self._wake_at:
                self._lock.notify()
        conn.set_progress_handler(lambda: fired[0], _PROGRESS_EVERY)
        try:
            return call()
        except sqlite3.OperationalError as exc:
            if fired[0] and "interrupt" in str(exc):
                raise ReadBudgetExceeded(
                    f"the query took longer than the {budget_ms:g} ms budget and was stopped: narrow it with "
                    "filters (since, promptName, status …) or ask for fewer rows",
                    {"budgetMs": budget_ms},
                ) from None
            raise
        finally:
            with self._lock:
                del self._calls[number]
            conn.set_progress_handler(None, 0)

    def _watch(self) -> None:
        with self._lock:
            while True:
                while self._deadlines and self._deadlines[0][1] not in self._calls:
                    heapq.heappop(self._deadlines)  # finished in time
                now = time.monotonic()
                if not self._deadlines:
                    self._wake_at = now + _IDLE_WAKE
                    self._lock.wait(_IDLE_WAKE)
                    continue
                deadline, number = self._deadlines[0]
                if deadline > now:
                    self._wake_at = deadline
                    self._lock.wait(deadline - now)
                    continue
                heapq.heappop(self._deadlines)
                conn, fired = self._calls[number]
                fired[0] = True
                conn.interrupt()


_WATCHDOG = _Watchdog()


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
