"""``agnt-traces migrate-store``: SQLite ⇄ PostgreSQL, killed in the middle, then run again to the end."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from agnt_traces.app import open_app
from agnt_traces.config import Settings
from agnt_traces.services.queries import StatsQuery, TraceQuery
from agnt_traces.tokens import hash_token
from factories import trace_payload

pytestmark = pytest.mark.anyio

TRACES = 400
CONTENT = {
    "blocks": [{"id": "intro", "role": "system", "content": "Hi {{ name }}."}],
    "variables": [{"name": "name", "required": True}],
    "model": {"provider": "agnt-local", "name": "echo"},
}


async def _fill(db: str) -> dict[str, Any]:
    """A store with a bit of everything: two tenants, tokens, prompts with history, traces, a session."""
    async with open_app(Settings(db_path=db, tenant="acme")) as app:
        await app.store.create_token("acme", "ci", hash_token("tok-acme"))
        revoked = await app.store.create_token("globex", "old", hash_token("tok-old"))
        await app.store.revoke_token(revoked.id)
        await app.prompts.upsert("acme", "greet", CONTENT, "says hi")
        await app.prompts.publish("acme", "greet")
        edited = {**CONTENT, "blocks": [{"id": "intro", "role": "system", "content": "Hello {{ name }}!"}]}
        await app.prompts.upsert("acme", "greet", edited, None)
        await app.prompts.publish("acme", "greet", label="staging")
        await app.store.move_label("acme", "greet", "production", 2, "roll forward")
        run = await app.prompts.run("acme", "greet", variables={"name": "Ada"}, messages=[])
        session = (await app.playground.open("acme", run["trace"]["id"])).render()
        (await app.playground.run("acme", session["id"])).render()
        for i in range(TRACES):
            tenant = "acme" if i % 3 else "globex"
            await app.traces.ingest(
                tenant,
                trace_payload(
                    createdAt=f"2026-02-0{1 + i % 5}T{i % 24:02d}:00:00Z",
                    output=f"answer number {i}",
                    tags=[f"t{i % 4}", "all"],
                    cost=None if i % 7 == 0 else 0.001 * (i % 5),
                    duration=None if i % 11 == 0 else 0.1 * (i % 9),
                ),
            )
        return {"session": session["id"]}


async def _snapshot(db: str) -> dict[str, Any]:
    async with open_app(Settings(db_path=db)) as app:
        out: dict[str, Any] = {}
        for tenant in ("acme", "globex"):
            rows = []
            cursor = None
            while True:
                page = (await app.traces.list(tenant, TraceQuery(limit=200, cursor=cursor, sort="cost"))).render()
                rows += page["traces"]
                cursor = page["nextCursor"]
                if not cursor:
                    break
            out[tenant] = {
                "traces": rows,
                "search": (await app.traces.list(tenant, TraceQuery(query="number 17", limit=200))).render()["traces"],
                "tagged": (await app.traces.list(tenant, TraceQuery(tags=["t1"], limit=200))).render()["traces"],
                # Groups of equal count come in storage order: compare them as a set.
                "stats": sorted(
                    (await app.traces.stats(tenant, StatsQuery(group_by="version"))).render()["groups"], key=repr
                ),
                "prompts": [(p.name, p.draft_etag, p.versions, p.labels) for p in await app.store.list_prompts(tenant)],
                "history": await app.store.label_history(tenant, "greet"),
            }
        out["token"] = await app.store.tenant_for_token(hash_token("tok-acme"))
        out["revoked"] = await app.store.tenant_for_token(hash_token("tok-old"))
        out["sessions"] = [(s.id, s.revision) for s in await app.store.list_sessions("acme", 10)]
        return out


def _count(db: str) -> int:
    try:
        if db.startswith("postgresql://"):
            with psycopg.connect(db) as conn:
                row = conn.execute("SELECT count(*) FROM traces").fetchone()
        else:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                row = conn.execute("SELECT count(*) FROM traces").fetchone()
    except (psycopg.Error, sqlite3.Error):
        return 0  # not created yet
    return int(row[0]) if row else 0


def _migrate(source: str, target: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agnt_traces", "migrate-store", "--from", source, "--to", target, "--batch", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src"), **env},
    )


@pytest.mark.parametrize("direction", ["sqlite_to_postgres", "postgres_to_sqlite"])
async def test_a_killed_copy_continues_and_verifies(direction: str, pg_url: str, tmp_path: Path) -> None:
    lite = str(tmp_path / "traces.db")
    source, target = (lite, pg_url) if direction == "sqlite_to_postgres" else (pg_url, lite)
    await _fill(source)
    total = _count(source)
    assert total == TRACES + 2  # the run and the playground's trace are traces too

    first = _migrate(source, target, AGNT_TRACES_MIGRATE_BATCH_DELAY_MS="40")
    deadline = time.monotonic() + 60
    while _count(target) < 30:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the copy did not start"
        await anyio.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    stopped_at = _count(target)
    assert 0 < stopped_at < total, stopped_at

    second = _migrate(source, target)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "DIFFERENT" not in out and "verified" in err
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert lines["traces"][1:3] == [str(total), str(total)] and lines["traces"][-1] == "ok"
    for table in ("tenants", "api_tokens", "contents", "prompts", "prompt_versions", "prompt_labels"):
        assert lines[table][-1] == "ok" and int(lines[table][1]) > 0, lines[table]
    for table in ("prompt_label_history", "trace_tags", "trace_stats_rollups", "sessions"):
        assert lines[table][-1] == "ok" and int(lines[table][1]) > 0, lines[table]
    assert _count(target) == total

    # What the services see is the same on both sides, in the same order, found by the same searches.
    assert await _snapshot(target) == await _snapshot(source)

    # Running it once more copies nothing and still verifies.
    third = _migrate(source, target)
    out, err = third.communicate(timeout=120)
    assert third.returncode == 0, err
    assert _count(target) == total


async def test_a_copy_that_differs_is_reported(pg_url: str, tmp_path: Path) -> None:
    lite = str(tmp_path / "traces.db")
    async with open_app(Settings(db_path=lite)) as app:
        await app.traces.ingest("default", trace_payload())
    done = _migrate(lite, pg_url)
    done.communicate(timeout=120)
    assert done.returncode == 0
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE traces SET cost = 42")
    again = _migrate(lite, pg_url)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 1
    assert "DIFFERENT" in out and "traces" in err
