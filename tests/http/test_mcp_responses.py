"""How MCP over HTTP answers a request (``AGNT_TRACES_MCP_RESPONSES``), on a real socket with the SDK client.

- ``stream`` (the default): each request's answer is an SSE stream, so progress notifications reach the
  client while a long call runs;
- ``json``: each answer is one JSON body; the same tools answer the same results, without progress.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from agnt_traces.app import App
from agnt_traces.config import Settings
from factories import add_token, trace_payload
from live_http import LiveServer, live_server
from mcp_helpers import call
from modelserver import ModelServer

pytestmark = pytest.mark.anyio

PROTOCOL = "2025-11-25"


@dataclasses.dataclass
class Served:
    server: LiveServer
    mode: str


@pytest.fixture(params=["stream", "json"])
def served(request: pytest.FixtureRequest, settings: Settings, app: App) -> Iterator[Served]:
    with live_server(dataclasses.replace(settings, mcp_responses=request.param)) as srv:
        yield Served(srv, request.param)


@asynccontextmanager
async def mcp_client(server: LiveServer, token: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(server.url + "/mcp", http_client=http)) as client,
    ):
        yield client


def _rpc(msg_id: int | None, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if msg_id is not None:
        message["id"] = msg_id
    if params is not None:
        message["params"] = params
    return message


def _answer(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC answer in a response, whichever way it came."""
    if response.headers["content-type"].startswith("text/event-stream"):
        events = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        answers = [json.loads(e) for e in events if e]
        return next(a for a in answers if "id" in a)
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_tools_call_is_answered_in_the_configured_form(served: Served, app: App) -> None:
    token, _ = await add_token(app, "acme")
    headers = {
        "authorization": f"Bearer {token}",
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
    }
    init = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    async with httpx2.AsyncClient(base_url=served.server.url, headers=headers, timeout=30) as http:
        opened = await http.post("/mcp", json=_rpc(1, "initialize", init))
        assert opened.status_code == 200, opened.text
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": PROTOCOL}
        assert (
            await http.post("/mcp", json=_rpc(None, "notifications/initialized"), headers=session)
        ).status_code == 202
        args = {"name": "ingest_trace", "arguments": {"trace": trace_payload(id="t-1")}}
        r = await http.post("/mcp", json=_rpc(2, "tools/call", args), headers=session)
        assert r.status_code == 200, r.text
        kind = r.headers["content-type"]
        answer = _answer(r)
        assert answer["id"] == 2 and answer["result"]["structuredContent"] == {"id": "t-1", "created": True}
        await http.delete("/mcp", headers=session)
    expected = "application/json" if served.mode == "json" else "text/event-stream"
    assert kind.startswith(expected), kind


async def test_a_long_call_reports_progress_only_as_a_stream(
    served: Served, app: App, model_server: ModelServer
) -> None:
    token, _ = await add_token(app, "acme")
    content = {
        "blocks": [{"id": "ask", "role": "user", "content": "hello"}],
        "model": {"provider": "openai", "name": "mock-slow-4", "params": {"api_base": model_server.openai_base}},
    }
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    with anyio.fail_after(60):
        async with mcp_client(served.server, token) as c:
            await call(c, "upsert_prompt", name="slow", content=content)
            result = await c.call_tool("run_prompt", {"name": "slow", "label": "draft"}, progress_callback=on_progress)
            assert not result.is_error, result
            assert result.structured_content is not None
            assert result.structured_content["trace"]["status"] == "success"
            trace_id = result.structured_content["trace"]["id"]
            assert (await call(c, "get_trace", trace_id=trace_id))["id"] == trace_id
    if served.mode == "json":
        assert seen == []  # one JSON body carries the answer only
    else:
        assert seen and seen == sorted(seen)  # a heartbeat during the 4 s call
