"""A trace's row id (seq) is its creation millisecond times 4096 plus a slot. A write takes the next free slots
of each millisecond its traces name, reading the stored rows once per millisecond; a full millisecond spills
into the next ones (the trace keeps its own time). Batches that fill and overflow milliseconds, around rows
already stored there, must store every trace exactly once, each with its own time."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agnt_traces.app import open_app
from agnt_traces.config import Settings
from agnt_traces.ids import ms_to_rfc3339
from agnt_traces.services.queries import StatsQuery, TraceQuery
from agnt_traces.store.sqlite import SLOT_BITS
from factories import trace_payload

pytestmark = pytest.mark.anyio

MOMENT = 1_700_000_000_000


def _seqs(path: str) -> list[int]:
    db = sqlite3.connect(path)
    try:
        return [int(r[0]) for r in db.execute("SELECT seq FROM traces ORDER BY seq")]
    finally:
        db.close()


async def test_batches_that_overflow_milliseconds_store_every_trace_once(tmp_path: Path) -> None:
    path = str(tmp_path / "traces.db")
    at, next_ms = ms_to_rfc3339(MOMENT), ms_to_rfc3339(MOMENT + 1)
    async with open_app(Settings(db_path=path)) as app:
        # Rows already stored: 3,500 in the millisecond, 10 in the next one.
        for start in range(0, 3500, 700):
            batch = [trace_payload(createdAt=at, output=f"old {k}") for k in range(start, start + 700)]
            assert all(r.created for r in await app.traces.ingest_many("default", batch))
        nexts = [trace_payload(createdAt=next_ms, output=f"next {k}") for k in range(10)]
        await app.traces.ingest_many("default", nexts)
        # One batch: 1,000 more in the millisecond (596 fit, 404 spill into the next ones, past their rows),
        # interleaved with 300 that name the next millisecond themselves.
        batch = []
        for k in range(1000):
            batch.append(trace_payload(createdAt=at, output=f"new {k}"))
            if k % 10 < 3:
                batch.append(trace_payload(createdAt=next_ms, output=f"new next {k}"))
        records = [app.traces.prepare(payload, "default") for payload in batch]  # past MAX_BATCH: the store
        results = await app.store.insert_traces("default", records)
        assert len(results) == 1300 and all(r.created for r in results)
        seqs = _seqs(path)
        assert len(seqs) == len(set(seqs)) == 3500 + 10 + 1300
        in_moment = [s for s in seqs if s >> SLOT_BITS == MOMENT]
        assert len(in_moment) == 4096, "the millisecond is filled before anything spills"
        for payload, result in list(zip(batch, results, strict=True))[::7]:
            trace = await app.traces.get("default", result.id)
            assert (trace.created_at, trace.output) == (payload["createdAt"], payload["output"])
        stats = (await app.traces.stats("default", StatsQuery(since=ms_to_rfc3339(MOMENT - 60_000)))).render()
        assert sum(g["count"] for g in stats["groups"]) == 4810
        newest = (await app.traces.list("default", TraceQuery(limit=5))).traces
        assert {t.created_at for t in newest} <= {MOMENT, MOMENT + 1}, "a spilled trace keeps its own time"
