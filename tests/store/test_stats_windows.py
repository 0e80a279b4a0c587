"""trace_stats over arbitrary windows (milliseconds anywhere: inside one minute, across minute, hour and day
edges, ending before now) equals a brute-force recount of the traces, on both stores, for every grouping
with and without a prompt filter; and the migration that builds the roll-ups from stored traces makes the
same rows as writing them trace by trace."""

from __future__ import annotations

import itertools
import math
import random
import sqlite3
from typing import Any

import pytest

from agnt_traces.app import App, open_app
from agnt_traces.config import Settings
from agnt_traces.ids import ms_to_rfc3339
from agnt_traces.services.queries import StatsQuery
from agnt_traces.store import migrations
from agnt_traces.store.rollups import bucket, bucket_value
from agnt_traces.store.stats_rollups import GRAINS, MINUTE_MS, hist_int, int_hist, pack_hist, plan_window
from factories import trace_payload

pytestmark = [pytest.mark.anyio, pytest.mark.both_stores]
M = MINUTE_MS
H = 60 * M
D = 24 * H
T0 = 1_790_000_000_000 // D * D  # a day boundary (UTC)
PROMPTS = ["a", "b", "c"]
MODELS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("agnt-local", "echo")]


def _corpus(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Traces over three days, bunched around minute, hour and day edges; some errors, unknown durations and
    unpriced calls."""
    edges = [T0 + D, T0 + D + H, T0 + 2 * D - M, T0 + D + 7 * M]
    traces = []
    for i in range(n):
        near_edge = rng.random() < 0.5
        at = rng.choice(edges) + rng.randrange(-90_000, 90_000) if near_edge else T0 + rng.randrange(3 * D)
        provider, model = rng.choice(MODELS)
        error = rng.random() < 0.1
        t = trace_payload(
            createdAt=ms_to_rfc3339(at),
            promptName=rng.choice(PROMPTS),
            promptVersion=rng.randint(1, 3),
            model={"provider": provider, "name": model},
            duration=None if rng.random() < 0.05 else round(rng.lognormvariate(0, 1.2), 4),
            # Unpriced: no cost and no tokens to estimate one from.
            cost=None if provider == "agnt-local" else round(rng.random() / 100, 6),
            inputTokens=0 if provider == "agnt-local" else rng.randrange(1000),
            outputTokens=0 if provider == "agnt-local" else rng.randrange(300),
            output=f"o{i}",
            **({"status": "error", "error": {"type": "E", "message": "m"}} if error else {}),
        )
        t["_ms"] = at
        traces.append(t)
    return traces


def _group_of(t: dict[str, Any], group_by: str) -> tuple[Any, ...]:
    if group_by == "prompt":
        return (t["promptName"],)
    if group_by == "version":
        return (t["promptName"], t["promptVersion"])
    if group_by == "model":
        return (t["model"]["provider"], t["model"]["name"])
    return ("error" if t.get("status") == "error" else "success",)


def _label(row: dict[str, Any], group_by: str) -> tuple[Any, ...]:
    g = row["group"]
    if group_by == "prompt":
        return (g["promptName"],)
    if group_by == "version":
        return (g["promptName"], g["promptVersion"])
    if group_by == "model":
        return (g["provider"], g["model"])
    return (g["status"],)


def _percentile(durations: list[float], q: float) -> float | None:
    """As documented: the nearest-rank duration's 4 % bucket (unknown durations left out)."""
    if not durations:
        return None
    values = sorted(durations)
    return bucket_value(bucket(values[max(1, math.ceil(q * len(values))) - 1]))


def _brute(
    traces: list[dict[str, Any]], since: int | None, until: int | None, group_by: str, prompt: str | None
) -> dict[tuple[Any, ...], dict[str, Any]]:
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for t in traces:
        at = t["_ms"]
        if (since is not None and at < since) or (until is not None and at >= until):
            continue
        if prompt and t["promptName"] != prompt:
            continue
        g = out.setdefault(
            _group_of(t, group_by),
            {"count": 0, "errors": 0, "in": 0, "out": 0, "cost": 0.0, "priced": 0, "durations": []},
        )
        g["count"] += 1
        g["errors"] += t.get("status") == "error"
        g["in"] += t["inputTokens"]
        g["out"] += t["outputTokens"]
        if t["cost"] is not None:
            g["cost"] += t["cost"]
            g["priced"] += 1
        if t["duration"] is not None:
            g["durations"].append(t["duration"])
    return out


def _rows(result: Any) -> list[dict[str, Any]]:
    data = result.render() if hasattr(result, "render") else result
    return list(data["groups"])


async def _check(app: App, traces: list[dict[str, Any]], since: int | None, until: int | None) -> None:
    for group_by in ("prompt", "version", "model", "status"):
        for prompt in (None, "b"):
            q = StatsQuery(
                group_by=group_by,  # type: ignore[arg-type]
                since=None if since is None else ms_to_rfc3339(since),
                until=None if until is None else ms_to_rfc3339(until),
                prompt_name=prompt,
            )
            got = {_label(r, group_by): r for r in _rows(await app.traces.stats("default", q))}
            want = _brute(traces, since, until, group_by, prompt)
            where = (group_by, prompt, since, until)
            assert set(got) == set(want), where
            for key, w in want.items():
                g = got[key]
                assert g["count"] == w["count"], where
                assert g["errors"] == w["errors"], where
                assert (g["inputTokens"], g["outputTokens"]) == (w["in"], w["out"]), where
                assert g["totalTokens"] == w["in"] + w["out"], where
                if w["priced"]:
                    assert g["cost"] == pytest.approx(w["cost"], abs=1e-7), where
                else:
                    assert g["cost"] is None, where
                assert g["p50Duration"] == _percentile(w["durations"], 0.5), where
                assert g["p95Duration"] == _percentile(w["durations"], 0.95), where


async def _fill(app: App, traces: list[dict[str, Any]]) -> None:
    payloads = [{k: v for k, v in t.items() if k != "_ms"} for t in traces]
    for i in range(0, len(payloads), 250):  # several batches: roll-ups are merged with stored rows
        await app.traces.ingest_many("default", payloads[i : i + 250])


async def test_arbitrary_windows_match_a_brute_force_recount(app: App) -> None:
    rng = random.Random(11)
    traces = _corpus(rng, 1500)
    await _fill(app, traces)
    windows: list[tuple[int | None, int | None]] = [
        (None, None),
        (T0 + D + 7 * M + 1_234, T0 + D + 7 * M + 41_005),  # inside one minute
        (T0 + D + 7 * M - 5, T0 + D + 7 * M + 5),  # across a minute edge, 10 ms
        (T0 + D + H - 61_001, T0 + D + H + 59_999),  # across an hour edge
        (T0 + D - 1, T0 + D + 1),  # across a day edge
        (T0 + D - 3 * H - 17, T0 + 2 * D + 2 * H + 33_333),  # days, hours, ten minutes, minutes, raw
        (T0 + 12_345, None),  # since only: runs to now
        (None, T0 + 2 * D + 4 * H + 7 * M + 3),  # until, long before now
        (T0 + D, T0 + 2 * D),  # exactly one day
        (T0 + D + H, T0 + D + H + M),  # exactly one minute
        (T0 + D + 5_000, T0 + D + 5_000),  # empty
    ]
    windows += [
        (a, a + rng.choice([1, 999, 59_999, 60_001, 11 * M + 7, 3 * H + 1, D + 13]))
        for a in (T0 + rng.randrange(3 * D) for _ in range(12))
    ]
    for since, until in windows:
        await _check(app, traces, since, until)
    # Every trace sits in the window of its own millisecond, alone or with its twins.
    for t in rng.sample(traces, 5):
        await _check(app, traces, t["_ms"], t["_ms"] + 1)


@pytest.mark.sqlite_only
async def test_windows_count_traces_not_yet_rolled_up(app: App) -> None:
    """On SQLite the roll-ups of small writes lag them: half the traces rolled up as they were written (in
    batches), half only noted, every window still counts each trace exactly once; and rolling the rest up
    changes no answer."""
    rng = random.Random(12)
    traces = _corpus(rng, 1000)
    await _fill(app, traces[:500])  # batches of 250: rolled up in their own transactions
    assert _pending(app) == 0
    app.store.rollup_every = 10**9  # type: ignore[attr-defined]
    app.store.rollup_inline_from = 10**9  # type: ignore[attr-defined]
    await _fill(app, traces[500:])
    assert _pending(app) == 500
    windows = [
        (None, None),
        (T0 + D - 3 * H - 17, T0 + 2 * D + 2 * H + 33_333),
        (T0 + D + 7 * M - 5, T0 + D + 7 * M + 5),
        *(
            (a, a + rng.choice([999, 60_001, 11 * M + 7, 3 * H + 1, D + 13]))
            for a in (T0 + rng.randrange(3 * D) for _ in range(6))
        ),
    ]
    for since, until in windows:
        await _check(app, traces, since, until)
    await app.store.roll_up()  # type: ignore[attr-defined]
    assert _pending(app) == 0
    for since, until in windows:
        await _check(app, traces, since, until)


def _pending(app: App) -> int:
    db = sqlite3.connect(app.settings.db_path)
    try:
        return int(db.execute("SELECT count(*) FROM trace_stats_pending").fetchone()[0])
    finally:
        db.close()


async def test_a_window_reads_few_raw_traces(app: App) -> None:
    """Only the sub-minute edges are read from the traces: at most two minutes, whatever the window."""
    for since, until in [(T0 + 1, T0 + 3 * D - 1), (T0 + 59_999, T0 + D + 13 * M + 1), (None, T0 + 7)]:
        segments, raw = plan_window(since, until)
        assert sum(end - start for start, end in raw) < 2 * M
        assert len(segments) <= 1 + 2 * (len(GRAINS) - 1)
        # The segments and raw ranges tile the window exactly: no gap, no overlap.
        pieces = sorted(
            [(s, e) for s, e in raw]
            + [
                (
                    None if first is None else first * grain * M,
                    None if end is None else end * grain * M,
                )
                for grain, first, end in segments
            ],
            key=lambda p: -math.inf if p[0] is None else p[0],
        )
        assert pieces[0][0] == since and pieces[-1][1] == until
        for (_, e), (s, _) in itertools.pairwise(pieces):
            assert e == s


@pytest.mark.sqlite_only
def test_histograms_pack_every_count_width() -> None:
    for hist in ({}, {0: 1}, {5: 255, 9: 1}, {100: 256}, {3: 70_000, 400: 2}, {7: 2**33, 8: 1}):
        assert int_hist(hist_int(pack_hist(hist))) == hist
    assert int_hist(hist_int(pack_hist({1: 300})) + hist_int(pack_hist({1: 5, 2: 1}))) == {1: 305, 2: 1}


def _drop_for_remigration_sqlite(path: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path, isolation_level=None)
    rows = db.execute("SELECT * FROM trace_stats_rollups ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9").fetchall()
    db.execute("DROP TABLE trace_stats_rollups")
    db.execute("CREATE TABLE trace_rollups (x INTEGER)")  # what the migration replaces
    db.execute("DELETE FROM schema_migrations WHERE number = 7")
    assert [m[0] for m in migrations.pending(db)] == [7]
    db.close()
    return rows


def _rollup_rows_sqlite(path: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT * FROM trace_stats_rollups ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9").fetchall()
    finally:
        db.close()


def _pg(url: str, *statements: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        out: list[tuple[Any, ...]] = []
        for sql in statements:
            cur = conn.execute(sql)
            if cur.description:
                out = [tuple(r) for r in cur.fetchall()]
        return out


_PG_ROWS = "SELECT * FROM trace_stats_rollups ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9"


def _same_rows(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> None:
    assert len(a) == len(b) and a
    for x, y in zip(a, b, strict=True):
        assert x[:14] == y[:14] and x[15:] == y[15:], (x, y)
        assert x[14] == pytest.approx(y[14], abs=1e-9)  # the cost sum, added in another order


async def test_the_migration_rolls_up_existing_traces_as_ingest_does(db_path: str, store_kind: str) -> None:
    rng = random.Random(5)
    traces = _corpus(rng, 400)
    async with open_app(Settings(db_path=db_path)) as app:
        await _fill(app, traces)
    if store_kind == "sqlite":
        written = _drop_for_remigration_sqlite(db_path)
    else:
        written = _pg(
            db_path,
            _PG_ROWS,
            "DROP TABLE trace_stats_rollups",
            "DROP FUNCTION agnt_hist_add, agnt_hist_lo",
            "CREATE TABLE trace_rollups (x INTEGER)",
            "CREATE FUNCTION agnt_merge_hist(a JSONB, b JSONB) RETURNS JSONB LANGUAGE sql AS 'SELECT a'",
            "DELETE FROM schema_migrations WHERE number = 7",
        )
    async with open_app(Settings(db_path=db_path)) as app:
        rebuilt = _rollup_rows_sqlite(db_path) if store_kind == "sqlite" else _pg(db_path, _PG_ROWS)
        _same_rows(rebuilt, written)  # the SQL backfill buckets durations exactly as Python does
        await _check(app, traces, T0 + D - 7 * M - 3, T0 + D + H + 61_234)


@pytest.mark.sqlite_only
def test_sparse_histograms_read_back() -> None:
    for hist in ({10: 1, 300: 2}, {b: 1 for b in range(0, 600, 7)}, {5: 3, 900: 255}, {1: 1, 2: 1, 3: 1}):
        blob = pack_hist(hist)
        assert int_hist(hist_int(blob)) == hist
    assert pack_hist({10: 1, 200: 2})[0] == 0  # few buckets over a wide range: the sparse form
