"""The server's edges, attacked over real processes: ``agnt-traces serve --http`` and ``agnt-traces serve``
(stdio) started as subprocesses of this worktree's code.

Session floods, inputs that used to give 500 (deep JSON, lone surrogates, 1e400, NaN), an over-long stdio
line, SIGTERM with a model call in flight, and the MCP error answers clients rely on."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from anyio.abc import Process
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from agnt_traces.config import Settings
from factories import make_token
from mcp_helpers import call
from modelserver import ModelServer

pytestmark = pytest.mark.anyio

SRC = str(Path(__file__).resolve().parents[2] / "src")
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}

# (name, raw JSON value as it appears in a body, the field the answer must name)
BAD_VALUES = [
    ("deep", b"[" * 600 + b"]" * 600, "output"),
    ("surrogate", b'"\\ud800"', "output"),
    ("huge", b"1e400", "output"),
    ("nan", b"NaN", "output"),
]


def _env(**extra: str) -> dict[str, str]:
    # The model server fixture lists its endpoint in AGNT_TRACES_MODEL_ENDPOINTS: keep that one.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("AGNT_TRACES_") or k == "AGNT_TRACES_MODEL_ENDPOINTS"
    }
    env.update(PYTHONPATH=SRC, AGNT_TRACES_LOG_LEVEL="WARNING", LITELLM_LOCAL_MODEL_COST_MAP="True", **extra)
    return env


def _serve(db: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "agnt_traces", "serve", "--db", db, *args]


@dataclass
class HttpServer:
    proc: subprocess.Popen[bytes]
    url: str
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text()


@contextmanager
def http_server(db: str, tmp: Path, **env: str) -> Iterator[HttpServer]:
    err_path = tmp / f"stderr-{time.monotonic_ns()}.txt"
    with err_path.open("wb") as err:
        proc = subprocess.Popen(
            _serve(db, "--http", "--port", "0"), stderr=err, stdout=subprocess.DEVNULL, env=_env(**env)
        )
    try:
        deadline = time.monotonic() + 30
        while (match := re.search(r"serving on (http://\S+) ", err_path.read_text())) is None:
            assert proc.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, "the HTTP server did not start"
            time.sleep(0.05)
        yield HttpServer(proc, match.group(1), err_path)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def _initialize(http: httpx2.AsyncClient, token: str, **headers: str) -> httpx2.Response:
    return await http.post("/mcp", json=INIT, headers={**MCP_HEADERS, "authorization": f"Bearer {token}", **headers})


def _jsonrpc_body(response: httpx2.Response) -> dict[str, Any]:
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [ln[5:].strip() for ln in response.text.splitlines() if ln.startswith("data:") and ln[5:].strip()]
        return json.loads(data[-1])  # type: ignore[no-any-return]
    return response.json()  # type: ignore[no-any-return]


async def _session(http: httpx2.AsyncClient, token: str) -> dict[str, str]:
    r = await _initialize(http, token)
    assert r.status_code == 200, r.text
    headers = {
        **MCP_HEADERS,
        "authorization": f"Bearer {token}",
        "mcp-session-id": r.headers["mcp-session-id"],
        "mcp-protocol-version": "2025-06-18",
    }
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post("/mcp", json=note, headers=headers)).status_code == 202
    return headers


def _tool_call_body(msg_id: int, raw_value: bytes) -> bytes:
    return (
        b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"ingest_trace","arguments":'
        b'{"trace":{"output":%s}}}}' % (msg_id, raw_value)
    )


def _assert_invalid_tool_result(message: dict[str, Any], msg_id: int, field: str) -> None:
    assert message["id"] == msg_id, message
    result = message["result"]
    assert result["isError"] is True
    err = result["structuredContent"]["error"]
    assert err["code"] == "invalid_argument", err
    assert field in err["details"]["field"], err
    assert json.loads(result["content"][0]["text"]) == result["structuredContent"]


def _count_traces(db: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("select count(*) from traces").fetchone()[0])


# -- MCP over HTTP: sessions --------------------------------------------------------------------------------


async def test_a_session_flood_by_one_tenant_leaves_others_and_the_stateless_path_working(
    db_path: str, tmp_path: Path
) -> None:
    acme1, acme2, globex = (
        await make_token(db_path, "acme"),
        await make_token(db_path, "acme"),
        await make_token(db_path, "globex"),
    )
    env = {"AGNT_TRACES_MCP_SESSIONS_PER_TENANT": "3", "AGNT_TRACES_MCP_SESSIONS_PER_TOKEN": "2"}
    with http_server(db_path, tmp_path, **env) as srv, anyio.fail_after(60):
        async with httpx2.AsyncClient(base_url=srv.url, timeout=20) as http:
            assert (await _initialize(http, acme1)).status_code == 200
            assert (await _initialize(http, acme1)).status_code == 200
            over_token = await _initialize(http, acme1)  # the token's cap (2)
            assert over_token.status_code == 429, over_token.text
            err = over_token.json()["error"]
            assert err["data"]["error"]["code"] == "too_many_sessions"
            assert "AGNT_TRACES_MCP_SESSIONS_PER_TOKEN=2" in err["message"]
            first_of_token2 = await _initialize(http, acme2)
            assert first_of_token2.status_code == 200
            over_tenant = await _initialize(http, acme2)  # the tenant's cap (3)
            assert over_tenant.status_code == 429
            assert "tenant 'acme'" in over_tenant.json()["error"]["message"]
            # another tenant is not affected (its one token may open 2)
            for _ in range(2):
                assert (await _initialize(http, globex)).status_code == 200
            # ending a session frees its place
            sid = first_of_token2.headers["mcp-session-id"]
            bye = await http.delete(
                "/mcp", headers={"authorization": f"Bearer {acme2}", "mcp-session-id": sid, **MCP_HEADERS}
            )
            assert bye.status_code == 200, bye.text
            again = await _initialize(http, acme2)
            assert again.status_code == 200, again.text
        # the stateless 2026-07-28 protocol opens no session: it works for the tenant at its cap
        async with (
            httpx2.AsyncClient(headers={"authorization": f"Bearer {acme1}"}, timeout=20) as h,
            Client(streamable_http_client(srv.url + "/mcp", http_client=h), mode="auto") as c,
        ):
            assert (await call(c, "list_traces"))["traces"] == []


async def test_idle_sessions_stop_counting(db_path: str, tmp_path: Path) -> None:
    acme = await make_token(db_path, "acme")
    env = {"AGNT_TRACES_MCP_SESSIONS_PER_TENANT": "1", "AGNT_TRACES_MCP_SESSION_IDLE_SECONDS": "1"}
    with http_server(db_path, tmp_path, **env) as srv, anyio.fail_after(60):
        async with httpx2.AsyncClient(base_url=srv.url, timeout=20) as http:
            assert (await _initialize(http, acme)).status_code == 200
            assert (await _initialize(http, acme)).status_code == 429
            await anyio.sleep(1.5)  # the idle time passes: the SDK closes it and it no longer counts
            assert (await _initialize(http, acme)).status_code == 200


# -- inputs that must be 400 / invalid_argument --------------------------------------------------------------


@pytest.mark.parametrize(("name", "raw", "field"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
async def test_bad_json_values_are_invalid_argument_over_rest_and_mcp_http(
    db_path: str, tmp_path: Path, name: str, raw: bytes, field: str
) -> None:
    acme = await make_token(db_path, "acme")
    with http_server(db_path, tmp_path) as srv, anyio.fail_after(60):
        async with httpx2.AsyncClient(base_url=srv.url, timeout=20) as http:
            body = b'{"promptName":"p","model":{"provider":"openai","name":"m"},"output":%s}' % raw
            r = await http.post(
                "/api/v1/tenants/acme/traces",
                content=body,
                headers={"authorization": f"Bearer {acme}", "content-type": "application/json"},
            )
            assert r.status_code == 400, r.text
            err = r.json()["error"]
            assert err["code"] == "invalid_argument" and field in err["details"]["field"], err

            headers = await _session(http, acme)
            r = await http.post("/mcp", content=_tool_call_body(7, raw), headers=headers)
            assert r.status_code == 200, r.text
            _assert_invalid_tool_result(_jsonrpc_body(r), 7, field)
            # the session still works
            ok = {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "list_traces", "arguments": {}}}
            assert "result" in _jsonrpc_body(await http.post("/mcp", json=ok, headers=headers))
        assert "Traceback" not in srv.stderr()
    assert _count_traces(db_path) == 0


# -- MCP over stdio -------------------------------------------------------------------------------------------


@asynccontextmanager
async def stdio_server(db: str, **env: str) -> AsyncIterator[Process]:
    async with await anyio.open_process(_serve(db), env=_env(**env)) as proc:
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.kill()


class Lines:
    def __init__(self, proc: Process) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.proc = proc
        self.buffer = b""

    async def send(self, message: dict[str, Any] | bytes) -> None:
        raw = message if isinstance(message, bytes) else json.dumps(message).encode()
        assert self.proc.stdin is not None
        await self.proc.stdin.send(raw + b"\n")

    async def recv(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while b"\n" not in self.buffer:
            self.buffer += await self.proc.stdout.receive()
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]

    async def request(self, message: dict[str, Any] | bytes) -> dict[str, Any]:
        await self.send(message)
        return await self.recv()

    async def initialize(self) -> None:
        assert "result" in await self.request(INIT)
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})


async def _stderr_text(proc: Process) -> str:
    assert proc.stderr is not None
    chunks = []
    with anyio.move_on_after(5):
        async for chunk in proc.stderr:
            chunks.append(chunk)
    return b"".join(chunks).decode()


async def test_stdio_answers_bad_values_long_lines_and_garbage_and_keeps_serving(db_path: str) -> None:
    with anyio.fail_after(60):
        async with stdio_server(db_path, AGNT_TRACES_STDIO_MAX_LINE_BYTES="4000") as proc:
            io = Lines(proc)
            await io.initialize()
            for i, (_, raw, field) in enumerate(BAD_VALUES, start=10):
                _assert_invalid_tool_result(await io.request(_tool_call_body(i, raw)), i, field)
            # an over-long line: an error with the request's id; memory stays bounded (the rest is skipped)
            long_line = (
                b'{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"arguments":"' + b"x" * 200_000 + b'"}}'
            )
            answer = await io.request(long_line)
            assert answer["id"] == 42 and answer["error"]["code"] == -32600
            assert "longer than 4000 bytes" in answer["error"]["message"]
            assert "AGNT_TRACES_STDIO_MAX_LINE_BYTES" in answer["error"]["message"]
            garbage = await io.request(b"this is not json")
            assert garbage["id"] is None and garbage["error"]["code"] == -32700
            listed = await io.request(
                {"jsonrpc": "2.0", "id": 50, "method": "tools/call", "params": {"name": "list_traces", "arguments": {}}}
            )
            assert listed["id"] == 50 and listed["result"]["isError"] is False
            assert proc.stdin is not None
            await proc.stdin.aclose()  # EOF: the server exits
            assert await proc.wait() == 0
            stderr = await _stderr_text(proc)
    assert _count_traces(db_path) == 0
    assert "Traceback" not in stderr
    # one line when ready, naming the database and the tenant
    assert stderr.splitlines() == [
        f"agnt-traces: serving MCP over stdio (db {db_path}, tenant default); Ctrl-C to stop"
    ]


async def test_prompt_and_resource_errors_are_jsonrpc_invalid_params(db_path: str) -> None:
    with anyio.fail_after(60):
        async with stdio_server(db_path) as proc:
            io = Lines(proc)
            await io.initialize()
            unknown = await io.request(
                {"jsonrpc": "2.0", "id": 2, "method": "prompts/get", "params": {"name": "nope", "arguments": {}}}
            )
            assert unknown["error"]["code"] == -32602 and "unknown prompt 'nope'" in unknown["error"]["message"]
            missing = await io.request(
                {"jsonrpc": "2.0", "id": 3, "method": "prompts/get", "params": {"name": "debug-trace"}}
            )
            assert missing["error"]["code"] == -32602
            assert "trace_id" in missing["error"]["message"] and "{" not in missing["error"]["message"]
            cursor = await io.request(
                {"jsonrpc": "2.0", "id": 4, "method": "resources/list", "params": {"cursor": "not-a-cursor"}}
            )
            assert cursor["error"]["code"] == -32602 and "cursor" in cursor["error"]["message"]
            assert proc.stdin is not None
            await proc.stdin.aclose()
            await proc.wait()
            stderr = await _stderr_text(proc)
    assert "ERROR" not in stderr and "Traceback" not in stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_stdio_exits_promptly_on_a_signal_while_idle(db_path: str, signum: int) -> None:
    with anyio.fail_after(60):
        async with stdio_server(db_path) as proc:
            io = Lines(proc)
            await io.initialize()
            started = time.monotonic()
            proc.send_signal(signum)
            with anyio.fail_after(5):
                code = await proc.wait()
            assert time.monotonic() - started < 5
            assert code in (130, 143, -signum)


def _slow_prompt(model_server: ModelServer) -> dict[str, Any]:
    return {
        "blocks": [{"id": "s", "role": "system", "content": "Be brief."}],
        "model": {"provider": "openai", "name": "gpt-4o-mini", "params": {"api_base": model_server.openai_base}},
    }


async def _wait_for_model_request(model_server: ModelServer) -> None:
    with anyio.fail_after(30):
        while not model_server.requests:  # noqa: ASYNC110 - recorded on the model server thread: no event
            await anyio.sleep(0.05)


async def test_sigterm_with_a_model_call_in_flight_over_stdio(db_path: str, model_server: ModelServer) -> None:
    model_server.script(["slow:30"])
    with anyio.fail_after(90):
        async with stdio_server(db_path) as proc:
            io = Lines(proc)
            await io.initialize()
            args = {"name": "slow", "content": _slow_prompt(model_server)}
            up = await io.request(
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "tools/call",
                    "params": {"name": "upsert_prompt", "arguments": args},
                }
            )
            assert up["result"]["isError"] is False, up
            run = {"name": "slow", "label": "draft", "messages": [{"role": "user", "content": "hi"}]}
            await io.send(
                {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "run_prompt", "arguments": run}}
            )
            await _wait_for_model_request(model_server)
            started = time.monotonic()
            proc.terminate()
            with anyio.fail_after(8):
                await proc.wait()
            assert time.monotonic() - started < 5
            stderr = await _stderr_text(proc)
    assert "Traceback" not in stderr
    _assert_no_half_written_trace(db_path)


def _assert_no_half_written_trace(db: str) -> None:
    """The in-flight call is either recorded whole or not at all; the database is consistent."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("select status from traces").fetchall()
    assert all(status in ("success", "error") for (status,) in rows), rows


async def test_sigterm_with_a_model_call_in_flight_over_http(
    db_path: str, tmp_path: Path, model_server: ModelServer
) -> None:
    model_server.script(["slow:30"])
    acme = await make_token(db_path, "acme")
    with http_server(db_path, tmp_path) as srv:
        async with httpx2.AsyncClient(
            base_url=srv.url + "/api/v1/tenants/acme", headers={"authorization": f"Bearer {acme}"}, timeout=40
        ) as http:
            put = await http.put("/prompts/slow", json={"content": _slow_prompt(model_server)})
            assert put.status_code == 200, put.text
            async with (
                httpx2.AsyncClient(headers={"authorization": f"Bearer {acme}"}, timeout=40) as h,
                Client(streamable_http_client(srv.url + "/mcp", http_client=h)) as mcp_session,
            ):
                await call(mcp_session, "list_traces")  # an MCP session is open during the shutdown

                async def run() -> None:
                    body = {"label": "draft", "messages": [{"role": "user", "content": "hi"}]}
                    with contextlib.suppress(httpx2.HTTPError):  # the server went away: refused, not half-done
                        await http.post("/prompts/slow/run", json=body)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(run)
                    await _wait_for_model_request(model_server)
                    started = time.monotonic()
                    srv.proc.send_signal(signal.SIGTERM)
                    await anyio.to_thread.run_sync(srv.proc.wait, 10)
                    elapsed = time.monotonic() - started
                    tg.cancel_scope.cancel()
        assert elapsed < 6, elapsed
        stderr = srv.stderr()
    assert "ERROR" not in stderr and "Traceback" not in stderr, stderr
    assert " 200 OK" not in stderr and "INFO" not in stderr  # no access lines by default
    _assert_no_half_written_trace(db_path)


# -- HTTP error answers ---------------------------------------------------------------------------------------


async def test_a_disallowed_origin_is_named_and_no_oauth_is_advertised(db_path: str, tmp_path: Path) -> None:
    acme = await make_token(db_path, "acme")
    with http_server(db_path, tmp_path) as srv, anyio.fail_after(30):
        async with httpx2.AsyncClient(base_url=srv.url, timeout=20) as http:
            r = await _initialize(http, acme, origin="http://evil.example")
            assert r.status_code == 403
            err = r.json()["error"]
            assert "Origin 'http://evil.example' is not allowed" in err["message"], err
            assert err["data"]["error"]["details"]["field"] == "Origin"
            unauthenticated = await http.post("/mcp", json=INIT, headers=MCP_HEADERS)
            assert unauthenticated.status_code == 401
            assert "resource_metadata" not in unauthenticated.headers["www-authenticate"]
            assert "bearer token" in unauthenticated.json()["error"]["message"]
            for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-authorization-server"):
                assert (await http.get(path)).status_code == 404
        # the SDK client surfaces the server's message for a 401
        async with httpx2.AsyncClient(timeout=20) as h:
            with pytest.raises(Exception) as failure:
                async with Client(streamable_http_client(srv.url + "/mcp", http_client=h), mode="legacy") as c:
                    await c.list_tools()
        assert "bearer token" in repr(failure.value) or "bearer token" in str(_leaves(failure.value))


def _leaves(exc: BaseException) -> list[str]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [str(exc)]


# -- the CLI --------------------------------------------------------------------------------------------------


def test_serve_port_without_http_is_an_error_and_help_shows_defaults(db_path: str) -> None:
    r = subprocess.run(_serve(db_path, "--port", "9999"), capture_output=True, text=True, env=_env(), timeout=30)
    assert r.returncode == 2 and "--port applies to the HTTP server only" in r.stderr and r.stdout == ""
    helptext = subprocess.run(_serve(db_path, "--help"), capture_output=True, text=True, env=_env(), timeout=30)
    assert "default 8787" in helptext.stdout and "default 127.0.0.1" in helptext.stdout


def test_sdk_seam_matches_the_pinned_sdk() -> None:
    """The one private SDK attribute we use (server/sdk_seams.py) is checked against the pinned version:
    when mcp is upgraded this fails loudly, and the seam must be re-read."""
    from importlib.metadata import version

    from mcp.server.lowlevel.server import Server

    from agnt_traces.server.mcp import build_server
    from agnt_traces.server.sdk_seams import PINNED_MCP_VERSION, lowlevel_server, registered_tools

    assert version("mcp") == PINNED_MCP_VERSION, "mcp was upgraded: re-check server/sdk_seams.py and stdio.py"
    mcp = build_server(Settings(db_path=":memory:"))
    server = lowlevel_server(mcp)
    assert isinstance(server, Server)
    assert callable(server.run) and callable(server.create_initialization_options)
    assert callable(server.add_request_handler)
    tools = registered_tools(mcp)
    assert {t.name for t in tools} >= {"list_traces", "run_replay"}
    for tool in tools:  # what _forbid_unknown_arguments changes
        assert tool.fn_metadata.arg_model.model_config["extra"] == "forbid"
        assert tool.parameters["additionalProperties"] is False


def test_per_request_answer_seam_matches_the_pinned_sdk() -> None:
    """JSON or SSE per request (sdk_seams.json_answer): the session manager builds its transports from the
    module-level name we replace, and the transport reads the attribute we turn into a property."""
    import inspect

    from mcp.server import streamable_http, streamable_http_manager

    from agnt_traces.server.sdk_seams import PerRequestAnswerTransport, install_per_request_answers, json_answer

    install_per_request_answers()
    assert streamable_http_manager.StreamableHTTPServerTransport is PerRequestAnswerTransport
    admit = inspect.getsource(streamable_http_manager.StreamableHTTPSessionManager._admit_session)
    assert "StreamableHTTPServerTransport(" in admit and "is_json_response_enabled=" in admit
    post = inspect.getsource(streamable_http.StreamableHTTPServerTransport._handle_post_request)
    assert post.count("self.is_json_response_enabled") >= 1
    for json_setting in (False, True):
        transport = PerRequestAnswerTransport(mcp_session_id="s", is_json_response_enabled=json_setting)
        assert transport.is_json_response_enabled is json_setting
        with json_answer():
            assert transport.is_json_response_enabled is True
        assert transport.is_json_response_enabled is json_setting


async def test_span_middleware_seam_matches_the_pinned_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK starts every server with its span-per-message middleware (sdk_seams.spans_when_traced): ours runs
    it only while a tracer provider is set, asked at every message (a provider set after the build counts)."""
    from types import SimpleNamespace

    from mcp.server._otel import OpenTelemetryMiddleware
    from mcp.server.mcpserver import MCPServer
    from opentelemetry import trace

    from agnt_traces.server.common import error_shape_middleware
    from agnt_traces.server.mcp import build_server
    from agnt_traces.server.sdk_seams import SpansWhenTraced

    bare: MCPServer[Any] = MCPServer("bare")
    assert [type(m) for m in bare.middleware][:1] == [OpenTelemetryMiddleware], "re-read sdk_seams.spans_when_traced"

    ours = build_server(Settings(db_path=":memory:"))
    assert [type(m) for m in ours.middleware].count(SpansWhenTraced) == 1
    assert not any(isinstance(m, OpenTelemetryMiddleware) for m in ours.middleware)
    assert error_shape_middleware in ours.middleware  # our own middleware stays, in its order
    wrapper = next(m for m in ours.middleware if isinstance(m, SpansWhenTraced))
    spanned: list[str] = []

    async def spy(ctx: Any, call_next: Any) -> Any:
        spanned.append(ctx.method)
        return await call_next(ctx)

    wrapper.spans = spy  # type: ignore[assignment]

    async def handler(ctx: Any) -> str:
        return "answered"

    ctx = SimpleNamespace(method="tools/call")
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)  # whatever other tests set
    assert await wrapper(ctx, handler) == "answered"
    assert spanned == []  # no provider: no span work

    class Recording(trace.TracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
            return trace.NoOpTracer()

    monkeypatch.setattr(trace, "get_tracer_provider", Recording)  # set after the server was built
    assert await wrapper(ctx, handler) == "answered"
    assert spanned == ["tools/call"]


def test_bearer_backend_seam_matches_the_pinned_sdk(tmp_path: Path) -> None:
    """The SDK's streamable-HTTP app authenticates with a ``BearerAuthBackend`` that reads nothing of the request
    but its headers (sdk_seams.one_header_bearer swaps it for one handed only the Authorization header)."""
    import inspect

    from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend
    from starlette.middleware.authentication import AuthenticationMiddleware

    from agnt_traces.http.app import build_http_app
    from agnt_traces.server.sdk_seams import OneHeaderBearerBackend, one_header_bearer

    reads = set(re.findall(r"\bconn\.(\w+)", inspect.getsource(BearerAuthBackend.authenticate)))
    assert reads == {"headers"}, f"re-read sdk_seams.OneHeaderBearerBackend: the SDK now reads conn.{reads}"
    app = build_http_app(Settings(db_path=str(tmp_path / "t.db")))
    edge = next(r for r in app.routes if getattr(r, "path", None) == "/mcp").endpoint  # type: ignore[attr-defined]
    backends = [m.kwargs.get("backend") for m in edge.app.user_middleware if m.cls is AuthenticationMiddleware]
    assert [type(b) for b in backends] == [OneHeaderBearerBackend]
    assert one_header_bearer(edge.app) is False  # done once, before the first request


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([("AUTHORIZATION", "Bearer {token}")], 200),  # names are case-insensitive
        ([("Authorization", "bearer {token}")], 200),
        ([("Authorization", "Bearer {token}"), ("Authorization", "Bearer nope")], 200),  # the first one counts
        ([("Authorization", "Bearer nope"), ("Authorization", "Bearer {token}")], 401),
        ([("Authorization", "Basic {token}")], 401),
        ([("X-Authorization", "Bearer {token}")], 401),
        ([], 401),
    ],
)
async def test_the_bearer_token_is_read_as_before(tmp_path: Path, headers: list[tuple[str, str]], status: int) -> None:
    import http.client

    from live_http import live_server

    settings = Settings(db_path=str(tmp_path / "t.db"))
    token = await make_token(settings, "acme")
    body = json.dumps(INIT).encode()

    def post(port: int) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("POST", "/mcp")
        for name, value in [*MCP_HEADERS.items(), ("content-length", str(len(body)))]:
            conn.putheader(name, value)
        for name, value in headers:
            conn.putheader(name, value.format(token=token))
        conn.endheaders(body)
        response = conn.getresponse()
        response.read()
        conn.close()
        return response.status

    with live_server(settings) as srv:
        assert await anyio.to_thread.run_sync(post, srv.port) == status
