"""trace_stats from hourly roll-ups plus raw edges equals a brute-force count over the traces."""

from __future__ import annotations

import math
import random
import sqlite3

import pytest

from agnt_traces.app import App, open_app
from agnt_traces.config import Settings
from agnt_traces.ids import ms_to_rfc3339
from agnt_traces.services.queries import StatsQuery
from agnt_traces.store import migrations
from factories import trace_payload

pytestmark = [pytest.mark.anyio, pytest.mark.both_stores]
H = 3_600_000
T0 = 1_790_000_000_000 // H * H  # an hour boundary


def brute(traces: list[dict[str, object]], since: int | None, until: int | None, key: str) -> dict[object, dict]:
    out: dict[object, dict] = {}
    for t in traces:
        at = t["_ms"]
        if (since is not None and at < since) or (until is not None and at >= until):
            continue
        g = out.setdefault(t[key], {"count": 0, "errors": 0, "tokens": 0, "durations": []})
        g["count"] += 1
        g["errors"] += t["status"] == "error"
        g["tokens"] += t["inputTokens"] + t["outputTokens"]
        g["durations"].append(t["duration"])
    return out


def nearest_rank(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[max(1, math.ceil(q * len(values))) - 1]


async def test_windows_across_hours_match_brute_force(app: App) -> None:
    rng = random.Random(7)
    traces = []
    for i in range(600):
        at = T0 + rng.randrange(5 * H)
        t = trace_payload(
            createdAt=ms_to_rfc3339(at),
            promptName=rng.choice(["a", "b", "c"]),
            duration=round(rng.lognormvariate(0, 1), 4),
            inputTokens=rng.randrange(100),
            outputTokens=rng.randrange(50),
            output=f"o{i}",
            **({"status": "error", "error": {"type": "E", "message": "m"}} if rng.random() < 0.1 else {}),
        )
        t["_ms"] = at
        traces.append(t)
    await app.traces.ingest_many("default", [{k: v for k, v in t.items() if k != "_ms"} for t in traces])
    windows = [
        (None, None),
        (T0 + H, T0 + 3 * H),
        (T0 + H // 2, T0 + 3 * H + 17),
        (T0 + 100, T0 + 900_000),
        (T0 + 2 * H + 5, None),
        (None, T0 + 4 * H - 1),
    ]
    for since, until in windows:
        q = StatsQuery(
            group_by="prompt",
            since=ms_to_rfc3339(since) if since else None,
            until=ms_to_rfc3339(until) if until else None,
        )
        got = {g["group"]["promptName"]: g for g in (await app.traces.stats("default", q)).render()["groups"]}
        want = brute(traces, since, until, "promptName")
        assert set(got) == set(want), (since, until)
        for name, w in want.items():
            g = got[name]
            assert (g["count"], g["errors"], g["totalTokens"]) == (w["count"], w["errors"], w["tokens"])
            assert g["p50Duration"] == pytest.approx(nearest_rank(w["durations"], 0.5), rel=0.025)
            assert g["p95Duration"] == pytest.approx(nearest_rank(w["durations"], 0.95), rel=0.025)


@pytest.mark.sqlite_only
async def test_existing_traces_are_rolled_up_by_the_migration(db_path: str) -> None:
    async with open_app(Settings(db_path=db_path)) as app:
        for i in range(5):
            await app.traces.ingest("default", trace_payload(output=f"o{i}", createdAt=ms_to_rfc3339(T0 + i * H)))
        before = (await app.traces.stats("default", StatsQuery(group_by="status"))).render()
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("DROP TABLE trace_stats_rollups")
    db.execute("CREATE TABLE trace_rollups (x INTEGER)")  # what the migration replaces
    db.execute("DELETE FROM schema_migrations WHERE number = 7")
    assert [m[0] for m in migrations.pending(db)] == [7]
    db.close()
    async with open_app(Settings(db_path=db_path)) as app:
        after = (await app.traces.stats("default", StatsQuery(group_by="status"))).render()
    assert after == before and after["groups"][0]["count"] == 5
