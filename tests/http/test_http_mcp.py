"""MCP over streamable HTTP at /mcp, with the SDK client, on a real socket; same tokens and store as REST."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from agnt_traces.app import App
from agnt_traces.config import Settings
from factories import add_token, trace_payload
from live_http import LiveServer, live_server
from mcp_helpers import call, call_error

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto"]


@pytest.fixture
async def server(settings: Settings, app: App) -> AsyncIterator[LiveServer]:
    with live_server(dataclasses.replace(settings, max_body_bytes=50_000), token_ttl=0.5) as srv:
        yield srv


@asynccontextmanager
async def mcp_client(server: LiveServer, token: str | None, mode: str = "legacy") -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(server.url + "/mcp", http_client=http), mode=mode) as client,
    ):
        yield client


@pytest.mark.parametrize("mode", MODES)
async def test_tools_over_http_in_the_tokens_tenant(server: LiveServer, app: App, mode: str) -> None:
    acme, _ = await add_token(app, "acme")
    globex, _ = await add_token(app, "globex")
    with anyio.fail_after(30):
        async with mcp_client(server, acme, mode) as c:
            tools = {t.name for t in (await c.list_tools()).tools}
            assert {"list_traces", "get_trace", "ingest_trace", "open_playground", "run_prompt"} <= tools
            created = await call(c, "ingest_trace", trace=trace_payload(id="shared-id", output="acme only"))
            assert created == {"id": "shared-id", "created": True}
            page = await call(c, "list_traces", limit=5)
            assert [r["id"] for r in page["traces"]] == ["shared-id"]

        async with mcp_client(server, globex, mode) as c:
            assert (await call(c, "list_traces"))["traces"] == []  # acme's trace is invisible
            err = await call_error(c, "get_trace", trace_id="shared-id")
            assert err["code"] == "not_found" and "acme" not in err["message"]
            await call(c, "ingest_trace", trace=trace_payload(id="shared-id", output="globex own"))
            got = await call(c, "get_trace", trace_id="shared-id", fields=["output"])
            assert got["output"] == "globex own"

    # REST and MCP are one store: MCP's writes are visible over REST, in the right tenant only.
    async with httpx2.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {acme}"}) as rest:
        r = await rest.get("/api/v1/tenants/acme/traces/shared-id")
        assert r.status_code == 200 and r.json()["output"] == "acme only"
        assert (await rest.get("/api/v1/tenants/globex/traces/shared-id")).status_code == 404
        await rest.post("/api/v1/tenants/acme/traces", json=trace_payload(id="from-rest"))
    async with mcp_client(server, acme, mode) as c:
        assert {r["id"] for r in (await call(c, "list_traces"))["traces"]} == {"shared-id", "from-rest"}


async def test_the_playground_loop_over_mcp_http(server: LiveServer, app: App) -> None:
    token, _ = await add_token(app, "acme")
    content = {
        "blocks": [{"id": "intro", "role": "system", "content": "Hi {{ name }}."}],
        "variables": [{"name": "name", "required": True}],
        "model": {"provider": "agnt-local", "name": "echo"},
    }
    with anyio.fail_after(60):
        async with mcp_client(server, token, "auto") as c:
            await call(c, "upsert_prompt", name="greet", content=content)
            await call(c, "publish_prompt", name="greet")
            run = await call(
                c,
                "run_prompt",
                name="greet",
                variables={"name": "Ada"},
                messages=[{"role": "user", "content": "hello"}],
            )
            session = await call(c, "open_playground", trace_id=run["trace"]["id"])
            await call(c, "edit_block", session_id=session["id"], block_id="intro", content="Hello {{ name }}!")
            runs = await call(c, "run_session", session_id=session["id"])
            assert runs["runs"][0]["status"] == "success"
            saved = await call(c, "save_session", session_id=session["id"])
            assert saved["draftRevision"] == 2
    async with httpx2.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as rest:
        draft = (await rest.get("/api/v1/tenants/acme/prompts/greet", params={"label": "draft"})).json()
        assert draft["content"]["blocks"][0]["content"] == "Hello {{ name }}!"


async def test_mcp_without_a_valid_token_is_401(server: LiveServer, app: App) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    async with httpx2.AsyncClient(base_url=server.url) as http:
        for auth in (None, "Bearer agt_not-a-token", "Basic eDp5"):
            h = {**headers, **({"authorization": auth} if auth else {})}
            r = await http.post("/mcp", json=init, headers=h)
            assert r.status_code == 401, r.text
            assert r.headers["www-authenticate"].startswith("Bearer")
            body = r.json()  # a JSON-RPC error (MCP clients show its message) carrying the one shape
            assert body["error"]["code"] == -32001 and "bearer token" in body["error"]["message"]
            shape = body["error"]["data"]["error"]
            assert shape["code"] == "unauthorized" and set(shape) == {"code", "message", "details"}
            assert "agt_not-a-token" not in r.text
            assert "resource_metadata" not in r.headers["www-authenticate"]  # no OAuth server to point at
        meta = await http.get("/.well-known/oauth-protected-resource/mcp")
        assert meta.status_code == 404

    with anyio.fail_after(15):
        failure = await _failure_of(mcp_client(server, None))
    assert any(isinstance(e, MCPError) for e in _leaves(failure)), repr(failure)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


async def _failure_of(connect: Any, before: Any = None) -> BaseException:
    """Open the client, list tools (after ``before``), and return what the SDK raised."""
    try:
        async with connect as c:
            if before is not None:
                await before(c)
            await c.list_tools()
    except Exception as exc:  # the SDK raises MCPError, grouped by its task groups
        return exc
    raise AssertionError("the call succeeded")


async def test_a_revoked_token_stops_working_mid_session(server: LiveServer, app: App) -> None:
    token, token_id = await add_token(app, "acme")

    async def use_then_revoke(c: Client) -> None:
        await call(c, "list_traces")
        assert await app.store.revoke_token(token_id)
        await anyio.sleep(0.7)  # past the server's 0.5 s token cache

    with anyio.fail_after(30):
        failure = await _failure_of(mcp_client(server, token), use_then_revoke)
    assert any(isinstance(e, MCPError) for e in _leaves(failure)), repr(failure)


async def test_rest_and_mcp_share_one_store(settings: Settings, app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    from agnt_traces.store.sqlite import SqliteStore

    opened: list[str] = []
    original = SqliteStore.open.__func__  # type: ignore[attr-defined]

    async def counting_open(cls: type[SqliteStore], path: Any) -> SqliteStore:
        opened.append(str(path))
        store: SqliteStore = await original(cls, path)
        return store

    monkeypatch.setattr(SqliteStore, "open", classmethod(counting_open))
    token, _ = await add_token(app, "acme")
    with live_server(settings) as srv:
        async with mcp_client(srv, token) as c:
            await call(c, "ingest_trace", trace=trace_payload())
        async with httpx2.AsyncClient(base_url=srv.url, headers={"Authorization": f"Bearer {token}"}) as rest:
            assert len((await rest.get("/api/v1/tenants/acme/traces")).json()["traces"]) == 1
    assert opened == [settings.db_path]  # one App for REST and MCP


async def test_mcp_body_over_the_limit_is_413_in_the_one_shape(server: LiveServer, app: App) -> None:
    token, _ = await add_token(app, "acme")
    call_msg = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "ingest_trace", "arguments": {"trace": trace_payload(output="x" * 60_000)}},
    }
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "authorization": f"Bearer {token}",
    }
    async with httpx2.AsyncClient(base_url=server.url) as http:
        r = await http.post("/mcp", json=call_msg, headers=headers)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["data"]["error"]["code"] == "payload_too_large"
