"""Spawn → initialize answered: ``agnt-traces serve`` against a bare MCPServer with one tool.

Both are launched the way an MCP client launches them (a subprocess speaking JSON-RPC on stdio), in
alternation, in one run on the same machine. Prints the medians and the ratio (target ≤ 1.10), of the
wall time and of the CPU time the process used until it answered (user + system, from ``/proc``: far less
sensitive than wall time to other work on a shared machine); then the same up to the answer to the
client's next request, ``tools/list`` (sent as a client does, after ``notifications/initialized``).

``--before SRC`` adds ``agnt-traces serve`` running the package in SRC (e.g. an export of an older
commit's ``src``), in the same alternation: before and after under the same load.

    .venv/bin/python bench/bench_startup.py [--rounds 9] [--before SRC]
"""

from __future__ import annotations

import argparse
import json
import os
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


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


LIST = [{"jsonrpc": "2.0", "method": "notifications/initialized"}, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]


def time_to_initialize(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float, float]:
    """(wall seconds from spawn to the initialize answer, CPU seconds the process used until then, the same
    two up to the tools/list answer)."""
    start = time.perf_counter()
    with subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    ) as proc:
        assert proc.stdin and proc.stdout
        proc.stdin.write((json.dumps(INIT) + "\n").encode())
        proc.stdin.flush()
        line = proc.stdout.readline()
        elapsed = time.perf_counter() - start
        cpu = _cpu_seconds(proc.pid)
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in LIST).encode())
        proc.stdin.flush()
        listed = proc.stdout.readline()
        elapsed_list = time.perf_counter() - start
        cpu_list = _cpu_seconds(proc.pid)
        proc.stdin.close()
        proc.wait(timeout=10)
    reply = json.loads(line)
    assert reply.get("id") == 1 and "result" in reply, reply
    assert json.loads(listed).get("id") == 2, listed
    return elapsed, cpu, elapsed_list, cpu_list


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--before", metavar="SRC", help="also time agnt-traces serve from this src directory")
    args = parser.parse_args()
    agnt = str(Path(sys.executable).parent / "agnt-traces")
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare.py"
        bare.write_text(BARE)
        db = str(Path(tmp) / "traces.db")
        runs: dict[str, tuple[list[str], dict[str, str] | None]] = {
            "bare MCPServer, one tool": ([sys.executable, str(bare)], None),
            "agnt-traces serve": ([agnt, "serve", "--db", db], None),
        }
        if args.before:
            before_db = str(Path(tmp) / "before.db")
            runs["agnt-traces serve, before"] = (
                [agnt, "serve", "--db", before_db],
                {**os.environ, "PYTHONPATH": args.before},
            )
        for cmd, env in runs.values():  # warm the file cache and create the databases once
            time_to_initialize(cmd, env)
        figures: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in runs}
        for i in range(args.rounds):
            names = list(runs) if i % 2 == 0 else list(reversed(runs))
            for name in names:
                figures[name].append(time_to_initialize(*runs[name]))
    bare_name = "bare MCPServer, one tool"
    for index, what in ((0, "initialize answered"), (2, "tools/list answered")):
        print(f"spawn → {what}, median of {args.rounds}:")
        b = statistics.median(f[index] for f in figures[bare_name])
        bc = statistics.median(f[index + 1] for f in figures[bare_name])
        for name in runs:
            o = statistics.median(f[index] for f in figures[name])
            oc = statistics.median(f[index + 1] for f in figures[name])
            print(
                f"  {name:<26}: wall {o * 1000:7.1f} ms, ratio {o / b:.2f}; "
                f"CPU {oc * 1000:6.0f} ms, ratio {oc / bc:.2f}"
            )
    print("target: initialize answered, ratio ≤ 1.10")


if __name__ == "__main__":
    main()
