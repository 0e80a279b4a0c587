"""On SQLite, stats roll-ups lag the writes: a write notes its traces, a later transaction rolls many up at
once. These tests hold the store to what that must never change: a killed process loses no trace's stats,
a read racing a roll-up counts every trace exactly once, and the noted traces are rolled up by themselves
once enough have gathered."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

from agnt_traces.app import App, open_app
from agnt_traces.config import Settings
from agnt_traces.ids import ms_to_rfc3339, now_ms
from agnt_traces.services.queries import StatsQuery
from factories import trace_payload

pytestmark = pytest.mark.anyio


def _pending(path: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT count(*) FROM trace_stats_pending").fetchone()[0])
    finally:
        db.close()


async def _totals(app: App, **window: str) -> tuple[int, int]:
    """(traces, input tokens) over every group of trace_stats by prompt."""
    rows = (await app.traces.stats("default", StatsQuery(group_by="prompt", **window))).render()["groups"]
    return sum(r["count"] for r in rows), sum(r["inputTokens"] for r in rows)


def _payload(i: int) -> dict[str, object]:
    return trace_payload(promptName=f"p{i % 3}", inputTokens=i, outputTokens=1, output=f"answer {i}")


async def test_a_killed_process_leaves_its_noted_traces_to_the_next_open(tmp_path: Path) -> None:
    db = str(tmp_path / "traces.db")
    script = textwrap.dedent(
        f"""
        import asyncio, os, sys
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from agnt_traces.app import open_app
        from agnt_traces.config import Settings
        from factories import trace_payload

        async def main():
            async with open_app(Settings(db_path={db!r})) as app:
                app.store.rollup_every = 10**9
                for i in range(40):
                    await app.traces.ingest_many(
                        "default", [trace_payload(promptName=f"p{{i % 3}}", inputTokens=i, outputTokens=1)]
                    )
                os._exit(0)  # no close: as if killed

        asyncio.run(main())
        """
    )
    with anyio.fail_after(120):
        done = await anyio.run_process([sys.executable, "-c", script], check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _pending(db) == 40  # acknowledged, not rolled up
    async with open_app(Settings(db_path=db)) as app:
        assert _pending(db) == 0  # rolled up when the store opened
        assert await _totals(app) == (40, sum(range(40)))
        assert await _totals(app, since="2020-01-01T00:00:00Z") == (40, sum(range(40)))


async def test_noted_traces_are_rolled_up_once_enough_have_gathered(tmp_path: Path) -> None:
    db = str(tmp_path / "traces.db")
    async with open_app(Settings(db_path=db)) as app:
        app.store.rollup_every = 25  # type: ignore[attr-defined]
        for i in range(24):
            await app.traces.ingest_many("default", [_payload(i)])
        assert _pending(db) == 24
        await app.traces.ingest_many("default", [_payload(24), _payload(25)])
        for _ in range(200):  # the roll-up runs in the background
            if _pending(db) == 0:
                break
            await asyncio.sleep(0.01)
        assert _pending(db) == 0
        assert await _totals(app, since="2020-01-01T00:00:00Z") == (26, sum(range(26)))
        await app.traces.ingest_many("default", [_payload(26)])
        assert _pending(db) == 1
    assert _pending(db) == 0  # closing rolls up the rest


async def test_reads_racing_roll_ups_count_every_trace_once(tmp_path: Path) -> None:
    """A writer, roll-ups every few traces and readers at once: each answer lies between what was
    acknowledged before the read began and what was acknowledged by the time it ended, plus the one trace
    that may be committed and not yet acknowledged (a trace counted twice, or a roll-up half seen, falls
    outside)."""
    db = str(tmp_path / "traces.db")
    async with open_app(Settings(db_path=db)) as app:
        app.store.rollup_every = 3  # type: ignore[attr-defined]
        acked = 0
        stop = False
        seen: list[tuple[int, int, int]] = []

        async def write() -> None:
            nonlocal acked, stop
            for i in range(300):
                await app.traces.ingest_many("default", [_payload(i)])
                acked += 1
            stop = True

        async def read() -> None:
            while not stop:
                before = acked
                count, _ = await _totals(app, since="2020-01-01T00:00:00Z")
                seen.append((before, count, acked))

        await asyncio.gather(write(), read(), read())
        assert len(seen) > 20
        for before, count, after in seen:
            assert before <= count <= after + 1, (before, count, after)
        assert await _totals(app, since="2020-01-01T00:00:00Z") == (300, sum(range(300)))


def _history(path: str, tenant_id: int, days: int) -> None:
    """Roll-up rows as a month of traffic leaves them: 3 prompts x 3 models x 2 statuses every minute."""
    now_min = now_ms() // 60_000
    rows = []
    for grain in (1, 10, 60, 1440):
        for period in range((now_min - days * 1440) // grain, now_min // grain - 1):
            for p in "abc":
                rows += [(tenant_id, 1, grain, period, p, 0, "", "", 0), (tenant_id, 2, grain, period, p, 1, "", "", 0)]
                rows += [(tenant_id, 6, grain, period, p, 0, "", "", s) for s in (0, 1)]
                rows += [(tenant_id, 4, grain, period, p, 0, "openai", m, 0) for m in ("m1", "m2", "m3")]
            rows += [(tenant_id, 3, grain, period, "", 0, "openai", m, 0) for m in ("m1", "m2", "m3")]
            rows += [(tenant_id, 5, grain, period, "", 0, "", "", s) for s in (0, 1)]
    db = sqlite3.connect(path)
    db.executemany("INSERT OR IGNORE INTO trace_stats_rollups VALUES (?,?,?,?,?,?,?,?,?,1,0,1,1,2,0.0,0,x'')", rows)
    db.commit()
    db.close()


async def test_one_late_trace_does_not_make_a_roll_up_read_the_history_between(tmp_path: Path) -> None:
    """A client's retry queue flushed a month late: one trace from then among today's. A roll-up reads the
    stored rows of the periods its traces touch, never the month of rows between them (that held the one
    writer, every tenant's writes, for seconds)."""
    db = str(tmp_path / "traces.db")
    days = 10
    async with open_app(Settings(db_path=db)) as app:
        app.store.rollup_every = 10**9  # type: ignore[attr-defined]
        await app.traces.ingest_many("default", [_payload(0)])
        await app.store.roll_up()  # type: ignore[attr-defined]
        (tenant_id,) = sqlite3.connect(db).execute("SELECT id FROM tenants WHERE name = 'default'").fetchone()
        _history(db, tenant_id, days)
        now = now_ms()
        for i in range(249):
            await app.traces.ingest_many("default", [{**_payload(i), "createdAt": ms_to_rfc3339(now - i)}])
        late = ms_to_rfc3339(now - (days - 1) * 86_400_000)
        await app.traces.ingest_many("default", [{**_payload(999), "createdAt": late}])
        started = time.perf_counter()
        await app.store.roll_up()  # type: ignore[attr-defined]
        held = time.perf_counter() - started
        assert _pending(db) == 0
    assert held < 0.25, f"one roll-up of 250 traces took {held:.2f} s"
