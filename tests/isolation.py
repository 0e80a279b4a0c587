"""A hostile tenant against a real ``agnt-traces serve --http`` process, while a victim tenant measures itself.

Shared by ``tests/http/test_tenant_isolation.py`` (assertions) and ``bench/bench_isolation.py`` (a table).

:class:`Scenario` starts, on 127.0.0.1 only:

- an *honest* model server (``tests/modelserver.py``), the only endpoint listed in the server's
  ``AGNT_TRACES_MODEL_ENDPOINTS``, and an *evil* one that is listed nowhere and records what reaches it;
- ``agnt-traces serve --http --port 0`` in a subprocess, with ``OPENAI_API_KEY`` set to a fake secret;
- two tenants, ``attacker`` and ``victim``, each with its own token (``agnt-traces token create``), each
  loaded with a corpus of traces through the batch ingest route;
- the victim's probe (``tests/victim_probe.py``), a separate process that keeps timing the victim's own
  list, get and ingest calls.

Each ``attack_*`` coroutine is what the attacker does with its own ordinary token; :meth:`Scenario.measure`
runs one for at least a few seconds and returns an :class:`Outcome`: every request the attacker made
(status, error code, time, body), the victim's latencies during that window, and the server's RSS.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from modelserver import ModelServer

__all__ = [
    "ATTACKER",
    "SECRET",
    "VICTIM",
    "Outcome",
    "Scenario",
    "Stats",
    "Step",
    "attack_bad_bodies",
    "attack_evil_endpoint",
    "attack_forged_cursors",
    "attack_fts_prefix_flood",
    "attack_heavy_templates",
    "attack_mcp_session_flood",
    "attack_slow_playground",
    "baseline",
]

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-victim-secret-123"
ATTACKER = "attacker"
VICTIM = "victim"
OPS = ("list", "get", "ingest")
MODEL = "gpt-4o-mini"


# -- results -----------------------------------------------------------------------------------------------


@dataclass
class Step:
    """One request the attacker made."""

    what: str
    status: int  # HTTP status; for MCP tool calls 200 when the tool succeeded, else the error's HTTP status
    code: str | None  # the error code of the one error shape, if any
    seconds: float
    text: str = field(repr=False, default="")

    def brief(self) -> str:
        return f"{self.what}: {self.status} {self.code or ''} {self.seconds * 1000:.0f} ms".rstrip()


@dataclass
class Stats:
    count: int
    errors: int
    p50: float
    p99: float
    max: float

    def __str__(self) -> str:
        return (
            f"n={self.count} p50={self.p50 * 1000:.1f}ms p99={self.p99 * 1000:.1f}ms "
            f"max={self.max * 1000:.1f}ms errors={self.errors}"
        )


@dataclass
class Outcome:
    name: str
    steps: list[Step]
    seconds: float  # the whole attack window
    victim: dict[str, Stats]
    rss_mb: float
    alive: bool
    notes: dict[str, Any] = field(default_factory=dict)

    def report(self) -> str:
        lines = [f"== {self.name}: {len(self.steps)} requests in {self.seconds:.1f} s, server RSS {self.rss_mb:.0f} MB"]
        lines += [f"   victim {op}: {self.victim[op]}" for op in OPS if op in self.victim]
        slowest = sorted(self.steps, key=lambda s: -s.seconds)[:3]
        lines += ["   slowest: " + "; ".join(s.brief() for s in slowest)]
        for key, value in self.notes.items():
            lines.append(f"   {key}: {value}")
        return "\n".join(lines)

    def statuses(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for s in self.steps:
            out[s.status] = out.get(s.status, 0) + 1
        return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def error_code(text: str) -> str | None:
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        return code if isinstance(code, str) else None
    return None


# -- traces ------------------------------------------------------------------------------------------------


def corpus_trace(tenant: str, n: int) -> dict[str, Any]:
    """Varied English text, so that one-letter prefixes match nearly every trace."""
    words = ["refund", "invoice", "shipping", "password", "upgrade", "quota", "zebra", "jungle", "kayak", "xylophone"]
    return {
        "id": f"{tenant[:3]}-{n:07d}",
        "promptName": f"{tenant[:3]}-support",
        "promptVersion": 1,
        "manifest": {"system": "You are a helpful support agent.", "tools": [], "model": {}, "etag": "e1"},
        "variables": {"company_name": "Acme", "n": n, "topic": words[n % len(words)]},
        "messages": [
            {"role": "user", "content": f"Question {n} about {words[n % 7]} and {words[(n * 3) % 10]}: where is it?"}
        ],
        "output": "Your refund was issued yesterday; it should arrive within 3-5 business days. Have a good week!",
        "inputTokens": 40,
        "outputTokens": 19,
        "cost": round(0.0001 * (n % 50), 6),
        "duration": 0.1 + (n % 30) / 10,
        "model": {"provider": "openai", "name": MODEL},
        "status": "error" if n % 17 == 0 else "success",
        "error": {"type": "RateLimitError", "message": "slow down"} if n % 17 == 0 else None,
        "tags": ["corpus", f"t{n % 5}"],
    }


def plain_trace(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "promptName": "plain",
        "messages": [{"role": "user", "content": "hello there"}],
        "output": "hi",
        "inputTokens": 2,
        "outputTokens": 1,
        "model": {"provider": "openai", "name": MODEL},
    }
    base.update(overrides)
    return base


# -- the scenario ------------------------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "agnt_traces", *args], capture_output=True, text=True, check=True, env=env, timeout=120
    )
    return out.stdout.strip()


def _server_env(honest: ModelServer, extra: dict[str, str] | None = None) -> dict[str, str]:
    src = str(ROOT / "src")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p),
        "AGNT_TRACES_LOG_LEVEL": "warning",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "AGNT_TRACES_MODEL_ENDPOINTS": honest.openai_base,
        "OPENAI_API_KEY": SECRET,
        "AGNT_TRACES_MODEL_TIMEOUT": "20",
    }
    env.pop("AGNT_TRACES_DB", None)
    env.update(extra or {})
    return env


class Scenario:
    """The server process, the two model servers, the two tenants and the victim's probe."""

    def __init__(
        self,
        corpus: int = 20_000,
        workdir: str | None = None,
        probe: bool = True,
        warm: bool = True,
        budget: float = 40.0,
    ) -> None:
        self.budget = budget  # seconds an attack may go on making requests
        self.deadline = float("inf")
        self._tmp = tempfile.TemporaryDirectory(prefix="agnt-isolation-") if workdir is None else None
        self.dir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        self.db = str(self.dir / "traces.db")
        self.corpus = corpus
        self.honest = ModelServer().start()
        self.evil = ModelServer().start()
        self.env = _server_env(self.honest)
        try:
            self.tokens = {
                t: _cli("token", "create", "--tenant", t, "--db", self.db, env=self.env) for t in (ATTACKER, VICTIM)
            }
        except BaseException:
            self.honest.stop()
            self.evil.stop()
            raise
        self.log: deque[str] = deque(maxlen=20_000)
        self.probe: subprocess.Popen[bytes] | None = None
        self.probe_out = str(self.dir / "victim.log")
        self.victim_trace_id = f"{VICTIM[:3]}-{0:07d}"
        self.proc = self._start_server()
        try:
            self.load_corpus()
            if warm:
                self.warm_up()
            if probe:
                self.probe = self._start_probe()
        except BaseException:
            self.close()
            raise
        self.rss_start_mb = self.rss_mb()

    # lifecycle

    def _start_server(self) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "agnt_traces", "serve", "--http", "--port", "0", "--db", self.db]
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env, text=True
        )
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        while True:
            line = proc.stderr.readline()
            if not line or time.monotonic() > deadline:
                proc.kill()
                proc.stderr.close()
                raise RuntimeError(f"server did not start (code {proc.wait(10)}): {line}{''.join(self.log)}")
            self.log.append(line)
            match = re.search(r"serving on (http://\S+?) ", line)
            if match:
                self.url = match.group(1)
                break
        self._drain = threading.Thread(target=self.log.extend, args=(proc.stderr,), daemon=True)
        self._drain.start()
        return proc

    def _start_probe(self) -> subprocess.Popen[bytes]:
        probe = Path(__file__).with_name("victim_probe.py")
        cmd = [sys.executable, str(probe), self.url, VICTIM, self.tokens[VICTIM], self.victim_trace_id, self.probe_out]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # running: each op answered at least once
            if len({ln[2] for ln in self._probe_lines()}) == len(OPS):
                return proc
            time.sleep(0.05)
        proc.kill()
        proc.wait(10)
        if proc.stdin is not None:
            proc.stdin.close()
        raise RuntimeError("the victim probe did not start")

    def close(self) -> None:
        if getattr(self, "_closed", False):
            return
        self._closed = True
        if self.probe is not None:
            if self.probe.poll() is None:
                self.probe.send_signal(signal.SIGTERM)
                try:
                    self.probe.wait(10)
                except subprocess.TimeoutExpired:
                    self.probe.kill()
                    self.probe.wait(10)
            if self.probe.stdin is not None:
                self.probe.stdin.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._drain.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.honest.stop()
        self.evil.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Scenario:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # clients

    def client(self, tenant: str = ATTACKER, timeout: float = 60) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            base_url=f"{self.url}/api/v1/tenants/{tenant}",
            headers={"Authorization": f"Bearer {self.tokens[tenant]}"},
            timeout=timeout,
        )

    def load_corpus(self, batch: int = 500) -> None:
        with httpx2.Client(timeout=120) as http:
            for tenant in (VICTIM, ATTACKER):
                url = f"{self.url}/api/v1/tenants/{tenant}/traces"
                headers = {"Authorization": f"Bearer {self.tokens[tenant]}"}
                for start in range(0, max(self.corpus, 1), batch):
                    traces = [corpus_trace(tenant, n) for n in range(start, min(start + batch, max(self.corpus, 1)))]
                    r = http.post(url, json={"traces": traces}, headers=headers)
                    if r.status_code not in (200, 201):
                        raise RuntimeError(f"loading the corpus failed: {r.status_code} {r.text[:300]}")

    def warm_up(self) -> None:
        """One model call through the honest endpoint: LiteLLM is loaded before any window is measured."""
        content = {
            "blocks": [{"id": "ask", "role": "user", "content": "warm up"}],
            "model": {"provider": "openai", "name": MODEL, "params": {"api_base": self.honest.openai_base}},
        }
        with httpx2.Client(
            base_url=f"{self.url}/api/v1/tenants/{VICTIM}",
            headers={"Authorization": f"Bearer {self.tokens[VICTIM]}"},
            timeout=120,
        ) as http:
            r = http.put("/prompts/warm-up", json={"content": content})
            r.raise_for_status()
            r = http.post("/prompts/warm-up/run", json={"label": "draft"})
            self.warm_up_status = r.status_code
            self.warm_up_text = r.text

    # measurements

    def _probe_lines(self) -> list[list[str]]:
        try:
            with open(self.probe_out) as f:
                return [ln.split() for ln in f if ln.count(" ") == 3]
        except FileNotFoundError:
            return []

    def victim_stats(self, start: float, end: float) -> dict[str, Stats]:
        """The victim's requests that started within [start, end], and any that were in flight across it."""
        lat: dict[str, list[float]] = {op: [] for op in OPS}
        errors = dict.fromkeys(OPS, 0)
        for t0s, t1s, op, status in self._probe_lines():
            t0, t1 = float(t0s), float(t1s)
            if t1 < start or t0 > end:
                continue
            lat[op].append(t1 - t0)
            if status not in ("200", "201"):
                errors[op] += 1
        return {
            op: Stats(len(v), errors[op], pct(v, 0.5), pct(v, 0.99), max(v, default=float("nan")))
            for op, v in lat.items()
        }

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            return False
        try:
            return httpx2.get(f"{self.url}/healthz", timeout=10).status_code == 200
        except httpx2.HTTPError:
            return False

    def over(self) -> bool:
        """The current attack has used its time budget: it makes no further requests."""
        return time.monotonic() > self.deadline

    async def wait_idle(self, limit: float = 180.0) -> None:
        """Until ``/healthz`` answers within 0.2 s (or ``limit`` seconds have passed)."""
        deadline = time.monotonic() + limit
        async with httpx2.AsyncClient(timeout=10) as http:
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                try:
                    ok = (await http.get(f"{self.url}/healthz")).status_code == 200
                except httpx2.HTTPError:
                    ok = False
                if ok and time.monotonic() - t0 < 0.2:
                    return
                await asyncio.sleep(0.2)

    def errors_logged(self) -> list[str]:
        return [ln for ln in self.log if "Traceback" in ln or "ERROR" in ln or "CRITICAL" in ln]

    async def measure(
        self, name: str, attack: Callable[[Scenario], Awaitable[list[Step]]], min_seconds: float = 3.0
    ) -> Outcome:
        """Run ``attack`` (again and again until ``min_seconds`` have passed) and measure the victim meanwhile."""
        steps: list[Step] = []
        notes: dict[str, Any] = {}
        start = time.monotonic()
        self.deadline = start + self.budget
        rounds = 0
        while True:
            rounds += 1
            steps += await attack(self)
            if time.monotonic() - start >= min_seconds or getattr(attack, "once", False) or self.over():
                break
        attack_end = time.monotonic()
        # The window ends when the server answers promptly again: work it still does for the attacker after the
        # attacker gave up is part of what the victim feels.
        await self.wait_idle()
        end = time.monotonic()
        await asyncio.sleep(0.1)  # the probe's last lines
        notes["rounds"] = rounds
        notes["server busy after the attack, s"] = round(end - attack_end, 1)
        notes.update(getattr(attack, "notes", {}))
        return Outcome(name, steps, end - start, self.victim_stats(start, end), self.rss_mb(), self.alive(), notes)


# -- request helpers ---------------------------------------------------------------------------------------


def skipped(what: str) -> Step:
    """A request the attacker did not make: the attack had used its time budget."""
    return Step(what, 0, "not tried: the attack's time budget was spent", 0.0)


async def timed(what: str, call: Awaitable[httpx2.Response]) -> tuple[Step, httpx2.Response | None]:
    t0 = time.perf_counter()
    try:
        r = await call
    except httpx2.HTTPError as exc:
        return Step(what, 0, None, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"), None
    return Step(what, r.status_code, error_code(r.text), time.perf_counter() - t0, r.text), r


async def open_session(http: httpx2.AsyncClient, steps: list[Step], trace: dict[str, Any], tag: str) -> str | None:
    step, r = await timed(f"{tag}: ingest", http.post("/traces", json=trace))
    steps.append(step)
    if r is None or r.status_code not in (200, 201):
        return None
    step, r = await timed(f"{tag}: open playground", http.post(f"/traces/{r.json()['id']}/playground/sessions"))
    steps.append(step)
    if r is None or r.status_code != 201:
        return None
    sid: str = r.json()["id"]
    return sid


# -- (a) model calls to an endpoint the operator did not list -----------------------------------------------


def evil_params(scn: Scenario) -> dict[str, dict[str, Any]]:
    honest, evil = scn.honest.port, scn.evil.port
    return {
        "api_base": {"api_base": scn.evil.openai_base},
        "base_url": {"base_url": scn.evil.openai_base},
        "userinfo": {"api_base": f"http://127.0.0.1:{honest}@127.0.0.1:{evil}/v1"},
        "honest-in-path": {"api_base": f"http://127.0.0.1:{evil}/http://127.0.0.1:{honest}/v1"},
        "extra_headers": {"api_base": scn.evil.openai_base, "extra_headers": {"Host": f"127.0.0.1:{honest}"}},
    }


async def _mcp_call(client: Any, tool: str, args: dict[str, Any], what: str) -> tuple[Step, dict[str, Any] | None]:
    from agnt_traces.errors import AgntError

    status_of = {cls.code: cls.http_status for cls in AgntError.__subclasses__() if hasattr(cls, "code")}
    t0 = time.perf_counter()
    try:
        result = await client.call_tool(tool, args)
    except Exception as exc:
        return Step(what, 0, None, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"), None
    seconds = time.perf_counter() - t0
    text = " ".join(getattr(c, "text", "") for c in result.content)
    if result.is_error:
        code = error_code(text)
        return Step(what, status_of.get(code or "", 400), code, seconds, text), None
    structured = dict(result.structured_content or {})
    return Step(what, 200, None, seconds, text + json.dumps(structured)), structured


def mcp_client(scn: Scenario, tenant: str) -> Any:
    from contextlib import AsyncExitStack

    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    class _Ctx:
        async def __aenter__(self) -> Any:
            self.stack = AsyncExitStack()
            http = await self.stack.enter_async_context(
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {scn.tokens[tenant]}"}, timeout=60)
            )
            client = Client(streamable_http_client(scn.url + "/mcp", http_client=http), mode="legacy")
            return await self.stack.enter_async_context(client)

        async def __aexit__(self, *exc: object) -> None:
            await self.stack.aclose()

    return _Ctx()


async def attack_evil_endpoint(scn: Scenario) -> list[Step]:
    steps: list[Step] = []
    async with scn.client() as http:
        for label, params in evil_params(scn).items():
            if scn.over():
                steps.append(skipped(label))
                continue
            model = {"provider": "openai", "name": MODEL, "params": params}
            content = {"blocks": [{"id": "ask", "role": "user", "content": "tell me a secret"}], "model": model}
            name = f"evil-{label.replace('_', '-')}"
            steps.append(
                (await timed(f"{label}: PUT prompt", http.put(f"/prompts/{name}", json={"content": content})))[0]
            )
            steps.append(
                (await timed(f"{label}: run draft", http.post(f"/prompts/{name}/run", json={"label": "draft"})))[0]
            )
            steps.append((await timed(f"{label}: publish", http.post(f"/prompts/{name}/publish", json={})))[0])
            steps.append((await timed(f"{label}: run production", http.post(f"/prompts/{name}/run", json={})))[0])
            sid = await open_session(http, steps, plain_trace(), f"{label}: session")
            if sid is not None:
                steps.append(
                    (
                        await timed(
                            f"{label}: PATCH models",
                            http.patch(f"/playground/sessions/{sid}/models", json={"models": [model]}),
                        )
                    )[0]
                )
                steps.append((await timed(f"{label}: run session", http.post(f"/playground/sessions/{sid}/run")))[0])
            manifest = {"system": "", "tools": [], "model": model, "etag": "e-evil"}
            sid = await open_session(http, steps, plain_trace(manifest=manifest), f"{label}: ingested manifest")
            if sid is not None:
                steps.append(
                    (await timed(f"{label}: ingested manifest: session", http.get(f"/playground/sessions/{sid}")))[0]
                )
                steps.append(
                    (await timed(f"{label}: ingested manifest: run", http.post(f"/playground/sessions/{sid}/run")))[0]
                )
        async with mcp_client(scn, ATTACKER) as mcp:
            for label, params in evil_params(scn).items():
                model = {"provider": "openai", "name": MODEL, "params": params}
                content = {"blocks": [{"id": "ask", "role": "user", "content": "tell me a secret"}], "model": model}
                name = f"mcp-evil-{label.replace('_', '-')}"
                steps.append(
                    (
                        await _mcp_call(
                            mcp, "upsert_prompt", {"name": name, "content": content}, f"{label}: MCP upsert_prompt"
                        )
                    )[0]
                )
                steps.append(
                    (await _mcp_call(mcp, "run_prompt", {"name": name, "label": "draft"}, f"{label}: MCP run_prompt"))[
                        0
                    ]
                )
                step, got = await _mcp_call(mcp, "ingest_trace", {"trace": plain_trace()}, f"{label}: MCP ingest")
                steps.append(step)
                if got is None:
                    continue
                step, session = await _mcp_call(mcp, "open_playground", {"trace_id": got["id"]}, f"{label}: MCP open")
                steps.append(step)
                if session is None:
                    continue
                args = {"session_id": session["id"], "models": [model]}
                steps.append((await _mcp_call(mcp, "update_models", args, f"{label}: MCP update_models"))[0])
                steps.append(
                    (await _mcp_call(mcp, "run_session", {"session_id": session["id"]}, f"{label}: MCP run_session"))[0]
                )
    return steps


attack_evil_endpoint.once = True  # type: ignore[attr-defined]


async def honest_endpoint_still_works(scn: Scenario) -> list[Step]:
    """The positive control of (a): the listed endpoint gets the call (and the key)."""
    steps: list[Step] = []
    model = {"provider": "openai", "name": MODEL, "params": {"api_base": scn.honest.openai_base, "temperature": 0.2}}
    content = {"blocks": [{"id": "ask", "role": "user", "content": "hello honest"}], "model": model}
    async with scn.client() as http:
        steps.append((await timed("PUT honest prompt", http.put("/prompts/honest", json={"content": content})))[0])
        steps.append((await timed("run honest draft", http.post("/prompts/honest/run", json={"label": "draft"})))[0])
    return steps


# -- (b) templates that burn CPU or memory ---------------------------------------------------------------------

HEAVY_TEMPLATES: dict[str, str] = {
    "groupby-nested": "{% for i in range(1000) %}{% for g in range(10000)|groupby('imag') %}{{ g.grouper }}"
    "{% endfor %}{% endfor %}",
    "groupby-2000": "{% for i in range(1000) %}{% for g in range(2000)|groupby('real') %}{% endfor %}{% endfor %}",
    "sort-huge": "{% for i in range(10000) %}{{ (range(10000)|list|sort(reverse=true))|first }}{% endfor %}",
    "string-mult": "{% for i in range(10000) %}{{ (('ab' * 400000)|replace('a', 'xy'))|length }}{% endfor %}",
    "unique-huge": "{% for i in range(10000) %}{{ (range(10000)|map('string')|unique|list)|length }}{% endfor %}",
    "400kb": "{{ a }}" * 57_000,
    "deep-if": "{% if true %}" * 3000 + "x" + "{% endif %}" * 3000,
    "deep-parens": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
}


async def attack_heavy_templates(scn: Scenario) -> list[Step]:
    steps: list[Step] = []
    async with scn.client(timeout=30) as http:
        sid = await open_session(http, steps, plain_trace(), "template session")
        block_id = None
        if sid is not None:
            r = await http.get(f"/playground/sessions/{sid}")
            blocks = r.json().get("blocks") or []
            block_id = blocks[-1]["id"] if blocks else None
        for label, template in HEAVY_TEMPLATES.items():
            if scn.over():
                steps.append(skipped(label))
                continue
            variables = (
                [{"name": "a", "type": "string", "required": False, "default": "x"}] if "{{ a }}" in template else []
            )
            content = {"blocks": [{"id": "b", "role": "user", "content": template}], "variables": variables}
            name = f"tpl-{label}"
            steps.append(
                (await timed(f"{label}: PUT prompt", http.put(f"/prompts/{name}", json={"content": content})))[0]
            )
            steps.append(
                (await timed(f"{label}: run draft", http.post(f"/prompts/{name}/run", json={"label": "draft"})))[0]
            )
            if sid is not None and block_id is not None:
                steps.append(
                    (
                        await timed(
                            f"{label}: edit block",
                            http.patch(f"/playground/sessions/{sid}/blocks/{block_id}", json={"content": template}),
                        )
                    )[0]
                )
                steps.append((await timed(f"{label}: compile", http.post(f"/playground/sessions/{sid}/compile")))[0])
    return steps


# -- (c) full-text query of many one-letter prefixes ------------------------------------------------------------

PREFIX_QUERY = " ".join(f"{c}*" for c in ("abcdefghijklmnopqrstuvwxyz0123456789" * 3)[:100])


def fts_prefix_flood(or_terms: int = 2) -> Callable[[Scenario], Awaitable[list[Step]]]:
    """100 one-letter prefixes (AND), sorted by time and by cost; then ``or_terms`` prefixes OR'ed, sorted by
    duration (today that walks the duration index and probes the full-text index once per row: 2 terms
    take ~8 s at 2 x 20,000 traces, 60 terms minutes)."""

    async def attack(scn: Scenario) -> list[Step]:
        return await _fts_prefix_flood(scn, or_terms)

    return attack


async def _fts_prefix_flood(scn: Scenario, or_terms: int) -> list[Step]:
    steps: list[Step] = []
    async with scn.client(timeout=30) as http:
        for sort in ("created_at", "cost"):
            if scn.over():
                break
            params: dict[str, str | int] = {"query": PREFIX_QUERY, "limit": 200, "sort": sort}
            steps.append((await timed(f"100 prefixes sort={sort}", http.get("/traces", params=params)))[0])
        params = {"query": " OR ".join(PREFIX_QUERY.split()[:or_terms]), "limit": 200, "sort": "duration"}
        if not scn.over():
            steps.append(
                (await timed(f"{or_terms} prefixes OR'ed sort=duration", http.get("/traces", params=params)))[0]
            )
    return steps


attack_fts_prefix_flood = fts_prefix_flood()


# -- (d) a playground run on 8 slow models ---------------------------------------------------------------------

SLOW_SECONDS = 2.0


async def attack_slow_playground(scn: Scenario) -> list[Step]:
    steps: list[Step] = []
    models = [
        {"provider": "openai", "name": f"mock-slow-{SLOW_SECONDS}-m{k}", "params": {"api_base": scn.honest.openai_base}}
        for k in range(8)
    ]
    async with scn.client(timeout=60) as http:

        async def one(k: int) -> None:
            sid = await open_session(http, steps, plain_trace(), f"slow run {k}")
            if sid is None:
                return
            steps.append(
                (
                    await timed(
                        f"slow run {k}: PATCH 8 models",
                        http.patch(f"/playground/sessions/{sid}/models", json={"models": models}),
                    )
                )[0]
            )
            steps.append((await timed(f"slow run {k}: run", http.post(f"/playground/sessions/{sid}/run")))[0])

        await asyncio.gather(*(one(k) for k in range(3)))
    return steps


attack_slow_playground.once = True  # type: ignore[attr-defined]


# -- (e) MCP session flood ------------------------------------------------------------------------------------------

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "flood", "version": "1"}},
}


FLOOD_HOLD_SECONDS = 3.0


def session_flood(max_sessions: int, workers: int = 8) -> Callable[[Scenario], Awaitable[list[Step]]]:
    """Open MCP sessions with ``initialize`` until one is refused (or ``max_sessions``); then the victim opens one."""

    async def attack(scn: Scenario) -> list[Step]:
        steps: list[Step] = []
        opened: list[str] = []
        refused: list[Step] = []
        headers = {
            "Authorization": f"Bearer {scn.tokens[ATTACKER]}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        t0 = time.perf_counter()
        async with httpx2.AsyncClient(timeout=60, headers=headers) as http:

            async def worker() -> None:
                while len(opened) + len(refused) < max_sessions and not refused and not scn.over():
                    step, r = await timed("initialize", http.post(scn.url + "/mcp", json=INITIALIZE))
                    sid = r.headers.get("mcp-session-id") if r is not None else None
                    if r is not None and r.status_code == 200 and sid:
                        opened.append(sid)
                    else:
                        refused.append(step)
                        steps.append(step)

            flood_start = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(workers)))
            # Capped, the flood is over in a blink: the attacker then holds its sessions and keeps knocking
            # for a few seconds, so that the victim's latency is measured over a real window.
            hold_until = time.monotonic() + FLOOD_HOLD_SECONDS
            while refused and time.monotonic() < hold_until and not scn.over():
                step, _ = await timed("initialize (holding)", http.post(scn.url + "/mcp", json=INITIALIZE))
                steps.append(step)
            flood_end = time.monotonic()
            flood_seconds = time.perf_counter() - t0
            # The victim, now: can it still open a session and call a tool?
            step = Step("victim opens an MCP session and lists traces", 0, None, 0.0)
            t1 = time.perf_counter()
            try:
                with anyio_fail_after(60):
                    async with mcp_client(scn, VICTIM) as mcp:
                        step, _ = await _mcp_call(mcp, "list_traces", {"limit": 1}, step.what)
            except Exception as exc:
                step = Step(step.what, 0, None, time.perf_counter() - t1, f"{type(exc).__name__}: {exc}"[:500])
            steps.append(step)
            cleanup_start = time.monotonic()
            for sid in opened:  # clean up, so that later attacks see the server as before
                await http.delete(scn.url + "/mcp", headers={"mcp-session-id": sid})
            cleanup = scn.victim_stats(cleanup_start, time.monotonic())
            attack.notes = {  # type: ignore[attr-defined]
                "victim during the flood": {op: str(st) for op, st in scn.victim_stats(flood_start, flood_end).items()},
                "victim while the sessions are closed": {op: str(st) for op, st in cleanup.items()},
                "sessions opened": len(opened),
                "first refusal": refused[0].brief() + " " + refused[0].text[:200] if refused else None,
                "flood seconds": round(flood_seconds, 1),
                "rss after flood MB": round(scn.rss_mb()),
            }
        return steps

    attack.once = True  # type: ignore[attr-defined]
    attack.notes = {}  # type: ignore[attr-defined]
    return attack


def anyio_fail_after(seconds: float) -> Any:
    import anyio

    return anyio.fail_after(seconds)


attack_mcp_session_flood = session_flood(2000)


# -- (f) forged cursors ---------------------------------------------------------------------------------------------


def b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


FORGED_CURSORS: dict[str, tuple[str, dict[str, str]]] = {
    "garbage": ("!!not-a-cursor!!", {}),
    "empty json": (b64(b""), {}),
    "2^63 seq": (b64(["created_at", "desc", 2**63, 2**63]), {}),
    "2^64 seq": (b64(["created_at", "desc", 2**64, 2**64]), {}),
    "-2^63-1 seq": (b64(["created_at", "desc", -(2**63) - 1, -(2**63) - 1]), {}),
    "2^63 cost": (b64(["cost", "desc", 2**63, 2**63]), {"sort": "cost"}),
    "10^400 cost": (b64(b'["cost","desc",1e400,5]'), {"sort": "cost"}),
    "huge int": (b64(b'["created_at","desc",' + b"9" * 5000 + b"," + b"9" * 5000 + b"]"), {}),
    "bool seq": (b64(["created_at", "desc", True, True]), {}),
    "nested": (b64(b"[" * 5000 + b"]" * 5000), {}),
    "plain base64 int": (base64.urlsafe_b64encode((2**64).to_bytes(9, "big")).decode(), {}),
    "decimal int": (str(2**63), {}),
}


async def attack_forged_cursors(scn: Scenario) -> list[Step]:
    steps: list[Step] = []
    async with scn.client(VICTIM) as victim:
        r = await victim.get("/traces", params={"limit": 1})
        victim_cursor = r.json()["nextCursor"]
        r = await victim.get("/traces", params={"limit": 1, "sort": "cost"})
        victim_cost_cursor = r.json()["nextCursor"]
    cursors = {
        **FORGED_CURSORS,
        "victim's cursor": (victim_cursor, {}),
        "victim's cost cursor": (victim_cost_cursor, {"sort": "cost"}),
    }
    async with scn.client() as http:
        for label, (cursor, extra) in cursors.items():
            params = {"limit": 200, "cursor": cursor, **extra}
            steps.append((await timed(label, http.get("/traces", params=params)))[0])
    return steps


def foreign_rows(step: Step) -> list[str]:
    """Ids of rows in a list answer that do not belong to the attacker."""
    try:
        rows = json.loads(step.text).get("traces") or []
    except (ValueError, AttributeError):
        return []
    return [
        r.get("id", "?")
        for r in rows
        if str(r.get("id", "")).startswith(VICTIM[:3] + "-")
        or r.get("promptName") in ("vic-support", "victim-probe", "warm-up")
    ]


# -- (g) bodies the JSON parser or the store may choke on -------------------------------------------------------

BAD_BODIES: dict[str, bytes] = {
    "nested 10000": b'{"promptName": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    "nested objects 10000": b'{"metadata": ' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"}",
    "lone surrogate value": b'{"promptName": "p", "output": "\\ud800", '
    b'"messages": [{"role": "user", "content": "\\udfff"}]}',
    "lone surrogate key": b'{"promptName": "p", "metadata": {"\\ud800": 1}}',
    "1e400 cost": b'{"promptName": "p", "cost": 1e400}',
    "-1e400 duration": b'{"promptName": "p", "duration": -1e400}',
    "1e400 in metadata": b'{"promptName": "p", "metadata": {"x": 1e400}}',
    "NaN": b'{"promptName": "p", "cost": NaN}',
    "Infinity": b'{"promptName": "p", "cost": Infinity}',
    "huge int token count": b'{"promptName": "p", "inputTokens": ' + b"9" * 4000 + b"}",
    "invalid utf-8": b'{"promptName": "\xff\xfe"}',
}

# Routes that take JSON, with where the bad value is placed (the trace bodies are reused as they are).
_BODY_ROUTES: tuple[tuple[str, str, Callable[[bytes], bytes]], ...] = (
    ("POST", "/traces", lambda b: b),
    ("POST", "/traces", lambda b: b'{"traces": [' + b + b"]}"),
    ("PUT", "/prompts/bodies", lambda b: b'{"content": {"blocks": []}, "description": ' + b + b"}"),
    ("POST", "/prompts/bodies/run", lambda b: b'{"label": "draft", "variables": ' + b + b"}"),
)


async def attack_bad_bodies(scn: Scenario) -> list[Step]:
    steps: list[Step] = []
    headers = {"content-type": "application/json"}
    async with scn.client() as http:
        await http.put("/prompts/bodies", json={"content": {"blocks": [{"id": "a", "role": "user", "content": "hi"}]}})
        for label, body in BAD_BODIES.items():
            if scn.over():
                steps.append(skipped(label))
                continue
            for method, path, wrap in _BODY_ROUTES:
                what = f"{label}: {method} {path}{' (batch)' if b'traces' in wrap(b'') else ''}"
                steps.append((await timed(what, http.request(method, path, content=wrap(body), headers=headers)))[0])
        # Whatever was accepted must not break the attacker's own reads afterwards.
        for step in list(steps):
            if step.status == 201 and step.what.endswith("POST /traces"):
                trace_id = json.loads(step.text)["id"]
                steps.append((await timed(f"{step.what}: get after", http.get(f"/traces/{trace_id}")))[0])
        for what, path in (("list after", "/traces"), ("stats after", "/stats")):
            steps.append((await timed(what, http.get(path, params={"limit": 200} if "traces" in path else {})))[0])
        for label, body in BAD_BODIES.items():  # MCP: the same values inside a tools/call
            rpc = (
                b'{"jsonrpc": "2.0", "id": 2, "method": "tools/call", '
                b'"params": {"name": "ingest_trace", "arguments": {"trace": ' + body + b"}}}"
            )
            steps.append(await mcp_raw(scn, f"{label}: MCP ingest_trace", rpc))
    return steps


async def mcp_raw(scn: Scenario, what: str, body: bytes) -> Step:
    """One raw JSON-RPC request in a fresh MCP session (initialize first)."""
    headers = {
        "Authorization": f"Bearer {scn.tokens[ATTACKER]}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    async with httpx2.AsyncClient(timeout=60, headers=headers) as http:
        r = await http.post(scn.url + "/mcp", json=INITIALIZE)
        sid = r.headers.get("mcp-session-id", "")
        session = {"mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
        await http.post(
            scn.url + "/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session
        )
        step, _ = await timed(what, http.post(scn.url + "/mcp", content=body, headers=session))
        await http.delete(scn.url + "/mcp", headers=session)
    return step


# -- baseline -------------------------------------------------------------------------------------------------------


async def baseline(scn: Scenario) -> list[Step]:
    await asyncio.sleep(0.5)
    return []
