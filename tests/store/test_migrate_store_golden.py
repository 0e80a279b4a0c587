"""``migrate-store`` carries golden cases, gates, replays, the call cache and version gate records both ways:
tenants matched by name (their ids differ on the two sides), a copy stopped before these tables continues,
and a target that differs in one of them is reported."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from agnt_traces.app import App, open_app
from agnt_traces.config import Settings
from agnt_traces.models import PromptContent
from agnt_traces.store.transfer import verify
from golden_helpers import PHRASE, content_of, variables
from modelserver import ModelServer

pytestmark = pytest.mark.anyio

GOLDEN_TABLES = ("golden_cases", "prompt_gates", "replays", "call_cache", "version_gates")
CHECKS = [{"type": "contains", "value": PHRASE}]
ECHO = {"blocks": [{"id": "a", "role": "user", "content": "hi"}], "model": {"provider": "agnt-local", "name": "echo"}}


async def _replay(app: App, tenant: str) -> dict[str, Any]:
    started = await app.golden.run(tenant, "support")
    with anyio.fail_after(60):
        while True:
            view = await app.golden.get(tenant, started.id, wait_seconds=5)
            if view.status != "running":
                return view.render()


async def _fill(db: str, server: ModelServer) -> None:
    """acme: cases, a gate, a failed and a passed replay, a version published by override and one through
    the gate, a playground call in the cache; globex: a case and a gate of its own."""
    async with open_app(Settings(db_path=db, tenant="acme", model_timeout=5.0)) as app:
        await app.prompts.upsert("acme", "support", content_of(server))
        await app.prompts.publish("acme", "support")
        ids = [(await app.prompts.run("acme", "support", variables=variables(i)))["trace"]["id"] for i in range(3)]
        await app.golden.pin("acme", "support", trace_ids=ids, required=True, checks=CHECKS)
        await app.golden.set_gate("acme", "support", {"required_pass": True})
        await app.prompts.upsert("acme", "support", content_of(server, with_signoff=False))
        assert (await _replay(app, "acme"))["status"] == "failed"
        await app.golden.publish("acme", "support", override_reason="hotfix approved", note="v2")
        await app.prompts.upsert("acme", "support", content_of(server, temperature=0.5))
        passed = await _replay(app, "acme")
        assert passed["status"] == "passed"
        assert (await app.golden.publish("acme", "support"))["gate"]["replayId"] == passed["id"]
        session = (await app.playground.open("acme", ids[0])).render()
        (await app.playground.run("acme", session["id"])).render()

        await app.prompts.upsert("globex", "support", ECHO)
        await app.prompts.publish("globex", "support")
        run = await app.prompts.run("globex", "support", variables={})
        await app.golden.pin("globex", "support", trace_ids=[run["trace"]["id"]])
        await app.golden.set_gate("globex", "support", {"required_pass": False})


async def _snapshot(db: str) -> dict[str, Any]:
    """What the golden features read, through the store, per tenant."""
    async with open_app(Settings(db_path=db)) as app:
        out: dict[str, Any] = {}
        for tenant in ("acme", "globex"):
            replays = await app.store.list_replays(tenant, "support", limit=100)
            out[tenant] = {
                "golden": await app.store.list_golden(tenant, "support"),
                "gate": await app.store.get_gate(tenant, "support"),
                "replays": replays,
                "one": [await app.store.get_replay(tenant, r.id) for r in replays],
                "version_gates": await app.store.version_gates(tenant, "support"),
                "versions": (await app.prompts.get(tenant, "support"))["versions"],
            }
        return out


def _rows(db: str, sql: str) -> list[tuple[Any, ...]]:
    if db.startswith("postgresql://"):
        with psycopg.connect(db) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
    with sqlite3.connect(db) as lite:
        return lite.execute(sql).fetchall()


def _execute(db: str, sql: str) -> None:
    if db.startswith("postgresql://"):
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(sql)
        return
    lite = sqlite3.connect(db, isolation_level=None)
    try:
        lite.execute(sql)
    finally:
        lite.close()


def _migrate(source: str, target: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "agnt_traces", "migrate-store", "--from", source, "--to", target, "--batch", "5"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("direction", ["sqlite_to_postgres", "postgres_to_sqlite"])
async def test_golden_tables_copy_both_ways_resume_and_verify(
    direction: str, pg_url: str, tmp_path: Path, model_server: ModelServer
) -> None:
    lite = str(tmp_path / "traces.db")
    source, target = (lite, pg_url) if direction == "sqlite_to_postgres" else (pg_url, lite)
    await _fill(source, model_server)
    async with open_app(Settings(db_path=target)) as early:  # globex gets the first tenant id in the target
        await early.store.put_content("globex", PromptContent.model_validate(ECHO))
    source_tenants = dict(_rows(source, "SELECT name, id FROM tenants"))
    target_tenants = dict(_rows(target, "SELECT name, id FROM tenants"))
    assert source_tenants["acme"] == target_tenants["globex"]  # a copy by id would swap the tenants' rows
    expected = await _snapshot(source)
    counts = {t: _rows(source, f"SELECT count(*) FROM {t}")[0][0] for t in GOLDEN_TABLES}
    assert all(counts.values()), counts
    assert counts["golden_cases"] == 4 and counts["replays"] == 2 and counts["version_gates"] == 2

    code, out, err = _migrate(source, target)
    assert code == 0, err
    for table in GOLDEN_TABLES:
        assert any(line.startswith(table) and line.endswith(" ok") for line in out.splitlines()), out
    assert await _snapshot(target) == expected
    acme_cache = _rows(
        source, f"SELECT request_hash, trace_id FROM call_cache WHERE tenant_id = {source_tenants['acme']}"
    )
    async with open_app(Settings(db_path=target)) as app:
        for request_hash, trace_id in acme_cache:
            assert await app.store.cache_get("acme", bytes(request_hash)) == trace_id
            assert await app.store.cache_get("globex", bytes(request_hash)) is None

    target_tenants = dict(_rows(target, "SELECT name, id FROM tenants"))
    assert target_tenants["acme"] != source_tenants["acme"]

    # A copy stopped before these tables (or within them) is continued by running it again; nothing doubles.
    for table in ("replays", "version_gates", "call_cache"):
        _execute(target, f"DELETE FROM {table}")
    _execute(target, f"DELETE FROM golden_cases WHERE tenant_id = {target_tenants['acme']}")
    code, out, err = _migrate(source, target)
    assert code == 0, err
    code, out, err = _migrate(source, target)
    assert code == 0, err
    assert {t: _rows(target, f"SELECT count(*) FROM {t}")[0][0] for t in GOLDEN_TABLES} == counts
    assert await _snapshot(target) == expected


async def test_a_golden_table_that_differs_is_reported(pg_url: str, tmp_path: Path, model_server: ModelServer) -> None:
    lite = str(tmp_path / "traces.db")
    await _fill(lite, model_server)
    code, _, err = _migrate(lite, pg_url)
    assert code == 0, err
    assert all(c.ok for c in verify(lite, pg_url))
    tampered: list[str] = []
    for table, sql in (
        ("replays", "UPDATE replays SET status = 'error'"),
        ("prompt_gates", "UPDATE prompt_gates SET policy = '{}'"),
        ("version_gates", "DELETE FROM version_gates"),
        ("golden_cases", "UPDATE golden_cases SET trace_id = trace_id || 'x'"),
        ("call_cache", "DELETE FROM call_cache"),
    ):
        _execute(pg_url, sql)
        tampered.append(table)
        assert sorted(c.table for c in verify(lite, pg_url) if not c.ok) == sorted(tampered)
    code, out, _ = _migrate(lite, pg_url)
    assert code == 1 and all(f"{t} " in out for t in tampered)
