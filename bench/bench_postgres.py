"""The PostgreSQL store beside SQLite: the measures of bench_store.py, and HTTP ingest by 8 clients through
one and through two ``serve --http`` processes.

    .venv/bin/python bench/bench_postgres.py --n 100000 [--http-traces 40000] [--skip-store]

A throwaway PostgreSQL cluster is started from the distribution's binaries (tests/pgcluster.py, with
fsync on: the server's defaults) in a temporary folder and removed after.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_store

from agnt_traces.config import Settings
from agnt_traces.ids import now_ms
from pgcluster import PgCluster

CLIENTS = 8
BATCH = 100


def db_bytes(db: str) -> int:
    if not db.startswith("postgresql://"):
        return bench_store.disk_bytes(db)
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0


def store_measures(db: str, n: int) -> None:
    settings = Settings(db_path=db)
    store_rate, full_rate = asyncio.run(bench_store.ingest(settings, n, 1000))
    print(f"ingest in-process (batch of 1000): store {store_rate:,.0f} traces/s; with validation {full_rate:,.0f}/s")
    size = db_bytes(db)
    print(f"size: {size / 1e6:,.1f} MB for {n:,} traces = {size / n:,.0f} bytes/trace")
    print(f"{'query':52} {'p50 ms':>8} {'p95 ms':>8}")
    for name, p50, p95 in asyncio.run(bench_store.queries(settings)):
        print(f"{name:52} {p50:8.2f} {p95:8.2f}")
    p50, p95 = asyncio.run(stdio_get_trace(db))
    print(f"{'get_trace over stdio (SDK client)':36} {p50:8.2f} {p95:8.2f}")


async def stdio_get_trace(db: str, rounds: int = 300) -> tuple[float, float]:
    """bench_store's measure, with this environment passed on (the SDK passes only a few variables)."""
    from mcp import Client, StdioServerParameters

    agnt = str(Path(sys.executable).parent / "agnt-traces")
    params = StdioServerParameters(command=agnt, args=["serve", "--db", db], env=dict(os.environ))
    async with Client(params, mode="legacy") as c:
        rows = (await c.call_tool("list_traces", {"limit": 50})).structured_content["traces"]  # type: ignore[index]
        ids = [r["id"] for r in rows]
        samples = []
        for k in range(rounds):
            t = time.perf_counter()
            res = await c.call_tool("get_trace", {"trace_id": ids[k % len(ids)]})
            samples.append((time.perf_counter() - t) * 1000)
            assert not res.is_error
    return statistics.median(samples), bench_store.pct(samples, 0.95)


class Server:
    def __init__(self, db: str) -> None:
        agnt = str(Path(sys.executable).parent / "agnt-traces")
        self.proc = subprocess.Popen(
            [agnt, "serve", "--http", "--port", "0", "--db", db],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "AGNT_TRACES_LOG_LEVEL": "warning"},
        )
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            match = re.search(r"serving on http://127\.0\.0\.1:(\d+) ", line)
            if match:
                self.port = int(match.group(1))
                break
        else:
            raise RuntimeError("server did not start")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _token(db: str) -> str:
    agnt = str(Path(sys.executable).parent / "agnt-traces")
    out = subprocess.run([agnt, "token", "create", "--tenant", "bench", "--db", db], capture_output=True, text=True)
    return out.stdout.strip()


def http_ingest(db: str, servers: int, total: int) -> float:
    """Traces/s stored by 8 clients posting batches of 100 over REST, split across ``servers`` processes."""
    token = _token(db)
    procs = [Server(db) for _ in range(servers)]
    per_client = total // CLIENTS
    start_ms = now_ms() - total * 10
    errors: list[str] = []

    def client(k: int) -> None:
        rng = random.Random(k)
        conn = http.client.HTTPConnection("127.0.0.1", procs[k % servers].port, timeout=120)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for b in range(0, per_client, BATCH):
            traces: list[dict[str, Any]] = [
                bench_store.make_trace(rng, k * per_client + b + j, start_ms) for j in range(BATCH)
            ]
            conn.request("POST", "/api/v1/tenants/bench/traces", json.dumps({"traces": traces}), headers)
            reply = conn.getresponse()
            reply.read()
            if reply.status not in (200, 201):
                errors.append(str(reply.status))
        conn.close()

    try:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    finally:
        for p in procs:
            p.stop()
    if errors:
        raise RuntimeError(f"{len(errors)} batches failed: {errors[:3]}")
    return per_client * CLIENTS / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--http-traces", type=int, default=40_000)
    parser.add_argument("--skip-store", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true", help="measure the PostgreSQL store only")
    args = parser.parse_args()
    cluster = PgCluster.start(fast=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if not args.skip_store:
                stores = [] if args.skip_sqlite else [("SQLite", str(Path(tmp) / "bench.db"))]
                for label, db in [*stores, ("PostgreSQL", cluster.create_database("b"))]:
                    print(f"== {label}: {args.n:,} traces", flush=True)
                    store_measures(db, args.n)
            print(f"== HTTP ingest: {CLIENTS} clients, batches of {BATCH}, {args.http_traces:,} traces", flush=True)
            lite = str(Path(tmp) / "http.db")
            print(f"SQLite, 1 server: {http_ingest(lite, 1, args.http_traces):,.0f} traces/s", flush=True)
            for servers in (1, 2):
                db = cluster.create_database("h")
                rate = http_ingest(db, servers, args.http_traces)
                print(f"PostgreSQL, {servers} server(s): {rate:,.0f} traces/s", flush=True)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
