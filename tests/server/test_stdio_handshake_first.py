"""The stdio server answers the handshake before it opens its store and registers its tools, resources and
prompts: the handshake's answers must be exactly what a fully built server gives, no other request may ever
reach the SDK before the store is open and the registrations are in, and a store that cannot be opened is
still said on stderr with exit status 2."""

from __future__ import annotations

import json
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from agnt_traces.config import Settings
from agnt_traces.server.mcp import build_server, build_server_deferred
from agnt_traces.server.sdk_seams import lowlevel_server
from mcp_helpers import AGNT, call, server_params

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}


def full_and_deferred(tmp_path: Path) -> tuple[Any, Any, Any]:
    settings = Settings(db_path=str(tmp_path / "x.db"))
    full = lowlevel_server(build_server(settings))
    mcp, register = build_server_deferred(settings)
    return full, lowlevel_server(mcp), register


def test_the_handshake_answers_do_not_depend_on_the_registrations(tmp_path: Path) -> None:
    full, deferred, register = full_and_deferred(tmp_path)
    assert deferred.create_initialization_options() == full.create_initialization_options()
    for version in (None, "2025-11-25", "2026-07-28"):
        assert deferred.get_capabilities(protocol_version=version) == full.get_capabilities(protocol_version=version)
    register()
    assert deferred.create_initialization_options() == full.create_initialization_options()


def tool_names(tmp_path: Path) -> set[str]:
    from agnt_traces.server.sdk_seams import registered_tools

    return {tool.name for tool in registered_tools(build_server(Settings(db_path=str(tmp_path / "y.db"))))}


def test_a_request_sent_right_behind_initialize_sees_every_tool(tmp_path: Path) -> None:
    """A client that does not wait for the initialize answer (initialize, initialized and tools/list in
    one write) still gets the whole list."""
    messages = [
        INIT,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "resources/templates/list"},
        {"jsonrpc": "2.0", "id": 4, "method": "prompts/list"},
    ]
    wire = "".join(json.dumps(m) + "\n" for m in messages).encode()
    answers = {}
    with subprocess.Popen(
        [AGNT, "serve", "--db", str(tmp_path / "s.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=server_params(str(tmp_path / "s.db")).env,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(wire)
            proc.stdin.flush()
            while len(answers) < 4:
                reply = json.loads(proc.stdout.readline())
                answers[reply["id"]] = reply
        finally:
            proc.stdin.close()
            proc.wait(timeout=30)
    assert {t["name"] for t in answers[2]["result"]["tools"]} == tool_names(tmp_path)
    assert answers[3]["result"]["resourceTemplates"], answers[3]
    assert answers[4]["result"]["prompts"], answers[4]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_both_protocol_eras_see_every_tool_and_can_call_one(tmp_path: Path, mode: str) -> None:
    with anyio.fail_after(60):
        async with Client(server_params(str(tmp_path / f"{mode}.db")), mode=mode) as client:
            listed = await client.list_tools()
            assert {t.name for t in listed.tools} == tool_names(tmp_path)
            assert (await call(client, "list_traces"))["traces"] == []


def test_a_handshake_line_is_recognised_and_nothing_else_is() -> None:
    from agnt_traces.server.stdio import _is_handshake

    assert _is_handshake(json.dumps(INIT).encode())
    assert _is_handshake(b'{"jsonrpc":"2.0","id":1,"method":"server/discover"}')
    for line in (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
        b'[{"jsonrpc":"2.0","id":1,"method":"initialize"}]',
        b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
        b"not json",
        b'"initialize"',
    ):
        assert not _is_handshake(line), line


def _answer_within(proc: subprocess.Popen[bytes], seconds: float) -> dict[str, Any] | None:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], seconds)
    return json.loads(proc.stdout.readline()) if ready else None


def _locked_database(tmp_path: Path, lock: str) -> tuple[str, sqlite3.Connection]:
    """An existing database, and a connection of this process holding it (``BEGIN`` ``lock``)."""
    db = str(tmp_path / "locked.db")
    subprocess.run([AGNT, "token", "list", "--db", db], check=True, capture_output=True)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute(f"BEGIN {lock}")
    return db, holder


def _serve_and_initialize(db: str) -> subprocess.Popen[bytes]:
    """``agnt-traces serve`` on pipes, sent ``initialize`` (its answer not read yet)."""
    proc = subprocess.Popen(
        [AGNT, "serve", "--db", db],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=server_params(db).env,
    )
    assert proc.stdin is not None
    proc.stdin.write((json.dumps(INIT) + "\n").encode())
    proc.stdin.flush()
    return proc


def test_the_handshake_is_answered_while_the_store_waits_and_requests_wait_for_the_store(tmp_path: Path) -> None:
    """Another process holds the database's write lock, so opening the store waits (its busy timeout): the
    answer to initialize does not, and the request sent behind it is answered once the lock is released."""
    db, holder = _locked_database(tmp_path, "IMMEDIATE")
    with _serve_and_initialize(db) as proc:
        assert proc.stdin is not None and proc.stderr is not None
        try:
            init = _answer_within(proc, 30)
            assert init is not None and init["id"] == 1 and "result" in init  # the lock is still held
            behind = [
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            ]
            proc.stdin.write("".join(json.dumps(m) + "\n" for m in behind).encode())
            proc.stdin.flush()
            assert _answer_within(proc, 1.0) is None  # the store is not open: the request waits
            released = time.monotonic()
            holder.execute("COMMIT")
            listed = _answer_within(proc, 30)
            assert listed is not None and listed["id"] == 2
            assert {t["name"] for t in listed["result"]["tools"]} == tool_names(tmp_path)
            assert time.monotonic() - released < 10
        finally:
            holder.close()
            proc.stdin.close()
            code = proc.wait(timeout=30)
        stderr = proc.stderr.read().decode()
    assert code == 0, stderr
    assert stderr.startswith("agnt-traces: serving MCP over stdio") and "Traceback" not in stderr


def test_a_store_that_cannot_be_opened_is_said_on_stderr_with_status_2(tmp_path: Path) -> None:
    """The handshake was answered before the store opened; the failure ends the server as it always did:
    one line naming the problem, exit status 2, no traceback, no answer to the requests that waited."""
    messages = [
        INIT,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    db = str(tmp_path / "s.db")
    done = subprocess.run(
        [AGNT, "serve", "--db", db],
        input="".join(json.dumps(m) + "\n" for m in messages).encode(),
        capture_output=True,
        env={**server_params(db).env, "AGNT_TRACES_READERS": "0"},  # refused when the store opens
        timeout=60,
    )
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["id"] for a in answers] == [1]
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == ["error: AGNT_TRACES_READERS=0 is out of range: use 1 to 64"]


def test_what_the_handshake_needs_loads_no_store_records_or_services() -> None:
    """The modules the stdio server imports before it answers `initialize` (the command line, the settings,
    the server and its stdio transport) stay clear of the store, the records and the services: importing
    them is what the late opening spares the handshake."""
    code = (
        "import sys\n"
        "import agnt_traces.cli, agnt_traces.cli.serve, agnt_traces.config, agnt_traces.store.dbfile\n"
        "import agnt_traces.server.stdio, agnt_traces.server.mcp\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('agnt_traces'))))\n"
    )
    loaded = set(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    )
    assert "agnt_traces.server.stdio" in loaded
    heavy = {"agnt_traces.app", "agnt_traces.models", "agnt_traces.golden_models", "agnt_traces.store.base"}
    assert not loaded & heavy, loaded & heavy
    assert not {m for m in loaded if m.startswith(("agnt_traces.services", "agnt_traces.store.sqlite"))}


@pytest.mark.parametrize("stdin", ["nothing", "initialize only"])
def test_the_end_of_input_before_the_store_opened_still_opens_it(tmp_path: Path, stdin: str) -> None:
    """`serve < /dev/null` (or a client that leaves right after the handshake) creates a new database, and a
    store that cannot be opened is still said, with exit status 2, not skipped."""
    wire = b"" if stdin == "nothing" else (json.dumps(INIT) + "\n").encode()
    db = str(tmp_path / "new.db")
    done = subprocess.run([AGNT, "serve", "--db", db], input=wire, capture_output=True, env=server_params(db).env)
    assert done.returncode == 0, done.stderr
    tables = sqlite3.connect(db).execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    assert tables > 10  # migrated, as before
    env = {**server_params(db).env, "AGNT_TRACES_READERS": "0"}
    refused = subprocess.run([AGNT, "serve", "--db", db], input=wire, capture_output=True, env=env, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr.decode().splitlines() == ["error: AGNT_TRACES_READERS=0 is out of range: use 1 to 64"]


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_the_store_waits_on_a_lock_ends_the_server_as_it_asks(
    tmp_path: Path, signum: int, status: int
) -> None:
    """Opening waits on SQLite (another process holds the database), which cannot be interrupted: the server
    still ends within a couple of seconds with the signal's status, not after the shutdown watchdog's 4 s."""
    db, holder = _locked_database(tmp_path, "EXCLUSIVE")
    try:
        with _serve_and_initialize(db) as proc:
            assert proc.stdin is not None and proc.stderr is not None
            assert (_answer_within(proc, 30) or {}).get("id") == 1
            time.sleep(0.5)  # the store is opening: waiting on the lock
            sent = time.monotonic()
            proc.send_signal(signum)
            code = proc.wait(timeout=30)
            took = time.monotonic() - sent
            assert "Traceback" not in proc.stderr.read().decode()
            proc.stdin.close()
    finally:
        holder.close()
    assert code == status
    assert took < 3.5, took
