"""Two ``agnt-traces serve --http`` processes on one PostgreSQL database, used at once.

Eight REST clients ingest through both servers while an agent runs the whole loop over MCP, each call
going to the other server: nothing is lost, duplicated or reordered; a playground session opened on one
server continues on the other; of two publishes of the same draft, one to each server, exactly one wins.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from durability import TENANT, HttpServer, http_token
from live_http import Reply, Rest
from mcp_helpers import call

pytestmark = pytest.mark.anyio

CLIENTS = 8
TRACES_PER_CLIENT = 30
BASE_MS = 1_780_000_000_000
CONTENT = {
    "blocks": [{"id": "intro", "role": "system", "content": "Hi {{ name }}."}],
    "variables": [{"name": "name", "required": True}],
    "model": {"provider": "agnt-local", "name": "echo"},
}


@pytest.fixture
def servers(pg_url: str) -> Iterator[tuple[HttpServer, HttpServer]]:
    http_token(pg_url)  # made before the servers start, as an operator would
    one = HttpServer(pg_url)
    try:
        two = HttpServer(pg_url)
    except BaseException:
        one.stop()
        raise
    try:
        yield one, two
    finally:
        two.stop()
        one.stop()


@asynccontextmanager
async def mcp(server: HttpServer, token: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(f"http://127.0.0.1:{server.port}/mcp", http_client=http), mode="auto") as c,
    ):
        yield c


def _created_at(client: int, i: int) -> str:
    from agnt_traces.ids import ms_to_rfc3339

    return ms_to_rfc3339(BASE_MS + i * CLIENTS + client)  # interleaved: every trace its own millisecond


def _ingest(port: int, token: str, client: int, failures: list[str]) -> None:
    rest = Rest(port, TENANT, token)
    try:
        for i in range(TRACES_PER_CLIENT):
            body = {
                "id": f"c{client}-{i}",
                "createdAt": _created_at(client, i),
                "model": {"provider": "openai", "name": "gpt-4o-mini"},
                "output": f"answer {client} {i}",
                "cost": 0.001 * (i % 4),
            }
            reply = rest.call("POST", "/traces", body)
            if reply.status not in (200, 201):
                failures.append(f"{client}/{i}: {reply.status} {reply.body}")
            if i % 10 == 0:  # a retry of the same trace through the other door is a no-op
                again = rest.call("POST", "/traces", body)
                if again.status not in (200, 201):
                    failures.append(f"{client}/{i} again: {again.status} {again.body}")
    finally:
        rest.close()


def _list_all(ports: list[int], token: str, **params: str) -> list[dict[str, Any]]:
    """Every trace, page by page, each page asked of the next server (the cursor travels between them)."""
    rests = [Rest(p, TENANT, token) for p in ports]
    rows: list[dict[str, Any]] = []
    cursor = None
    try:
        for page_no in range(1000):
            query = "&".join(f"{k}={v}" for k, v in {"limit": "37", **params}.items())
            if cursor:
                query += f"&cursor={cursor}"
            reply = rests[page_no % len(rests)].call("GET", f"/traces?{query}")
            assert reply.status == 200, reply.body
            rows += reply.body["traces"]
            cursor = reply.body.get("nextCursor")
            if not cursor:
                return rows
    finally:
        for r in rests:
            r.close()
    raise AssertionError("paging did not end")


async def _loop_across(one: HttpServer, two: HttpServer, token: str) -> dict[str, Any]:
    """The fix loop over MCP, every call to the other server than the one before."""
    async with mcp(one, token) as a, mcp(two, token) as b:
        await call(a, "upsert_prompt", name="greet", content=CONTENT)
        await call(b, "publish_prompt", name="greet")
        run = await call(
            a, "run_prompt", name="greet", variables={"name": "Ada"}, messages=[{"role": "user", "content": "hello"}]
        )
        trace = await call(b, "get_trace", trace_id=run["trace"]["id"])
        session = await call(a, "open_playground", trace_id=trace["id"])
        await call(b, "edit_block", session_id=session["id"], block_id="intro", content="Hello {{ name }}!")
        runs = await call(a, "run_session", session_id=session["id"])
        assert runs["runs"][0]["status"] == "success"
        seen = await call(b, "get_session", session_id=session["id"])
        assert len(seen["runs"]) == 1
        saved = await call(b, "save_session", session_id=session["id"])
        assert saved["draftRevision"] == 2
        prompt = await call(a, "get_prompt", name="greet", label="draft")
        assert prompt["content"]["blocks"][0]["content"] == "Hello {{ name }}!"
        return dict(prompt)


def _publish_race(ports: list[int], token: str, name: str, etag: str) -> list[Reply]:
    replies: list[Reply] = []
    start = threading.Barrier(len(ports))

    def publish(port: int) -> None:
        rest = Rest(port, TENANT, token)
        try:
            start.wait(10)
            replies.append(rest.call("POST", f"/prompts/{name}/publish", {}, headers={"If-Match": f'"{etag}"'}))
        finally:
            rest.close()

    threads = [threading.Thread(target=publish, args=(p,)) for p in ports]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return replies


async def test_two_servers_on_one_database_lose_nothing_and_agree(
    pg_url: str, servers: tuple[HttpServer, HttpServer]
) -> None:
    one, two = servers
    token = http_token(pg_url)
    ports = [one.port, two.port]
    failures: list[str] = []
    with anyio.fail_after(240):
        async with anyio.create_task_group() as tg:
            for client in range(CLIENTS):
                tg.start_soon(anyio.to_thread.run_sync, _ingest, ports[client % 2], token, client, failures)
            prompt = await _loop_across(one, two, token)
        assert failures == []

        # Nothing lost or duplicated, and the same order through either server, whichever served which page.
        rows = await anyio.to_thread.run_sync(lambda: _list_all(ports, token, source="ingest"))
        ids = [r["id"] for r in rows]
        expected = [
            f"c{c}-{i}"
            for c, i in sorted(
                ((c, i) for c in range(CLIENTS) for i in range(TRACES_PER_CLIENT)),
                key=lambda ci: -(ci[1] * CLIENTS + ci[0]),
            )
        ]
        assert ids == expected
        by_cost = await anyio.to_thread.run_sync(lambda: _list_all(ports[::-1], token, source="ingest", sort="cost"))
        assert sorted(r["id"] for r in by_cost) == sorted(expected) and len(by_cost) == len(expected)
        costs = [r["cost"] for r in by_cost]
        assert costs == sorted(costs, reverse=True)

        # The roll-ups of both servers' writes add up.
        rest = Rest(one.port, TENANT, token)
        stats = rest.call("GET", "/stats?group_by=model")
        rest.close()
        assert stats.status == 200, stats.body
        counts = {f"{g['group']['provider']}/{g['group']['model']}": g["count"] for g in stats.body["groups"]}
        assert counts["openai/gpt-4o-mini"] == CLIENTS * TRACES_PER_CLIENT

        # Publish races: one publish per server, both expecting the same draft: exactly one wins each time.
        etag = prompt["draftEtag"]
        for round_no in range(4):
            replies = await anyio.to_thread.run_sync(_publish_race, ports, token, "greet", etag)
            assert sorted(r.status for r in replies) == [200, 409], [r.body for r in replies]
            rest = Rest(ports[round_no % 2], TENANT, token)
            draft = {**CONTENT, "blocks": [{"id": "intro", "role": "system", "content": f"Round {round_no}"}]}
            put = rest.call("PUT", "/prompts/greet", {"content": draft})
            assert put.status == 200, put.body
            etag = put.body["draftEtag"]
            rest.close()
        rest = Rest(two.port, TENANT, token)
        versions = rest.call("GET", "/prompts/greet/versions").body
        rest.close()
        assert [v["version"] for v in versions["versions"]] == [1, 2, 3, 4, 5]
        assert len(versions["history"]) == 5
