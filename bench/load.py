"""Load suite: trace ingest and agents running the playground loop, at the same time, against one HTTP server.

    .venv/bin/python bench/load.py [--seconds 60] [--ingest-clients 8] [--agents 2]

Starts ``agnt-traces serve --http --port 0`` on a fresh temporary database in a subprocess, creates a token
with ``agnt-traces token create``, seeds one prompt per agent on the offline model ``agnt-local/echo`` and
publishes it (and runs it once, so that LiteLLM is loaded before the clock starts). Then, for ``--seconds``:

- ``--ingest-clients`` clients (one keep-alive connection each, a minimal raw HTTP/1.1 client so that the load
  generator's CPU does not cap the server on a small machine) POST traces with client-supplied unique ids:
  mostly one trace per request, every tenth request a batch of 5;
- ``--agents`` agents each loop the fix loop on their own prompt, alternating REST and MCP over streamable
  HTTP (agent 0 REST, agent 1 MCP, …): run_prompt → list_traces → open_playground → edit_block →
  run_session → diff_session → save_session → publish_prompt, checking every answer.

Then it verifies: every acknowledged ingest id is stored exactly once and nothing else was ingested (listed
back over REST and counted in the file after a clean shutdown), each agent's prompt has one published version
per finished loop, ``PRAGMA integrity_check`` is ok and the server logged no error. It prints per-operation
latency (count, p50, p99, max, errors) and exits non-zero on any error, loss or duplicate.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx2
from _rawhttp import RawClient, bench_trace

TENANT = "load"
BATCH_EVERY = 10  # every tenth ingest request is a batch
BATCH_SIZE = 5


# -- the server ---------------------------------------------------------------------------------------------


class Server:
    """``agnt-traces serve --http`` in a subprocess; its stderr is drained in a thread and kept for the checks."""

    def __init__(self, db: str) -> None:
        env = {**os.environ, "AGNT_TRACES_LOG_LEVEL": "warning", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        cmd = [sys.executable, "-m", "agnt_traces", "serve", "--http", "--port", "0", "--db", db]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True
        )
        self.log: deque[str] = deque(maxlen=10_000)
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 60
        while True:
            line = self.proc.stderr.readline()
            if not line or time.monotonic() > deadline:
                self.proc.kill()
                raise SystemExit(f"server did not start (code {self.proc.wait(10)}): {line}")
            self.log.append(line)
            match = re.search(r"serving on (http://\S+?) ", line)
            if match:
                self.url = match.group(1)
                break
        self._drain = threading.Thread(target=self.log.extend, args=(self.proc.stderr,), daemon=True)
        self._drain.start()

    def stop(self) -> int | None:
        """SIGTERM and wait; the exit code (uvicorn re-raises the signal after a graceful shutdown)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None
        self._drain.join(10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return code

    def errors_logged(self) -> list[str]:
        return [ln for ln in self.log if "Traceback" in ln or " ERROR " in ln or " CRITICAL " in ln]


def create_token(db: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "agnt_traces", "token", "create", "--tenant", TENANT, "--db", db],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


# -- measuring ---------------------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.messages: list[str] = []

    def error(self, op: str, message: str) -> None:
        self.errors[op] += 1
        if len(self.messages) < 20:
            self.messages.append(f"{op}: {message[:500]}")

    async def timed(self, op: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        t0 = time.perf_counter()
        result = await fn()
        self.latency[op].append(time.perf_counter() - t0)
        return result


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Failed(Exception):
    """An answer that was not what the operation must return."""


class Counted(Exception):
    """A failed operation, already counted as that operation's error."""


# -- ingest --------------------------------------------------------------------------------------------------


def trace_body(trace_id: str, client: int, n: int) -> dict[str, Any]:
    return {"id": trace_id, **bench_trace(client, n, "load")}


async def ingest_client(
    base: str, token: str, client: int, stop: asyncio.Event, rec: Recorder, acked: list[str]
) -> None:
    path = f"/api/v1/tenants/{TENANT}/traces"
    async with RawClient(base, token) as http:
        n = 0
        while not stop.is_set():
            batch = n % BATCH_EVERY == BATCH_EVERY - 1
            size = BATCH_SIZE if batch else 1
            ids = [f"ld-c{client}-{n:08d}-{k}" for k in range(size)]
            traces = [trace_body(i, client, n) for i in ids]
            body = {"traces": traces} if batch else traces[0]
            op = f"ingest ({BATCH_SIZE} traces/request)" if batch else "ingest (1 trace/request)"
            n += 1
            try:
                status, answer = await rec.timed(op, functools.partial(http.post, path, body))
            except Exception as exc:  # the connection is broken: this client stops
                rec.error(op, f"{type(exc).__name__}: {exc}")
                return
            if status != 201:
                rec.error(op, f"{status} {answer}")
                continue
            got = [t["id"] for t in answer["traces"]] if batch else [answer["id"]]
            created = answer["created"] == size if batch else answer["created"] is True
            if got != ids or not created:
                rec.error(op, f"sent {ids}, answer {answer}")
                continue
            acked.extend(ids)


# -- agents --------------------------------------------------------------------------------------------------


def prompt_content(agent: int) -> dict[str, Any]:
    return {
        "blocks": [
            {"id": "intro", "role": "system", "content": f"You help {{{{ company }}}} customers (agent {agent})."},
            {"id": "ask", "role": "user", "content": "Question: {{ question }}"},
        ],
        "variables": [
            {"name": "company", "type": "string", "required": True},
            {"name": "question", "type": "string", "required": True},
        ],
        "model": {"provider": "agnt-local", "name": "echo"},
    }


class RestTools:
    """The tools an agent uses, over REST (httpx2): the same names and arguments as the MCP tools."""

    transport = "rest"

    def __init__(self, base: str, token: str) -> None:
        self.http = httpx2.AsyncClient(
            base_url=f"{base}/api/v1/tenants/{TENANT}", headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    async def __aenter__(self) -> RestTools:
        await self.http.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.__aexit__(None, None, None)

    async def call(self, tool: str, **a: Any) -> dict[str, Any]:
        sid = a.get("session_id")
        session = f"/playground/sessions/{sid}"
        h = self.http
        if tool == "run_prompt":
            r = await h.post(f"/prompts/{a['name']}/run", json={"variables": a["variables"], "messages": a["messages"]})
        elif tool == "list_traces":
            r = await h.get("/traces", params={k: v for k, v in a.items()})
        elif tool == "open_playground":
            r = await h.post(f"/traces/{a['trace_id']}/playground/sessions")
        elif tool == "edit_block":
            r = await h.patch(f"{session}/blocks/{a['block_id']}", json={"content": a["content"]})
        elif tool == "run_session":
            r = await h.post(f"{session}/run")
        elif tool == "diff_session":
            r = await h.get(f"{session}/diff")
        elif tool == "save_session":
            r = await h.post(f"{session}/save", json={"force": a.get("force", False)})
        elif tool == "publish_prompt":
            r = await h.post(f"/prompts/{a['name']}/publish", json={"note": a.get("note", "")})
        elif tool == "get_prompt":
            r = await h.get(f"/prompts/{a['name']}")
        else:  # pragma: no cover - a typo in this script
            raise ValueError(tool)
        if r.status_code not in (200, 201):
            raise Failed(f"{r.status_code} {r.text}")
        result: dict[str, Any] = r.json()
        return result


class McpTools:
    """The same tools over MCP (streamable HTTP, the SDK client)."""

    transport = "mcp"

    def __init__(self, base: str, token: str) -> None:
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        self.http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
        self.client = Client(streamable_http_client(base + "/mcp", http_client=self.http))

    async def __aenter__(self) -> McpTools:
        await self.http.__aenter__()
        await self.client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.__aexit__(None, None, None)
        await self.http.__aexit__(None, None, None)

    async def call(self, tool: str, **a: Any) -> dict[str, Any]:
        result = await self.client.call_tool(tool, a)
        if result.is_error or result.structured_content is None:
            text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
            raise Failed(text)
        return dict(result.structured_content)


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise Failed(what)


async def agent(
    agent_no: int, tools: RestTools | McpTools, stop: asyncio.Event, rec: Recorder, loops: list[int]
) -> None:
    """The fix loop on this agent's own prompt (so that its saves never conflict), until ``stop``."""
    name = f"agent-{agent_no}"
    tag = tools.transport

    async def step(tool: str, **args: Any) -> dict[str, Any]:
        op = f"{tag} {tool}"
        try:
            result: dict[str, Any] = await rec.timed(op, lambda: tools.call(tool, **args))
        except Exception as exc:
            rec.error(op, f"{type(exc).__name__}: {exc}")
            raise Counted(op) from None
        return result

    version = 1
    k = 0
    while not stop.is_set():
        k += 1
        try:
            question = f"agent {agent_no} loop {k}: where is my refund?"
            ran = await step("run_prompt", name=name, variables={"company": "Acme", "question": question}, messages=[])
            trace = ran["trace"]
            expect(trace["status"] == "success" and trace["promptVersion"] == version, f"run_prompt gave {trace}")
            rows = await step("list_traces", prompt_name=name, source="run", limit=5)
            expect(rows["traces"][0]["id"] == trace["id"], f"list_traces: newest is not {trace['id']}: {rows}")
            session = await step("open_playground", trace_id=trace["id"])
            sid = session["id"]
            expect(session["traceId"] == trace["id"], f"open_playground: {session}")
            text = f"You help {{{{ company }}}} customers, kindly (agent {agent_no}, loop {k})."
            edited = await step("edit_block", session_id=sid, block_id="intro", content=text)
            expect(edited["blocks"][0]["content"] == text, f"edit_block: {edited['blocks']}")
            runs = await step("run_session", session_id=sid)
            expect(
                len(runs["runs"]) == 1 and runs["runs"][0]["status"] == "success" and runs["runs"][0]["traceId"],
                f"run_session: {runs}",
            )
            diff = await step("diff_session", session_id=sid)
            expect(diff["changed"] is True and diff["models"], f"diff_session: {diff.get('summary')}")
            saved = await step("save_session", session_id=sid)
            expect(saved["prompt"] == name and saved["draftRevision"] == version + 1, f"save_session: {saved}")
            published = await step("publish_prompt", name=name, note=f"loop {k}")
            expect(published["version"] == version + 1, f"publish_prompt: {published}")
            version += 1
            loops[agent_no] += 1
        except Counted:
            continue
        except Exception as exc:  # a wrong answer (Failed) or an unexpected shape
            rec.error(f"{tag} check", f"{type(exc).__name__}: {exc}")


# -- verification --------------------------------------------------------------------------------------------


async def list_ingested(base: str, token: str) -> list[str]:
    ids: list[str] = []
    cursor = None
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(base_url=base, headers=headers, timeout=120) as c:
        while True:
            params: dict[str, Any] = {"limit": 200, "order": "asc", "source": "ingest"}
            if cursor:
                params["cursor"] = cursor
            r = await c.get(f"/api/v1/tenants/{TENANT}/traces", params=params)
            r.raise_for_status()
            page = r.json()
            ids += [t["id"] for t in page["traces"]]
            cursor = page["nextCursor"]
            if not cursor:
                return ids


async def published_versions(base: str, token: str, agents: int) -> list[int]:
    out = []
    async with RestTools(base, token) as rest:
        for a in range(agents):
            out.append((await rest.call("get_prompt", name=f"agent-{a}"))["latestVersion"])
    return out


def file_counts(db: str) -> tuple[str, int, int]:
    con = sqlite3.connect(db)
    try:
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        ingested = con.execute("SELECT count(*) FROM traces WHERE source = 'ingest'").fetchone()[0]
        dup = con.execute(
            "SELECT count(*) FROM (SELECT 1 FROM traces GROUP BY tenant_id, id HAVING count(*) > 1)"
        ).fetchone()[0]
        return integrity, ingested, dup
    finally:
        con.close()


# -- the run -------------------------------------------------------------------------------------------------


async def seed(base: str, token: str, agents: int) -> None:
    async with RestTools(base, token) as rest:
        for a in range(agents):
            name = f"agent-{a}"
            r = await rest.http.put(f"/prompts/{name}", json={"content": prompt_content(a)})
            r.raise_for_status()
            await rest.call("publish_prompt", name=name, note="seed")
        # Warm-up: the first model call loads LiteLLM (seconds); that is not what this suite measures.
        await rest.call("run_prompt", name="agent-0", variables={"company": "Acme", "question": "warm-up"}, messages=[])


async def load(args: argparse.Namespace, base: str, token: str) -> tuple[Recorder, list[str], list[int], float]:
    rec = Recorder()
    acked: list[str] = []
    loops = [0] * args.agents
    stop = asyncio.Event()
    clients: list[AbstractAsyncContextManager[Any]] = [
        McpTools(base, token) if a % 2 else RestTools(base, token) for a in range(args.agents)
    ]
    async with asyncio.TaskGroup() as tg:
        entered = [await c.__aenter__() for c in clients]  # MCP handshakes before the clock starts
        started = time.perf_counter()
        for i in range(args.ingest_clients):
            tg.create_task(ingest_client(base, token, i, stop, rec, acked))
        for a, tools in enumerate(entered):
            tg.create_task(agent(a, tools, stop, rec, loops))
        await asyncio.sleep(args.seconds)
        stop.set()
    elapsed = time.perf_counter() - started
    for c in clients:
        await c.__aexit__(None, None, None)
    return rec, acked, loops, elapsed


def table(rec: Recorder) -> str:
    ops = sorted(set(rec.latency) | set(rec.errors), key=lambda o: (not o.startswith("ingest"), o))
    width = max(len(o) for o in ops)
    lines = [f"{'operation'.ljust(width)}  {'count':>7}  {'p50 ms':>8}  {'p99 ms':>8}  {'max ms':>8}  {'errors':>6}"]
    for op in ops:
        lat = rec.latency.get(op) or [float("nan")]
        lines.append(
            f"{op.ljust(width)}  {len(rec.latency.get(op, [])):>7}  {pct(lat, 0.5) * 1000:>8.2f}  "
            f"{pct(lat, 0.99) * 1000:>8.2f}  {max(lat) * 1000:>8.2f}  {rec.errors.get(op, 0):>6}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace, db: str) -> int:
    token = create_token(db)
    server = Server(db)
    print(f"server: {server.url} (pid {server.proc.pid}, db {db})", flush=True)
    problems: list[str] = []
    try:
        asyncio.run(seed(server.url, token, args.agents))
        print(
            f"load: {args.ingest_clients} ingest clients + {args.agents} agents (REST and MCP alternating) "
            f"for {args.seconds:g} s …",
            flush=True,
        )
        rec, acked, loops, elapsed = asyncio.run(load(args, server.url, token))
        listed = asyncio.run(list_ingested(server.url, token))
        versions = asyncio.run(published_versions(server.url, token, args.agents))
    finally:
        code = server.stop()
    print()
    print(table(rec))
    print()
    traces_per_s = len(acked) / elapsed
    print(f"ingest: {len(acked)} traces acknowledged in {elapsed:.1f} s = {traces_per_s:,.0f} traces/s")
    print(f"agents: {', '.join(f'agent-{a} {n} loops' for a, n in enumerate(loops))}")

    for msg in rec.messages:
        problems.append(msg)
    errors = sum(rec.errors.values())
    if errors:
        problems.append(f"{errors} failed operations")
    acked_set, listed_set = set(acked), set(listed)
    lost, unexpected = acked_set - listed_set, listed_set - acked_set
    dup_acked, dup_listed = len(acked) - len(acked_set), len(listed) - len(listed_set)
    integrity, in_file, dup_file = file_counts(db)
    print(
        f"verify: listed {len(listed)} ingested traces back; lost {len(lost)}, unexpected {len(unexpected)}, "
        f"duplicated (acked {dup_acked}, listed {dup_listed}, in the file {dup_file}); file holds {in_file}; "
        f"integrity {integrity}"
    )
    if lost or unexpected or dup_acked or dup_listed or dup_file or in_file != len(acked_set):
        problems.append(f"ingest: lost {len(lost)} (e.g. {sorted(lost)[:3]}), unexpected {len(unexpected)}")
    if integrity != "ok":
        problems.append(f"integrity_check: {integrity}")
    for a, (n, v) in enumerate(zip(loops, versions, strict=True)):
        if v != n + 1:
            problems.append(f"agent-{a}: {n} loops finished but the prompt has {v} versions (expected {n + 1})")
        if n == 0:
            problems.append(f"agent-{a} finished no loop")
    if args.ingest_clients and not acked:
        problems.append("nothing was ingested")
    if code not in (0, -signal.SIGTERM):
        problems.append(f"server exit code {code} on SIGTERM")
    if server.errors_logged():
        problems.append("server logged errors:\n" + "".join(server.errors_logged()[:20]))
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("OK: no errors, nothing lost, nothing duplicated")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--ingest-clients", type=int, default=8)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--db", help="database file (default: a fresh one in a temporary directory)")
    args = parser.parse_args(argv)
    if args.db:
        if Path(args.db).exists():
            raise SystemExit(f"{args.db} exists: the checks need a fresh database")
        return run(args, args.db)
    with tempfile.TemporaryDirectory(prefix="agnt-load-") as tmp:
        return run(args, str(Path(tmp) / "traces.db"))


if __name__ == "__main__":
    raise SystemExit(main())
