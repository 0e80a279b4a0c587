"""HTTP server under load: concurrent trace ingest over REST, then MCP ``tools/call`` round trips over /mcp.

    .venv/bin/python bench/bench_http.py [--seconds 10] [--clients 8] [--mcp-calls 200]

Starts ``agnt-traces serve --http --port 0`` on a throwaway database in a subprocess (as a user would),
creates a token with ``agnt-traces token create``, then:

1. ``--clients`` concurrent clients (one keep-alive connection each) POST one trace per request for
   ``--seconds``; reports traces/s and p50 / p99 latency. The default load generator is a minimal raw
   HTTP/1.1 client, so that on a small machine the client's own CPU does not cap the figures;
   ``--client httpx2`` posts through httpx2 instead;
2. lists every trace back through REST (cursor pagination, limit 200) and checks that the stored ids
   are exactly the acknowledged ids: none lost, none duplicated;
3. MCP over streamable HTTP with the SDK client: p50 / p99 of ``tools/call list_traces limit=1``
   over ``--mcp-calls`` calls, in both connection modes (legacy initialize handshake, and auto).

Exits non-zero if any trace was lost or duplicated or any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import httpx2
from _rawhttp import RawClient, bench_trace

TENANT = "bench"
SERVER_LOG: deque[str] = deque(maxlen=40)  # the server's last stderr lines, shown when something failed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_server(db: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "AGNT_TRACES_LOG_LEVEL": "warning"}
    cmd = [sys.executable, "-m", "agnt_traces", "serve", "--http", "--port", "0", "--db", db]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"server exited early (code {proc.poll()})")
        match = re.search(r"serving on (http://\S+?) ", line)
        if match:
            threading.Thread(target=SERVER_LOG.extend, args=(proc.stderr,), daemon=True).start()  # keep draining
            return proc, match.group(1)
    raise SystemExit("server did not print its URL in 30 s")


def create_token(db: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "agnt_traces", "token", "create", "--tenant", TENANT, "--db", db],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


class LibClient:
    """The same through httpx2 (``--client httpx2``), as a Python application would post."""

    def __init__(self, base: str, token: str) -> None:
        limits = httpx2.Limits(max_connections=1, max_keepalive_connections=1)
        headers = {"Authorization": f"Bearer {token}"}
        self.http = httpx2.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30)

    async def __aenter__(self) -> LibClient:
        await self.http.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.__aexit__(None, None, None)

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        r = await self.http.post(path, json=body)
        return r.status_code, r.json()


async def ingest(
    base: str, token: str, seconds: float, clients: int, kind: str
) -> tuple[list[str], list[float], int, float]:
    acked: list[str] = []
    latencies: list[float] = []
    failures = 0
    stop_at = time.perf_counter() + seconds
    path = f"/api/v1/tenants/{TENANT}/traces"

    async def worker(i: int) -> None:
        nonlocal failures
        async with RawClient(base, token) if kind == "raw" else LibClient(base, token) as c:
            n = 0
            while time.perf_counter() < stop_at:
                body = bench_trace(i, n)
                n += 1
                t0 = time.perf_counter()
                status, answer = await c.post(path, body)
                latencies.append(time.perf_counter() - t0)
                if status == 201:
                    acked.append(answer["id"])
                else:
                    failures += 1
                    if failures <= 3:
                        print(f"  ingest failed: {status} {answer}", file=sys.stderr)

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    return acked, latencies, failures, time.perf_counter() - started


async def list_all(base: str, token: str) -> list[str]:
    ids: list[str] = []
    cursor = None
    async with httpx2.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        while True:
            params: dict[str, Any] = {"limit": 200, "order": "asc"}
            if cursor:
                params["cursor"] = cursor
            r = await c.get(f"/api/v1/tenants/{TENANT}/traces", params=params)
            r.raise_for_status()
            page = r.json()
            ids += [t["id"] for t in page["traces"]]
            cursor = page["nextCursor"]
            if not cursor:
                return ids


async def mcp_round_trips(base: str, token: str, calls: int, mode: str) -> list[float]:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    times: list[float] = []
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(base + "/mcp", http_client=http), mode=mode) as client,
    ):
        for i in range(calls + 10):
            t0 = time.perf_counter()
            result = await client.call_tool("list_traces", {"limit": 1})
            elapsed = time.perf_counter() - t0
            if result.is_error:
                raise SystemExit(f"list_traces failed over MCP: {result.content}")
            if i >= 10:  # warm-up calls are not counted
                times.append(elapsed)
    return times


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def main_async(args: argparse.Namespace, base: str, token: str) -> int:
    print(f"ingest: {args.clients} {args.client} clients × {args.seconds:g} s, one trace per POST …")
    acked, lat, failures, elapsed = await ingest(base, token, args.seconds, args.clients, args.client)
    print(f"  acknowledged   {len(acked)} traces in {elapsed:.2f} s = {len(acked) / elapsed:,.0f} traces/s")
    print(f"  latency        p50 {ms(pct(lat, 0.50))}   p99 {ms(pct(lat, 0.99))}   max {ms(max(lat))}")
    print(f"  failed         {failures} requests")

    t0 = time.perf_counter()
    stored = await list_all(base, token)
    print(f"verify: listed {len(stored)} traces back over REST in {time.perf_counter() - t0:.2f} s")
    lost = set(acked) - set(stored)
    extra = set(stored) - set(acked)
    dup_stored = len(stored) - len(set(stored))
    dup_acked = len(acked) - len(set(acked))
    print(f"  lost {len(lost)}   unexpected {len(extra)}   duplicated ids: stored {dup_stored}, acked {dup_acked}")
    ok = not lost and not extra and dup_stored == 0 and dup_acked == 0 and failures == 0

    for mode in ("legacy", "auto"):
        times = await mcp_round_trips(base, token, args.mcp_calls, mode)
        print(
            f"mcp tools/call list_traces(limit=1) over HTTP, mode={mode}: {len(times)} calls, "
            f"p50 {ms(statistics.median(times))}   p99 {ms(pct(times, 0.99))}"
        )
    if not ok and SERVER_LOG:
        print("server log (last lines):\n" + "".join(SERVER_LOG), file=sys.stderr)
    print("OK: nothing lost, nothing duplicated" if ok else "FAILED")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--mcp-calls", type=int, default=200)
    parser.add_argument(
        "--client", choices=["raw", "httpx2"], default="raw", help="ingest load generator (default: raw HTTP/1.1)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agnt-bench-http-") as tmp:
        db = str(Path(tmp) / "traces.db")
        token = create_token(db)
        proc, base = start_server(db)
        print(f"server: {base} (pid {proc.pid}, db {db})")
        try:
            return asyncio.run(main_async(args, base, token))
        finally:
            proc.terminate()
            proc.wait(15)


if __name__ == "__main__":
    raise SystemExit(main())
