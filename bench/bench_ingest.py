"""Trace ingest through every front end, measured from an independent client process.

    .venv/bin/python bench/bench_ingest.py [--seconds 8] [--clients 8] [--batch 500] [--batch-clients 2]
                                          [--phases single,batch,mcp-http,mcp-stdio] [--runs 1]

The corpus is a support app's: 5 prompts, each with a 600-character system prompt (in the manifest, as the
app's prompt manager recorded it), a 100-character user question and a 300-character answer (both different for every
trace), variables, tokens, cost, duration, model and tags, posted the way a client SDK posts them (no
id: the server makes one).

Phases (each on its own tenant of one fresh database):

- ``single``: ``--clients`` keep-alive connections POST one trace per request to ``/api/v1/.../traces``;
- ``batch``: ``--batch-clients`` connections POST ``{"traces": [...]}`` of ``--batch`` traces each;
- ``mcp-http``: ``--clients`` MCP sessions over streamable HTTP (raw JSON-RPC: initialize, then
  ``tools/call ingest_trace``), one call at a time each; answered as SSE streams (the server's default), or
  as JSON bodies when this process runs with ``AGNT_TRACES_MCP_RESPONSES=json`` (the server inherits it;
  the phase is then named ``mcp-http/json``);
- ``mcp-stdio``: ``agnt-traces serve`` over stdio (raw JSON-RPC, ``--clients`` calls in flight).

For each: traces/s acknowledged, the server process's CPU time per trace (user + system from
``/proc/<pid>/stat`` before and after: on a shared machine it is steadier than throughput; the load
generator's own CPU per trace next to it), p50 / p99 of
a request, and the traces listed back (lost = acknowledged but not listed; duplicated = listed twice).
The load generator is this process (raw sockets, no client library), never the server's code.
Exits non-zero if any trace was lost or duplicated or any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROMPTS = 5
SYSTEM_CHARS, QUESTION_CHARS, ANSWER_CHARS = 600, 100, 300
PROTOCOL = "2025-11-25"
TICKS = os.sysconf("SC_CLK_TCK")
SERVER_LOG: deque[str] = deque(maxlen=40)

_WORDS = (
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
)


def _text(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        w = rng.choice(_WORDS)
        words.append(w)
        size += len(w) + 1
    return " ".join(words)[:chars]


def _systems() -> list[str]:
    rng = random.Random(7)
    return [f"You are the support agent of shop {p}. " + _text(rng, SYSTEM_CHARS - 35) for p in range(PROMPTS)]


SYSTEMS = _systems()


class Corpus:
    """Client traces, each one different (question and answer); deterministic per (client, n)."""

    def __init__(self, client: int) -> None:
        self.rng = random.Random(client)
        self.client = client

    def trace(self, n: int) -> dict[str, Any]:
        p = n % PROMPTS
        rng = self.rng
        question = _text(rng, QUESTION_CHARS - 20) + f" (c{self.client} n{n})"
        question = question.ljust(QUESTION_CHARS)[:QUESTION_CHARS]
        etag = f"{p:02d}" + "e" * 62
        return {
            "promptName": f"support-{p}",
            "promptVersion": 3,
            "etag": etag,
            "manifest": {
                "system": SYSTEMS[p],
                "tools": [],
                "model": {"provider": "openai", "name": "gpt-4o-mini", "params": {"temperature": 0.2}},
                "etag": etag,
            },
            "variables": {"shop": f"shop {p}", "customer": f"customer {rng.randrange(100000)}", "plan": "premium"},
            "messages": [{"role": "user", "content": question}],
            "output": _text(rng, ANSWER_CHARS),
            "inputTokens": 190 + rng.randrange(20),
            "outputTokens": 70 + rng.randrange(20),
            "cost": round(rng.uniform(0.0001, 0.0009), 6),
            "duration": round(rng.uniform(0.4, 2.5), 3),
            "model": {"provider": "openai", "name": "gpt-4o-mini"},
            "status": "success",
            "tags": ["bench", f"shop-{p}"],
        }


# -- a minimal HTTP/1.1 client ---------------------------------------------------------------------------


class Conn:
    """One keep-alive HTTP/1.1 connection over asyncio streams: costs the load generator little CPU."""

    def __init__(self, base: str, token: str) -> None:
        self.host, _, port = base.removeprefix("http://").partition(":")
        self.port = int(port)
        self.token = token
        self.session: str | None = None
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def open(self) -> Conn:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()

    async def request(
        self, method: str, path: str, data: bytes = b"", extra: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\nauthorization: Bearer {self.token}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(data)}\r\n{extra}\r\n"
        )
        self.writer.write(head.encode() + data)
        status = int((await self.reader.readline()).split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            parts = []
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            await self.reader.readline()
            body = b"".join(parts)
        else:
            body = b""
        return status, headers, body


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


@dataclass
class PhaseResult:
    name: str
    acked: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0
    client_cpu: float = 0.0  # this process (the load generator)
    listed: list[str] = field(default_factory=list)

    def report(self) -> bool:
        n = len(self.acked)
        lost = len(set(self.acked) - set(self.listed))
        dup = (len(self.listed) - len(set(self.listed))) + (n - len(set(self.acked)))
        extra = len(set(self.listed) - set(self.acked))
        rate = n / self.elapsed if self.elapsed else 0.0
        cpu_ms = self.cpu * 1000 / n if n else float("nan")
        client_ms = self.client_cpu * 1000 / n if n else float("nan")
        print(
            f"{self.name:<13} {rate:>8,.0f} traces/s  server CPU {cpu_ms:5.2f} ms/trace (client {client_ms:4.2f})  "
            f"p50 {pct(self.latencies, 0.5) * 1000:7.2f} ms  p99 {pct(self.latencies, 0.99) * 1000:7.2f} ms  "
            f"acked {n}  lost {lost}  duplicated {dup}  unexpected {extra}  failed {self.failures}",
            flush=True,
        )
        return lost == 0 and dup == 0 and extra == 0 and self.failures == 0 and n > 0


# -- the phases ------------------------------------------------------------------------------------------


async def phase_single(base: str, token: str, tenant: str, pid: int, args: argparse.Namespace) -> PhaseResult:
    res = PhaseResult("single")
    path = f"/api/v1/tenants/{tenant}/traces"

    async def worker(i: int, stop_at: float) -> None:
        conn = await Conn(base, token).open()
        corpus = Corpus(i)
        n = 0
        try:
            while time.perf_counter() < stop_at:
                data = json.dumps(corpus.trace(n)).encode()
                n += 1
                t0 = time.perf_counter()
                status, _, body = await conn.request("POST", path, data)
                res.latencies.append(time.perf_counter() - t0)
                if status == 201:
                    res.acked.append(json.loads(body)["id"])
                else:
                    res.failures += 1
                    if res.failures <= 3:
                        print(f"  single failed: {status} {body[:300]!r}", file=sys.stderr)
        finally:
            await conn.close()

    await _timed(res, pid, [worker(i, time.perf_counter() + args.seconds) for i in range(args.clients)])
    return res


async def phase_batch(base: str, token: str, tenant: str, pid: int, args: argparse.Namespace) -> PhaseResult:
    res = PhaseResult("batch")
    path = f"/api/v1/tenants/{tenant}/traces"

    async def worker(i: int, stop_at: float) -> None:
        conn = await Conn(base, token).open()
        corpus = Corpus(100 + i)
        n = 0
        try:
            while time.perf_counter() < stop_at:
                data = json.dumps({"traces": [corpus.trace(n + k) for k in range(args.batch)]}).encode()
                n += args.batch
                t0 = time.perf_counter()
                status, _, body = await conn.request("POST", path, data)
                res.latencies.append(time.perf_counter() - t0)
                if status == 201:
                    res.acked += [t["id"] for t in json.loads(body)["traces"]]
                else:
                    res.failures += 1
                    if res.failures <= 3:
                        print(f"  batch failed: {status} {body[:300]!r}", file=sys.stderr)
        finally:
            await conn.close()

    await _timed(res, pid, [worker(i, time.perf_counter() + args.seconds) for i in range(args.batch_clients)])
    return res


def _rpc(msg_id: int | None, method: str, params: dict[str, Any] | None = None) -> bytes:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if msg_id is not None:
        msg["id"] = msg_id
    if params is not None:
        msg["params"] = params
    return json.dumps(msg).encode()


def _rpc_answer(body: bytes) -> dict[str, Any]:
    """The JSON-RPC answer in a JSON or SSE (``data:`` lines) body."""
    text = body.decode()
    if text.lstrip().startswith("{"):
        return json.loads(text)  # type: ignore[no-any-return]
    for line in text.splitlines():
        if line.startswith("data:"):
            msg = json.loads(line[5:])
            if "id" in msg:
                return msg  # type: ignore[no-any-return]
    raise ValueError(f"no JSON-RPC answer in {text[:200]!r}")


def _tool_ok(answer: dict[str, Any]) -> dict[str, Any] | None:
    result = answer.get("result")
    if not isinstance(result, dict) or result.get("isError"):
        return None
    data = result.get("structuredContent")
    if data is None:
        data = json.loads(result["content"][0]["text"])
    return data  # type: ignore[no-any-return]


async def phase_mcp_http(base: str, token: str, tenant: str, pid: int, args: argparse.Namespace) -> PhaseResult:
    mode = os.environ.get("AGNT_TRACES_MCP_RESPONSES", "").strip().lower() or "auto"
    res = PhaseResult("mcp-http" if mode == "auto" else f"mcp-http/{mode}")
    accept = "accept: application/json, text/event-stream\r\n"
    init = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}

    async def session(i: int) -> Conn:
        conn = await Conn(base, token).open()
        status, headers, body = await conn.request("POST", "/mcp", _rpc(1, "initialize", init), accept)
        if status != 200:
            raise SystemExit(f"MCP initialize failed: {status} {body[:300]!r}")
        conn.session = headers["mcp-session-id"]
        extra = f"{accept}mcp-session-id: {conn.session}\r\nmcp-protocol-version: {PROTOCOL}\r\n"
        await conn.request("POST", "/mcp", _rpc(None, "notifications/initialized"), extra)
        return conn

    conns = [await session(i) for i in range(args.clients)]

    async def worker(i: int, stop_at: float) -> None:
        conn = conns[i]
        extra = f"{accept}mcp-session-id: {conn.session}\r\nmcp-protocol-version: {PROTOCOL}\r\n"
        corpus = Corpus(200 + i)
        n = 0
        try:
            while time.perf_counter() < stop_at:
                n += 1
                data = _rpc(n + 1, "tools/call", {"name": "ingest_trace", "arguments": {"trace": corpus.trace(n)}})
                t0 = time.perf_counter()
                status, _, body = await conn.request("POST", "/mcp", data, extra)
                res.latencies.append(time.perf_counter() - t0)
                ok = _tool_ok(_rpc_answer(body)) if status == 200 else None
                if ok is not None:
                    res.acked.append(ok["id"])
                else:
                    res.failures += 1
                    if res.failures <= 3:
                        print(f"  mcp-http failed: {status} {body[:300]!r}", file=sys.stderr)
        finally:
            await conn.request("DELETE", "/mcp", b"", extra)
            await conn.close()

    await _timed(res, pid, [worker(i, time.perf_counter() + args.seconds) for i in range(args.clients)])
    return res


async def _timed(res: PhaseResult, pid: int, workers: list[Any]) -> None:
    cpu0, own0 = cpu_seconds(pid), time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*workers)
    res.elapsed = time.perf_counter() - t0
    res.cpu = cpu_seconds(pid) - cpu0
    res.client_cpu = time.process_time() - own0


async def list_back_rest(base: str, token: str, tenant: str) -> list[str]:
    conn = await Conn(base, token).open()
    ids: list[str] = []
    cursor = ""
    try:
        while True:
            query = "limit=200&order=asc" + (f"&cursor={cursor}" if cursor else "")
            status, _, body = await conn.request("GET", f"/api/v1/tenants/{tenant}/traces?{query}")
            if status != 200:
                raise SystemExit(f"listing back failed: {status} {body[:300]!r}")
            page = json.loads(body)
            ids += [t["id"] for t in page["traces"]]
            cursor = page["nextCursor"] or ""
            if not cursor:
                return ids
    finally:
        await conn.close()


class StdioServer:
    """``agnt-traces serve`` over stdio, spoken to in raw JSON-RPC lines with several calls in flight."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.next_id = 0
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, db: str, tenant: str) -> StdioServer:
        env = {**os.environ, "AGNT_TRACES_LOG_LEVEL": "warning", "AGNT_TRACES_TENANT": tenant}
        return await cls.spawn([sys.executable, "-m", "agnt_traces", "serve", "--db", db], env)

    @classmethod
    async def spawn(cls, cmd: list[str], env: dict[str, str]) -> StdioServer:
        """Any stdio MCP server (``cmd``), initialized."""
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            limit=2**24,
        )
        server = cls(proc)
        init = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}
        await server.request("initialize", init)
        server.send(_rpc(None, "notifications/initialized"))
        return server

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data + b"\n")

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[self.next_id] = future
        self.send(_rpc(self.next_id, method, params))
        return await future

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            msg = json.loads(line)
            future = self.waiting.pop(msg.get("id"), None)
            if future is not None and not future.done():
                future.set_result(msg)

    async def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
        self.reader.cancel()


async def phase_mcp_stdio(
    db: str, tenant: str, args: argparse.Namespace, server: StdioServer | None = None
) -> PhaseResult:
    """The ``mcp-stdio`` phase, on ``agnt-traces serve`` (or on ``server``, whose traces are not listed back)."""
    res = PhaseResult("mcp-stdio")
    list_back = server is None
    server = server or await StdioServer.start(db, tenant)
    try:

        async def worker(i: int, stop_at: float) -> None:
            corpus = Corpus(300 + i)
            n = 0
            while time.perf_counter() < stop_at:
                n += 1
                t0 = time.perf_counter()
                answer = await server.request(
                    "tools/call", {"name": "ingest_trace", "arguments": {"trace": corpus.trace(n)}}
                )
                res.latencies.append(time.perf_counter() - t0)
                ok = _tool_ok(answer)
                if ok is not None:
                    res.acked.append(ok["id"])
                else:
                    res.failures += 1
                    if res.failures <= 3:
                        print(f"  mcp-stdio failed: {str(answer)[:300]}", file=sys.stderr)

        await _timed(res, server.proc.pid, [worker(i, time.perf_counter() + args.seconds) for i in range(args.clients)])
        cursor = None
        while list_back:
            call_args: dict[str, Any] = {"limit": 200, "order": "asc"}
            if cursor:
                call_args["cursor"] = cursor
            page = _tool_ok(await server.request("tools/call", {"name": "list_traces", "arguments": call_args}))
            if page is None:
                raise SystemExit("listing back over stdio failed")
            res.listed += [t["id"] for t in page["traces"]]
            cursor = page["nextCursor"]
            if not cursor:
                break
    finally:
        await server.close()
    return res


# -- the server ------------------------------------------------------------------------------------------


def start_http(db: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "AGNT_TRACES_LOG_LEVEL": "warning"}
    return start_server([sys.executable, "-m", "agnt_traces", "serve", "--http", "--port", "0", "--db", db], env)


def start_server(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """An HTTP server that prints ``serving on http://HOST:PORT `` on stderr once it listens, and its URL."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"server exited early (code {proc.poll()})")
        match = re.search(r"serving on (http://\S+?) ", line)
        if match:
            threading.Thread(target=SERVER_LOG.extend, args=(proc.stderr,), daemon=True).start()
            return proc, match.group(1)
    raise SystemExit("server did not print its URL in 60 s")


def create_token(db: str, tenant: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "agnt_traces", "token", "create", "--tenant", tenant, "--db", db],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


async def run_once(args: argparse.Namespace, db: str, run: int) -> bool:
    phases = args.phases.split(",")
    http = [p for p in phases if p != "mcp-stdio"]
    ok = True
    tokens = {p: create_token(db, f"r{run}-{p}") for p in http}
    if http:
        proc, base = start_http(db)
        try:
            # One warm-up request per front end (imports, first transaction), not counted.
            warm = await Conn(base, tokens[http[0]]).open()
            await warm.request(
                "POST", f"/api/v1/tenants/r{run}-{http[0]}/traces", json.dumps(Corpus(999).trace(0)).encode()
            )
            await warm.close()
            warm_ids = 1
            for name in http:
                tenant = f"r{run}-{name}"
                fn = {"single": phase_single, "batch": phase_batch, "mcp-http": phase_mcp_http}[name]
                res = await fn(base, tokens[name], tenant, proc.pid, args)
                res.listed = await list_back_rest(base, tokens[name], tenant)
                if name == http[0]:
                    res.listed = res.listed[warm_ids:]
                ok = res.report() and ok
        finally:
            proc.terminate()
            proc.wait(30)
    if "mcp-stdio" in phases:
        ok = (await phase_mcp_stdio(db, f"r{run}-stdio", args)).report() and ok
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--batch-clients", type=int, default=2)
    parser.add_argument("--phases", default="single,batch,mcp-http,mcp-stdio")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--db", help="database file (default: a fresh one in a temporary folder)")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="agnt-bench-ingest-") as tmp:
        db = args.db or str(Path(tmp) / "traces.db")
        for run in range(args.runs):
            print(f"run {run + 1}/{args.runs} (load average {os.getloadavg()[0]:.2f})", flush=True)
            ok = asyncio.run(run_once(args, db, run)) and ok
    if not ok and SERVER_LOG:
        print("server log (last lines):\n" + "".join(SERVER_LOG), file=sys.stderr)
    print("OK: nothing lost, nothing duplicated" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
