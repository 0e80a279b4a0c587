"""The LiteLLM callback loses nothing silently: a short script that exits right after its async calls, and
a batch with one trace the server refuses. Every call is recorded, or counted as dropped with a warning."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from agnt_traces.app import open_app
from agnt_traces.config import Settings
from agnt_traces.services.queries import TraceQuery
from factories import make_token
from modelserver import ModelServer

pytestmark = pytest.mark.anyio

TESTS = str(Path(__file__).resolve().parents[1])
SRC = str(Path(__file__).resolve().parents[2] / "src")
CALLS = 5

# The short-script pattern: five concurrent async calls in asyncio.run, then the interpreter exits.
# The report is printed by an atexit hook registered before the callback exists, so it runs after the
# callback's own exit flush (atexit runs last-in, first-out) and sees the final counts.
SHORT_SCRIPT = """
import asyncio, atexit, json, sys
sys.path.insert(0, {tests!r})
import netguard
netguard.install()
report = {{}}
atexit.register(lambda: print(json.dumps({{**report, "sent": cb.sent, "dropped": cb.dropped,
                                            "network": netguard.violations}}), flush=True))

import litellm
from agnt_traces.integrations.litellm import AgntTracesCallback

cb = AgntTracesCallback(**json.loads(sys.argv[1]))
litellm.callbacks = [cb]

async def main():
    await asyncio.gather(*(
        litellm.acompletion(model="openai/gpt-4o-mini", api_base={api_base!r}, api_key="sk-x",
                            messages=[{{"role": "user", "content": f"question {{i}}"}}])
        for i in range({calls})
    ))
    if {aflush!r}:
        report["complete"] = await cb.aflush()

asyncio.run(main())
"""


def run_short_script(tmp_path: Path, server: ModelServer, target: dict[str, Any], aflush: bool) -> dict[str, Any]:
    script = tmp_path / "short_script.py"
    script.write_text(SHORT_SCRIPT.format(tests=TESTS, api_base=server.openai_base, calls=CALLS, aflush=aflush))
    env = {**os.environ, "PYTHONPATH": SRC, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    out = subprocess.run(
        [sys.executable, str(script), json.dumps(target)], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    report["stderr"] = out.stderr
    return report


@contextmanager
def serve_http(db_path: str) -> Iterator[str]:
    """A real ``agnt-traces serve --http`` process on a free loopback port; yields its URL."""
    env = {**os.environ, "PYTHONPATH": SRC, "AGNT_TRACES_LOG_LEVEL": "warning"}
    cmd = [sys.executable, "-m", "agnt_traces", "serve", "--http", "--port", "0", "--db", db_path]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"serving on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        yield match.group(1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
        if proc.stderr:
            proc.stderr.close()


async def stored_litellm_traces(db_path: str, tenant: str) -> list[dict[str, Any]]:
    async with open_app(Settings(db_path=db_path)) as app:
        rows: list[dict[str, Any]] = (await app.traces.list(tenant, TraceQuery(source="litellm", limit=50))).render()[
            "traces"
        ]
    return rows


def assert_nothing_lost_silently(report: dict[str, Any], stored: int) -> None:
    assert report["network"] == []
    assert report["sent"] == stored
    assert report["sent"] + report["dropped"] == CALLS, report  # every call: recorded or counted
    if report["dropped"]:
        assert "counted as dropped" in report["stderr"] and "aflush" in report["stderr"]


# -- the short script ---------------------------------------------------------------------------------------


async def test_short_script_with_aflush_records_every_call_locally(tmp_path: Path, model_server: ModelServer) -> None:
    db = str(tmp_path / "traces.db")
    report = await anyio.to_thread.run_sync(
        run_short_script, tmp_path, model_server, {"db": db, "tenant": "acme"}, True
    )
    rows = await stored_litellm_traces(db, "acme")
    assert report["complete"] is True
    assert (report["sent"], report["dropped"]) == (CALLS, 0)
    assert sorted(r["outputPreview"] for r in rows) == [f"echo: question {i}" for i in range(CALLS)]
    assert report["network"] == []


async def test_short_script_with_aflush_records_every_call_on_a_team_server(
    tmp_path: Path, model_server: ModelServer
) -> None:
    db = str(tmp_path / "server.db")
    token = await make_token(db, "acme")
    with serve_http(db) as url:
        target = {"url": url, "token": token, "tenant": "acme"}
        report = await anyio.to_thread.run_sync(run_short_script, tmp_path, model_server, target, True)
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
            r = await client.get(f"{url}/api/v1/tenants/acme/traces", params={"source": "litellm", "limit": 50})
    rows = r.json()["traces"]
    assert report["complete"] is True
    assert (report["sent"], report["dropped"]) == (CALLS, 0)
    assert sorted(t["outputPreview"] for t in rows) == [f"echo: question {i}" for i in range(CALLS)]


async def test_short_script_without_aflush_never_loses_a_call_silently(
    tmp_path: Path, model_server: ModelServer
) -> None:
    """No aflush at all: what LiteLLM had not logged when the loop closed is logged at exit, and what it
    lost (cancelled with the loop) is counted as dropped with a warning that says what to do. (The
    sender's side of this is the same for a team server.)"""
    db = str(tmp_path / "traces.db")
    report = await anyio.to_thread.run_sync(
        run_short_script, tmp_path, model_server, {"db": db, "tenant": "acme"}, False
    )
    assert_nothing_lost_silently(report, len(await stored_litellm_traces(db, "acme")))


# -- a batch with a refused trace ------------------------------------------------------------------------


def logged_call(i: int, tags: list[str]) -> dict[str, Any]:
    """LiteLLM's callback kwargs for one finished call."""
    return {
        "standard_logging_object": {
            "model": "gpt-4o-mini",
            "custom_llm_provider": "openai",
            "messages": [{"role": "user", "content": f"secret question {i}"}],
            "prompt_tokens": 10,
            "completion_tokens": 2,
            "response_cost": 0.001,
            "startTime": 1_790_000_000.0 + i,
            "endTime": 1_790_000_000.5 + i,
            "request_tags": tags,
        },
        "litellm_params": {"metadata": {}},
        "litellm_call_id": f"call-{i}",
    }


@contextmanager
def write_lock(db_path: str) -> Iterator[None]:
    """Hold the database's write lock: the callback's first delivery waits, so the calls logged meanwhile
    queue up and go out together as one batch."""
    conn = sqlite3.connect(db_path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
    finally:
        conn.rollback()
        conn.close()


def feed(callback: Any) -> None:
    for i in range(5):
        tags = ["x" * 200] if i == 2 else ["app"]  # a tag over 128 characters: that trace is invalid
        callback.log_success_event(logged_call(i, tags), None, None, None)


@pytest.mark.parametrize("team_server", [False, True], ids=["local", "http"])
async def test_a_refused_trace_is_dropped_alone_with_one_warning(
    tmp_path: Path, team_server: bool, caplog: pytest.LogCaptureFixture
) -> None:
    from agnt_traces.integrations.litellm import AgntTracesCallback

    db = str(tmp_path / "traces.db")
    token = await make_token(db, "acme")  # also creates the database
    caplog.set_level(logging.WARNING, logger="agnt_traces.integrations.litellm")
    with serve_http(db) if team_server else _nothing() as url:
        target = {"url": url, "token": token, "timeout": 30.0} if team_server else {"db": db}
        cb = AgntTracesCallback(tenant="acme", **target)
        try:
            with write_lock(db):
                feed(cb)
            assert await anyio.to_thread.run_sync(cb.wait_handled, 5, 30.0)
        finally:
            cb.close()
    assert (cb.sent, cb.dropped) == (4, 1)
    rows = await stored_litellm_traces(db, "acme")
    assert len(rows) == 4 and all(r["tags"] == ["app"] for r in rows)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "refused 1 of" in warnings[0] and "tags" in warnings[0]
    assert "x" * 50 not in warnings[0] and "secret question" not in warnings[0]  # the reason, never the payload


@contextmanager
def _nothing() -> Iterator[None]:
    yield None
