"""How MCP over HTTP answers a request (``AGNT_TRACES_MCP_RESPONSES``), on a real socket with the SDK client.

- ``auto`` (the default): a request in an open session that asked for no progress is answered with one
  JSON body, one that did (``_meta.progressToken``) with an SSE stream that carries its progress;
- ``stream``: each request's answer is an SSE stream, so progress notifications reach the client while a
  long call runs;
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


@pytest.fixture(params=["auto", "stream", "json"])
def served(request: pytest.FixtureRequest, settings: Settings, app: App) -> Iterator[Served]:
    with live_server(dataclasses.replace(settings, mcp_responses=request.param)) as srv:
        yield Served(srv, request.param)


@asynccontextmanager
async def mcp_client(server: LiveServer, token: str, mode: str = "auto") -> AsyncIterator[Client]:
    """The SDK's client: ``legacy`` opens a session (protocol 2025-11-25, the transport this module is about);
    ``auto`` speaks the stateless 2026-07-28 protocol, which the SDK serves on a path of its own."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(server.url + "/mcp", http_client=http), mode=mode) as client,  # type: ignore[arg-type]
    ):
        yield client


def slow_prompt(model_server: ModelServer) -> dict[str, Any]:
    """A prompt whose model call takes 4 s (long enough for a progress heartbeat)."""
    return {
        "blocks": [{"id": "ask", "role": "user", "content": "hello"}],
        "model": {"provider": "openai", "name": "mock-slow-4", "params": {"api_base": model_server.openai_base}},
    }


def progress_into(seen: list[float]) -> Any:
    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    return on_progress


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
    expected = "text/event-stream" if served.mode == "stream" else "application/json"
    assert kind.startswith(expected), kind


@pytest.mark.parametrize("client_mode", ["legacy", "auto"])
async def test_a_long_call_reports_progress_only_as_a_stream(
    served: Served, app: App, model_server: ModelServer, client_mode: str
) -> None:
    token, _ = await add_token(app, "acme")
    content = slow_prompt(model_server)
    seen: list[float] = []
    on_progress = progress_into(seen)

    with anyio.fail_after(60):
        async with mcp_client(served.server, token, client_mode) as c:
            await call(c, "upsert_prompt", name="slow", content=content)
            result = await c.call_tool("run_prompt", {"name": "slow", "label": "draft"}, progress_callback=on_progress)
            assert not result.is_error, result
            assert result.structured_content is not None
            assert result.structured_content["trace"]["status"] == "success"
            trace_id = result.structured_content["trace"]["id"]
            assert (await call(c, "get_trace", trace_id=trace_id))["id"] == trace_id
    if served.mode == "json":
        assert seen == []  # one JSON body carries the answer only
    else:  # stream, and auto: the call asked for progress (the SDK sends a progressToken with a callback)
        assert seen and seen == sorted(seen)  # a heartbeat during the 4 s call


@pytest.fixture
def auto(settings: Settings, app: App) -> Iterator[LiveServer]:
    with live_server(dataclasses.replace(settings, mcp_responses="auto")) as srv:
        yield srv


@asynccontextmanager
async def raw_session(
    server: LiveServer, token: str, accept: str, opening: str = "text/event-stream"
) -> AsyncIterator[tuple[httpx2.AsyncClient, dict]]:
    headers = {"authorization": f"Bearer {token}", "accept": accept, "content-type": "application/json"}
    init = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    async with httpx2.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http:
        opened = await http.post(
            "/mcp", json=_rpc(1, "initialize", init), headers={"accept": "application/json, text/event-stream"}
        )
        assert opened.status_code == 200, opened.text
        assert opened.headers["content-type"].startswith(opening)  # the opening request: as configured
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": PROTOCOL}
        http.headers.update(session)
        both = {"accept": "application/json, text/event-stream"}
        assert (await http.post("/mcp", json=_rpc(None, "notifications/initialized"), headers=both)).status_code == 202
        yield http, session


async def test_auto_streams_a_request_that_asks_for_progress_however_its_key_is_spelled(
    auto: LiveServer, app: App
) -> None:
    token, _ = await add_token(app, "acme")
    async with raw_session(auto, token, "application/json, text/event-stream") as (http, _):
        plain = await http.post("/mcp", json=_rpc(2, "tools/list"))
        asked = await http.post("/mcp", json=_rpc(3, "tools/list", {"_meta": {"progressToken": "p-1"}}))
        # The same key with an escaped letter: JSON reads it as progressToken, so it must stream too.
        escaped_key = b'{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"_meta":{"progress\\u0054oken":7}}}'
        escaped = await http.post("/mcp", content=escaped_key)
        # The word in the data (not a key of _meta) does not make it stream.
        args = {"name": "ingest_trace", "arguments": {"trace": trace_payload(id="t-2", output="progressToken \\u0041")}}
        in_data = await http.post("/mcp", json=_rpc(5, "tools/call", args))
    assert plain.headers["content-type"].startswith("application/json")
    assert asked.headers["content-type"].startswith("text/event-stream")
    assert escaped.headers["content-type"].startswith("text/event-stream")
    assert in_data.headers["content-type"].startswith("application/json")
    assert [_answer(r)["id"] for r in (plain, asked, escaped, in_data)] == [2, 3, 4, 5]
    assert _answer(plain)["result"] == _answer(asked)["result"] == _answer(escaped)["result"]
    assert _answer(in_data)["result"]["structuredContent"] == {"id": "t-2", "created": True}


async def test_auto_answers_quick_calls_in_json_while_a_long_call_streams_its_progress(
    auto: LiveServer, app: App, model_server: ModelServer
) -> None:
    """One session: a 4 s run_prompt with progress in flight, and 40 ingest_trace calls answered meanwhile.
    The session's messages are routed by request: no answer lands on the wrong request, no progress is lost."""
    token, _ = await add_token(app, "acme")
    content = slow_prompt(model_server)
    seen: list[float] = []
    on_progress = progress_into(seen)

    ingested: list[str] = []
    with anyio.fail_after(60):
        async with mcp_client(auto, token, "legacy") as c:
            await call(c, "upsert_prompt", name="slow", content=content)

            async def long_call() -> None:
                result = await c.call_tool(
                    "run_prompt", {"name": "slow", "label": "draft"}, progress_callback=on_progress
                )
                assert not result.is_error and result.structured_content is not None
                assert result.structured_content["trace"]["status"] == "success"

            async def quick_calls() -> None:
                await anyio.sleep(0.5)
                for i in range(40):
                    out = await call(c, "ingest_trace", trace=trace_payload(id=f"q-{i}"))
                    ingested.append(out["id"])
                    await anyio.sleep(0.05)

            async with anyio.create_task_group() as tg:
                tg.start_soon(long_call)
                tg.start_soon(quick_calls)
    assert ingested == [f"q-{i}" for i in range(40)]
    assert seen and seen == sorted(seen)


async def test_auto_reads_accept_as_the_sdk_does(auto: LiveServer, app: App) -> None:
    """A client that does not accept streams is refused 406 as in stream mode, and a media type that only
    contains text/event-stream is not it."""
    token, _ = await add_token(app, "acme")
    for accept in (
        "application/json",
        "application/json, text/event-stream-nope",
        "application/json;q=1, x/text/event-stream",
    ):
        async with raw_session(auto, token, accept) as (http, _):
            r = await http.post("/mcp", json=_rpc(2, "tools/list"))
        assert r.status_code == 406, (accept, r.text)
    async with raw_session(auto, token, "*/*") as (http, _):  # a wildcard accepts both: answered
        r = await http.post("/mcp", json=_rpc(2, "tools/list"))
    assert r.status_code == 200 and _answer(r)["id"] == 2


async def test_a_request_with_the_id_of_one_in_flight_is_refused(
    served: Served, app: App, model_server: ModelServer
) -> None:
    """The SDK routes a session's messages by the id's text: a second request with id "7" while 7 runs would
    take the first one's answer (or its progress) as its own, and the first would never be answered."""
    token, _ = await add_token(app, "acme")
    content = slow_prompt(model_server)
    await app.prompts.upsert("acme", "slow", content)
    answers: dict[str, httpx2.Response] = {}
    with anyio.fail_after(60):
        opening = "application/json" if served.mode == "json" else "text/event-stream"
        async with raw_session(served.server, token, "application/json, text/event-stream", opening) as (http, _):

            async def slow() -> None:
                args = {"name": "run_prompt", "arguments": {"name": "slow", "label": "draft"}}
                answers["slow"] = await http.post("/mcp", json=_rpc(7, "tools/call", args))

            async def clash() -> None:
                await anyio.sleep(1.0)
                answers["clash"] = await http.post("/mcp", json={"jsonrpc": "2.0", "id": "7", "method": "tools/list"})
                answers["other"] = await http.post("/mcp", json=_rpc(8, "tools/list"))
                # A response (to a request of the server's) carries the server's id: not a request of ours.
                answers["response"] = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 7, "result": {}})

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow)
                tg.start_soon(clash)
            answers["again"] = await http.post("/mcp", json=_rpc(7, "tools/list"))  # free again once answered
    clash_answer = answers["clash"].json()
    assert answers["clash"].status_code == 400 and clash_answer["id"] == "7"
    assert clash_answer["error"]["code"] == -32600 and "still in flight" in clash_answer["error"]["message"]
    slow_answer = _answer(answers["slow"])
    assert slow_answer["id"] == 7 and slow_answer["result"]["structuredContent"]["trace"]["status"] == "success"
    assert _answer(answers["other"])["id"] == 8 and "tools" in _answer(answers["other"])["result"]
    assert answers["response"].status_code == 202, answers["response"].text
    assert _answer(answers["again"])["id"] == 7 and "tools" in _answer(answers["again"])["result"]
