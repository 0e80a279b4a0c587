"""Trace store at scale: batch ingest rate, list / sort / full-text / stats latency, get_trace over
stdio, bytes on disk per trace.

    .venv/bin/python bench/bench_store.py --n 1000000 [--db PATH] [--keep]

Traces are realistic: 12 prompts whose manifests repeat (content-addressed, stored once), 6 models,
variables, a user question and an answer of a few sentences drawn from a vocabulary, 4 % errors.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agnt_traces.app import open_app
from agnt_traces.config import Settings
from agnt_traces.ids import ms_to_rfc3339, now_ms
from agnt_traces.services.queries import StatsQuery, TraceQuery

WORDS = [
    "refund",
    "order",
    "shipping",
    "invoice",
    "account",
    "password",
    "delivery",
    "payment",
    "card",
    "subscription",
    "cancel",
    "upgrade",
    "premium",
    "support",
    "ticket",
    "error",
    "timeout",
    "charge",
    "receipt",
    "address",
    "warranty",
    "return",
    "exchange",
    "discount",
    "coupon",
    "login",
    "email",
    "phone",
    "tracking",
    "package",
    "delayed",
    "damaged",
    "missing",
    "billing",
    "plan",
    "trial",
    "renewal",
]
FILLER = [
    "the",
    "a",
    "we",
    "you",
    "your",
    "our",
    "is",
    "was",
    "will",
    "be",
    "can",
    "please",
    "thanks",
    "for",
    "to",
    "of",
    "and",
    "in",
    "on",
    "with",
    "this",
    "that",
    "it",
    "have",
    "has",
    "not",
    "yet",
    "today",
    "tomorrow",
    "days",
    "hours",
    "team",
    "help",
    "sorry",
    "understand",
    "check",
    "update",
    "confirm",
]
PROMPTS = [f"prompt-{i:02d}" for i in range(12)]
MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("openai", "gpt-4.1-mini"),
    ("agnt-local", "echo"),
]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) if rng.random() < 0.3 else rng.choice(FILLER) for _ in range(n))


def make_trace(rng: random.Random, i: int, start_ms: int) -> dict[str, Any]:
    p = rng.randrange(len(PROMPTS))
    provider, model = MODELS[rng.randrange(len(MODELS))]
    error = rng.random() < 0.04
    tin, tout = rng.randint(80, 2000), rng.randint(10, 400)
    trace: dict[str, Any] = {
        "createdAt": ms_to_rfc3339(start_ms + i * 50),
        "promptName": PROMPTS[p],
        "promptVersion": rng.randint(1, 4),
        "manifest": {
            "system": f"You are the assistant for {PROMPTS[p]}. " + " ".join(FILLER[:40]),
            "tools": [],
            "model": {"provider": provider, "name": model, "params": {"temperature": 0.2}},
            "etag": f"{p:02d}" * 32,
        },
        "variables": {
            "customer_name": f"customer {rng.randint(1, 50000)}",
            "tier": rng.choice(["standard", "premium"]),
        },
        "messages": [{"role": "user", "content": sentence(rng, rng.randint(8, 30))}],
        "output": None if error else sentence(rng, rng.randint(15, 60)),
        "inputTokens": tin,
        "outputTokens": 0 if error else tout,
        "cost": None if provider == "agnt-local" else round(tin * 1.5e-7 + tout * 6e-7, 8),
        "duration": round(rng.lognormvariate(0, 0.6), 4),
        "model": {"provider": provider, "name": model},
        "status": "error" if error else "success",
        "tags": rng.sample(["prod", "eu", "us", "beta", "mobile"], rng.randint(0, 2)),
    }
    if error:
        trace["error"] = {"type": "RateLimitError", "message": "rate limited by provider (429) after 3 attempts"}
    return trace


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def timed(fn: Any, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples), pct(samples, 0.95)


async def ingest(settings: Settings, n: int, batch: int) -> tuple[float, float]:
    rng = random.Random(42)
    start_ms = now_ms() - n * 50
    async with open_app(settings) as app:
        existing = await app.store.count_traces("default")  # type: ignore[attr-defined]
        if existing >= n:
            print(f"reusing {existing:,} traces in {settings.db_path}")
            return 0.0, 0.0
        prep = store = 0.0
        done = existing
        t0 = time.perf_counter()
        while done < n:
            size = min(batch, n - done)
            payloads = [make_trace(rng, done + k, start_ms) for k in range(size)]
            t = time.perf_counter()
            records = [app.traces.prepare(p) for p in payloads]
            prep += time.perf_counter() - t
            t = time.perf_counter()
            await app.store.insert_traces("default", records)
            store += time.perf_counter() - t
            done += size
            if done % 100_000 == 0:
                print(f"  {done:,} traces, {done / (time.perf_counter() - t0):,.0f}/s overall", flush=True)
        count = n - existing
        return count / store, count / (prep + store)


async def queries(settings: Settings) -> list[tuple[str, float, float]]:
    out = []
    async with open_app(settings) as app:
        t = app.traces

        async def lst(**kw: Any) -> Any:
            return (await t.list("default", TraceQuery.model_validate(kw))).render()

        cases = [
            ("list newest 20", dict()),
            ("list status+prompt, sort cost", dict(status="success", prompt_name="prompt-03", sort="cost")),
            ("list sort cost", dict(sort="cost")),
            ("list sort total_tokens", dict(sort="total_tokens")),
            ("list sort duration", dict(sort="duration")),
            ("list errors newest", dict(status="error")),
            ("list model filter", dict(model="claude-haiku-4-5")),
            ("list tag filter", dict(tags=["beta"])),
            ("list min_cost, sort cost asc", dict(min_cost=0.0005, sort="cost", order="asc")),
            ("list since 1h", dict(since="1h")),
            ("full-text common word", dict(query="refund")),
            ("full-text two words", dict(query="refund delayed")),
            ("full-text rare value", dict(query='"customer 31337"')),
            ("full-text + prompt filter", dict(query="invoice", prompt_name="prompt-07")),
        ]
        for name, kw in cases:
            await lst(**kw)  # warm
            p50, p95 = await timed(lambda kw=kw: lst(**kw), 30)
            out.append((name, p50, p95))
        page = await lst(limit=5)
        second = page["nextCursor"]
        p50, p95 = await timed(lambda: lst(limit=20, cursor=second), 30)
        out.append(("list next page (cursor)", p50, p95))
        ids = [r["id"] for r in (await lst(limit=200))["traces"]]
        i = iter(ids * 10)
        p50, p95 = await timed(lambda: t.get("default", next(i)), 100)
        out.append(("get_trace in-process", p50, p95))
        out += await stats_windows(app)
    return out


async def stats_windows(app: Any, rounds: int = 40) -> list[tuple[str, float, float]]:
    """trace_stats over named windows, then the slowest of ``rounds`` random ones (any millisecond, any
    grouping, with and without a prompt filter) inside the data's span."""
    from agnt_traces.ids import parse_time

    t = app.traces

    async def stats(**kw: Any) -> Any:
        return await t.stats("default", StatsQuery(**kw))

    async def edge(order: str) -> int:
        rows = (await t.list("default", TraceQuery.model_validate({"limit": 1, "order": order}))).render()["traces"]
        return parse_time(rows[0]["createdAt"], "createdAt")

    first, last = await edge("asc"), await edge("desc")
    mid = (first + last) // 2

    def at(ms: int) -> str:
        return ms_to_rfc3339(ms)

    cases: list[tuple[str, dict[str, Any]]] = [
        ("trace_stats by prompt, 24h", dict(group_by="prompt", since="24h")),
        ("trace_stats by model, 24h", dict(group_by="model", since="24h")),
        ("trace_stats by version, all time", dict(group_by="version")),
        ("trace_stats by status, all time", dict(group_by="status")),
        ("trace_stats by model, prompt, all", dict(group_by="model", prompt_name="prompt-03")),
        (
            "trace_stats by version, odd ms window",
            dict(group_by="version", since=at(first + 3_723_457), until=at(last - 2_345_679)),
        ),
        ("trace_stats by model, 59 s window", dict(group_by="model", since=at(mid + 123), until=at(mid + 59_123))),
        (
            "trace_stats by prompt, 2 h across the hour",
            dict(group_by="prompt", since=at(mid // 3_600_000 * 3_600_000 - 3_599_999), until=at(mid + 1)),
        ),
    ]
    out = []
    for name, kw in cases:
        await stats(**kw)  # warm
        p50, p95 = await timed(lambda kw=kw: stats(**kw), 5)
        out.append((name, p50, p95))
    rng = random.Random(3)
    worst = []
    for _ in range(rounds):
        a, b = sorted(rng.randrange(first - 3_600_000, last + 3_600_000) for _ in range(2))
        kw = dict(
            group_by=rng.choice(["prompt", "version", "model", "status"]),
            since=at(a),
            until=at(b),
            prompt_name=rng.choice([None, None, "prompt-05"]),
        )
        await stats(**kw)
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            await stats(**kw)
            samples.append((time.perf_counter() - started) * 1000)
        worst.append((statistics.median(samples), min(samples)))
    medians, bests = [w[0] for w in worst], [w[1] for w in worst]
    out.append(
        (f"trace_stats, {rounds} random windows (p50 of 3): median / slowest", statistics.median(medians), max(medians))
    )
    out.append(
        (f"trace_stats, {rounds} random windows (best of 3): median / slowest", statistics.median(bests), max(bests))
    )
    return out


async def stdio_get_trace(db: str, rounds: int = 300) -> tuple[float, float]:
    from mcp import Client, StdioServerParameters

    agnt = str(Path(sys.executable).parent / "agnt-traces")
    # The server inherits this environment (PYTHONPATH included): it runs the code being measured.
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
    return statistics.median(samples), pct(samples, 0.95)


def disk_bytes(path: str) -> int:
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--db", help="reuse or keep this database")
    args = parser.parse_args()
    tmp = None
    if args.db:
        db = args.db
    else:
        tmp = tempfile.TemporaryDirectory()
        db = str(Path(tmp.name) / "bench.db")
    settings = Settings(db_path=db)
    print(f"database: {db}; target {args.n:,} traces")
    store_rate, full_rate = asyncio.run(ingest(settings, args.n, args.batch))
    if store_rate:
        print(
            f"ingest (batch of {args.batch}): store {store_rate:,.0f} traces/s; "
            f"with validation {full_rate:,.0f} traces/s"
        )
    size = disk_bytes(db)
    print(f"disk: {size / 1e6:,.1f} MB for {args.n:,} traces = {size / args.n:,.0f} bytes/trace")
    print(f"{'query':52} {'p50 ms':>8} {'p95 ms':>8}")
    for name, p50, p95 in asyncio.run(queries(settings)):
        print(f"{name:52} {p50:8.2f} {p95:8.2f}")
    p50, p95 = asyncio.run(stdio_get_trace(db))
    print(f"{'get_trace over stdio (SDK client)':36} {p50:8.2f} {p95:8.2f}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
