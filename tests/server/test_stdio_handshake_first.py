"""The stdio server answers the handshake before it registers its tools, resources and prompts: the
handshake's answers must be exactly what a fully built server gives, and no other request may ever reach
the SDK before the registrations are in."""

from __future__ import annotations

import json
import subprocess
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
