"""The read-budget watchdog (``store.connections._Watchdog``): a read running past its budget is interrupted
at its deadline, whether the watchdog was idle or watching other reads; and reads whose deadline comes after
the watchdog's next look do not wake it (a quiet server's reads cost no thread wake-up each)."""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

import pytest

from agnt_traces.store.connections import ReadBudgetExceeded, _Watchdog

ENDLESS = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"


class _CountingCondition(threading.Condition):
    def __init__(self) -> None:
        super().__init__()
        self.notified = 0

    def notify(self, n: int = 1) -> None:
        self.notified += 1
        super().notify(n)


def _watchdog() -> tuple[_Watchdog, _CountingCondition]:
    wd = _Watchdog()
    wd._lock = lock = _CountingCondition()
    return wd, lock


def _endless(wd: _Watchdog, conn: sqlite3.Connection, budget_ms: float) -> float:
    started = time.monotonic()
    with pytest.raises(ReadBudgetExceeded):
        wd.run(budget_ms, conn, lambda: conn.execute(ENDLESS).fetchall())
    return time.monotonic() - started


def _quick(wd: _Watchdog, conn: sqlite3.Connection, budget_ms: float) -> Any:
    return wd.run(budget_ms, conn, lambda: conn.execute("SELECT 1").fetchone())


def test_a_read_past_its_budget_is_interrupted_at_its_deadline_from_idle_and_busy() -> None:
    wd, _ = _watchdog()
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    assert _quick(wd, conn, 2000) == (1,)
    time.sleep(0.05)  # the watchdog is idle, looking again in a second
    assert 0.15 <= _endless(wd, conn, 200) < 0.9  # earlier than its next look: it was woken
    other = sqlite3.connect(":memory:", check_same_thread=False)
    took: list[float] = []
    slow = threading.Thread(target=lambda: took.append(_endless(wd, other, 1500)))
    slow.start()  # watching a read due in 1.5 s
    time.sleep(0.05)
    assert 0.15 <= _endless(wd, conn, 200) < 0.9  # a nearer deadline than the one it watches
    slow.join(10)
    assert took and 1.4 <= took[0] < 2.5


def test_reads_due_after_the_watchdogs_next_look_do_not_wake_it() -> None:
    wd, lock = _watchdog()
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    _quick(wd, conn, 2000)
    time.sleep(0.05)
    for _ in range(50):
        _quick(wd, conn, 2000)  # due in 2 s; the idle watchdog looks again within 1 s
        time.sleep(0.002)
    assert lock.notified == 0
    time.sleep(2.2)  # the deadlines it watched have passed: idle, looking again every second
    assert 1.4 <= _endless(wd, conn, 1500) < 2.5  # due after its next look: not woken, yet interrupted in time
    assert lock.notified == 0
    time.sleep(0.05)
    _quick(wd, conn, 100)  # due before its next look: woken
    assert lock.notified == 1
