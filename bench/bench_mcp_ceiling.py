"""How fast the MCP SDK alone answers ``tools/call``: the ceiling MCP ingest lives under.

    .venv/bin/python bench/bench_mcp_ceiling.py [--seconds 10] [--clients 8] [--runs 2]

A bare ``MCPServer`` with one tool, ``ingest_trace(trace: dict) -> dict``, that takes the same arguments as
ours and returns an id without looking at them, is driven exactly as ``bench_ingest.py``'s ``mcp-http`` and
``mcp-stdio`` phases drive ``agnt-traces serve`` (the same client, corpus and calls in flight), alternated with
it: over streamable HTTP (the SDK's app under uvicorn, JSON answers) and over stdio (``mcp.run("stdio")``).
Prints calls/s and the server's CPU per call for each: the difference is what our own work (authentication,
checks, validation, the group-committed write) costs over the SDK's own handling of a call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import StdioServer, create_token, phase_mcp_http, phase_mcp_stdio, start_http, start_server

TOOL = """
import itertools
from typing import Any

from mcp.server.mcpserver import MCPServer

mcp = MCPServer("bare")
ids = itertools.count()


@mcp.tool()
def ingest_trace(trace: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"t{next(ids)}", "created": True}
"""

BARE_HTTP = (
    TOOL
    + """
import socket
import sys

import uvicorn

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print(f"serving on http://127.0.0.1:{sock.getsockname()[1]} ", file=sys.stderr, flush=True)
config = uvicorn.Config(mcp.streamable_http_app(json_response=True), log_level="warning")
uvicorn.Server(config).run(sockets=[sock])
"""
)

BARE_STDIO = TOOL + '\nmcp.run("stdio")\n'


def start_bare(folder: str) -> tuple[subprocess.Popen[str], str]:
    script = Path(folder) / "bare_http.py"
    script.write_text(BARE_HTTP)
    return start_server([sys.executable, str(script)], dict(os.environ))


def _line(name: str, res: object) -> None:
    n = len(res.acked)  # type: ignore[attr-defined]
    rate = n / res.elapsed  # type: ignore[attr-defined]
    cpu = res.cpu * 1000 / max(n, 1)  # type: ignore[attr-defined]
    print(f"  {name:<22} {rate:8,.0f} calls/s  server CPU {cpu:5.2f} ms a call  failed {res.failures}", flush=True)  # type: ignore[attr-defined]


async def run_stdio(args: argparse.Namespace, folder: str, run_no: int) -> None:
    script = Path(folder) / "bare_stdio.py"
    script.write_text(BARE_STDIO)
    bare = await StdioServer.spawn([sys.executable, str(script)], dict(os.environ))
    _line("bare MCPServer, stdio", await phase_mcp_stdio("", "", args, server=bare))
    db = os.path.join(folder, f"stdio-{run_no}.db")
    _line("agnt-traces, stdio", await phase_mcp_stdio(db, "ceiling", args))


async def run(args: argparse.Namespace, folder: str, run_no: int) -> None:
    for name in ("bare MCPServer, HTTP", "agnt-traces, HTTP"):
        if name.startswith("bare"):
            proc, base = start_bare(folder)
            token = "unused"
        else:
            db = os.path.join(folder, f"traces-{run_no}.db")
            token = create_token(db, "ceiling")
            proc, base = start_http(db)
        try:
            res = await phase_mcp_http(base, token, "ceiling", proc.pid, args)
        finally:
            proc.terminate()
            proc.wait(30)
        _line(name, res)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agnt-bench-ceiling-") as folder:
        for i in range(args.runs):
            print(f"run {i + 1}/{args.runs}: MCP tools/call ingest_trace, {args.clients} calls in flight")
            asyncio.run(run(args, folder, i))
            asyncio.run(run_stdio(args, folder, i))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
