"""How the server's answers grow with the number of traces: 10 k, 100 k, 1 M (and 10 M).

For each size: build (or reuse) a database with bench_store's realistic traces, launch
``agnt-traces serve`` on it as an MCP client would, and over stdio (raw JSON-RPC) time list_traces for
each sort, filtered lists, full-text queries and trace_stats; then report bytes on disk per trace and
the server's resident memory (VmRSS now, VmHWM peak).

    .venv/bin/python bench/bench_scale.py [--sizes 10000,100000,1000000,10000000] [--dir /tmp/agnt-scale]

Each database is loaded through ``Store.insert_traces`` in batches of 1,000 (bench_store.ingest; the
client JSON validated first), never with raw SQL; a database already in --dir with enough traces is
reused. 10 M traces take ~9 GB and, at 3–5 k traces/s, 35–60 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_store import disk_bytes, ingest

from agnt_traces.config import Settings

AGNT = str(Path(sys.executable).parent / "agnt-traces")
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("list newest", "list_traces", {}),
    ("list sort cost", "list_traces", {"sort": "cost"}),
    ("list sort total_tokens", "list_traces", {"sort": "total_tokens"}),
    ("list sort duration", "list_traces", {"sort": "duration"}),
    ("list status+prompt by cost", "list_traces", {"status": "success", "prompt_name": "prompt-03", "sort": "cost"}),
    ("full-text common word", "list_traces", {"query": "refund"}),
    ("full-text rare value", "list_traces", {"query": '"customer 31337"'}),
    ("full-text by cost", "list_traces", {"query": "invoice", "sort": "cost"}),
    ("stats by prompt, all", "trace_stats", {"group_by": "prompt"}),
    ("stats by model, 24h", "trace_stats", {"group_by": "model", "since": "24h"}),
    ("stats by version, 7h", "trace_stats", {"group_by": "version", "since": "7h"}),
    ("stats by model, prompt, 90m", "trace_stats", {"group_by": "model", "since": "90m", "prompt_name": "prompt-03"}),
    ("get_trace", "get_trace", {}),
]


class Stdio:
    def __init__(self, db: str) -> None:
        self.proc = subprocess.Popen(
            [AGNT, "serve", "--db", db], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.n = 0
        self.request(
            "initialize",
            {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}},
        )
        self.notify("notifications/initialized")

    def notify(self, method: str) -> None:
        assert self.proc.stdin
        self.proc.stdin.write((json.dumps({"jsonrpc": "2.0", "method": method}) + "\n").encode())
        self.proc.stdin.flush()

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.n += 1
        msg = {"jsonrpc": "2.0", "id": self.n, "method": method, "params": params}
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()
        while True:
            reply = json.loads(self.proc.stdout.readline())
            if reply.get("id") == self.n:
                return reply  # type: ignore[no-any-return]

    def call(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        reply = self.request("tools/call", {"name": tool, "arguments": args})
        result = reply["result"]
        assert not result.get("isError"), result
        return result["structuredContent"]  # type: ignore[no-any-return]

    def memory_kb(self) -> tuple[int, int]:
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])

    def close(self) -> None:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.close()
        self.proc.wait(10)
        self.proc.stdout.close()


def measure(db: str, repeat: int) -> tuple[dict[str, float], tuple[int, int]]:
    server = Stdio(db)
    try:
        ids = [r["id"] for r in server.call("list_traces", {"limit": 50})["traces"]]
        out = {}
        for name, tool, args in CASES:
            samples = []
            for k in range(repeat):
                a = {"trace_id": ids[k % len(ids)]} if tool == "get_trace" else args
                t = time.perf_counter()
                server.call(tool, a)
                samples.append((time.perf_counter() - t) * 1000)
            out[name] = statistics.median(samples)
        return out, server.memory_kb()
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dir", default="/tmp/agnt-scale")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    results = {}
    for n in sizes:
        db = str(Path(args.dir) / f"scale-{n}.db")
        t0 = time.perf_counter()
        store_rate, full_rate = asyncio.run(ingest(Settings(db_path=db), n, 1000))
        if store_rate:
            print(
                f"{n:>9,} traces loaded through Store.insert_traces (batches of 1,000) in "
                f"{time.perf_counter() - t0:,.0f} s: store {store_rate:,.0f} traces/s, with validation "
                f"{full_rate:,.0f} traces/s",
                flush=True,
            )
        size = disk_bytes(db)
        times, (rss, hwm) = measure(db, args.repeat)
        results[n] = (times, size / n, rss, hwm)
        print(
            f"{n:>9,} traces: {size / n:,.0f} B/trace, server RSS {rss / 1024:.0f} MB (peak {hwm / 1024:.0f} MB)",
            flush=True,
        )
    header = f"{'p50 ms over stdio':30}" + "".join(f"{n:>12,}" for n in sizes)
    print("\n" + header)
    for name, _, _ in CASES:
        print(f"{name:30}" + "".join(f"{results[n][0][name]:12.2f}" for n in sizes))
    print(f"{'bytes on disk per trace':30}" + "".join(f"{results[n][1]:12,.0f}" for n in sizes))
    print(
        f"{'server RSS MB (peak)':30}"
        + "".join(f"{results[n][2] / 1024:7.0f} ({results[n][3] / 1024:.0f})" for n in sizes)
    )


if __name__ == "__main__":
    main()
