"""Spawn → initialize answered: ``agnt-traces serve`` against a bare MCPServer with one tool.

Both are launched the way an MCP client launches them (a subprocess speaking JSON-RPC on stdio), in
alternation, in one run on the same machine. Prints the medians and the ratio (target ≤ 1.3).

    .venv/bin/python bench/bench_startup.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE = """
from mcp.server.mcpserver import MCPServer
mcp = MCPServer("bare")

@mcp.tool()
def ping() -> str:
    return "pong"

mcp.run("stdio")
"""

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"},
    },
}


def time_to_initialize(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin and proc.stdout
    proc.stdin.write((json.dumps(INIT) + "\n").encode())
    proc.stdin.flush()
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.stdin.close()
    proc.wait(timeout=10)
    reply = json.loads(line)
    assert reply.get("id") == 1 and "result" in reply, reply
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    agnt = str(Path(sys.executable).parent / "agnt-traces")
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare.py"
        bare.write_text(BARE)
        db = str(Path(tmp) / "traces.db")
        ours_cmd = [agnt, "serve", "--db", db]
        bare_cmd = [sys.executable, str(bare)]
        time_to_initialize(ours_cmd)  # warm the file cache and create the database once
        time_to_initialize(bare_cmd)
        ours, base = [], []
        for _ in range(args.rounds):
            base.append(time_to_initialize(bare_cmd))
            ours.append(time_to_initialize(ours_cmd))
    b, o = statistics.median(base), statistics.median(ours)
    print(f"bare MCPServer, one tool : median {b * 1000:7.1f} ms  (min {min(base) * 1000:.1f})")
    print(f"agnt-traces serve        : median {o * 1000:7.1f} ms  (min {min(ours) * 1000:.1f})")
    print(f"ratio                    : {o / b:.2f}  (target ≤ 1.30)")


if __name__ == "__main__":
    main()
