from __future__ import annotations

import json

import anyio
import pytest
from mcp import Client

from agnt_traces.config import Settings
from agnt_traces.server.mcp import build_server
from factories import trace_payload
from mcp_helpers import call, call_error

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto"]


@pytest.mark.parametrize("mode", MODES)
async def test_trace_tools_round_trip(settings: Settings, mode: str) -> None:
    with anyio.fail_after(20):
        async with Client(build_server(settings), mode=mode) as c:
            created = await call(c, "ingest_trace", trace=trace_payload(output="refund issued today"))
            assert created["created"] is True
            page = await call(c, "list_traces", query="refund", prompt_name="support")
            assert [r["id"] for r in page["traces"]] == [created["id"]]
            assert page["traces"][0]["outputPreview"] == "refund issued today"
            trace = await call(c, "get_trace", trace_id=created["id"], fields=["output", "variables"])
            assert trace == {
                "id": created["id"],
                "output": "refund issued today",
                "variables": {"company_name": "Acme", "tier": "premium"},
            }
            stats = await call(c, "trace_stats", group_by="prompt")
            assert stats["groups"][0]["count"] == 1


async def test_tools_are_listed_with_honest_annotations(settings: Settings) -> None:
    async with Client(build_server(settings)) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    for name in ("list_traces", "get_trace", "trace_stats"):
        assert tools[name].annotations.read_only_hint is True
    assert tools["ingest_trace"].annotations.read_only_hint is False
    assert tools["ingest_trace"].annotations.destructive_hint is False
    props = tools["list_traces"].input_schema["properties"]
    for arg in (
        "status",
        "prompt_name",
        "prompt_version",
        "model",
        "provider",
        "tags",
        "since",
        "until",
        "min_cost",
        "min_duration",
        "min_total_tokens",
        "query",
        "session_id",
        "source",
        "sort",
        "order",
        "limit",
        "cursor",
    ):
        assert arg in props, arg


@pytest.mark.parametrize("mode", MODES)
async def test_errors_have_one_shape(settings: Settings, mode: str) -> None:
    async with Client(build_server(settings), mode=mode) as c:
        err = await call_error(c, "get_trace", trace_id="missing")
        assert err["code"] == "not_found" and "list_traces" in err["message"]
        err = await call_error(c, "list_traces", limit=500)
        assert err["code"] == "invalid_argument" and "limit" in err["message"]
        err = await call_error(c, "list_traces", since="last tuesday")
        assert err["code"] == "invalid_argument" and "since" in err["message"]
        err = await call_error(c, "ingest_trace", trace={"promtName": "x"})
        assert err["code"] == "invalid_argument" and "promtName" in err["message"]
        err = await call_error(c, "list_traces", query='"open')
        assert err["code"] == "invalid_argument"
        err = await call_error(c, "no_such_tool")
        assert err["code"] == "not_found"
        # Nothing was stored by the failed calls.
        assert (await call(c, "list_traces"))["traces"] == []


async def test_ingest_conflict_and_idempotency_over_mcp(settings: Settings) -> None:
    async with Client(build_server(settings)) as c:
        assert (await call(c, "ingest_trace", trace=trace_payload(id="t-1")))["created"] is True
        assert (await call(c, "ingest_trace", trace=trace_payload(id="t-1")))["created"] is False
        err = await call_error(c, "ingest_trace", trace=trace_payload(id="t-1", output="other"))
        assert err["code"] == "conflict"


@pytest.mark.parametrize("mode", MODES)
async def test_resources_page_through_recent_traces(settings: Settings, mode: str) -> None:
    async with Client(build_server(settings), mode=mode) as c:
        made = [(await call(c, "ingest_trace", trace=trace_payload(output=f"n{i}")))["id"] for i in range(60)]
        first = await c.list_resources()
        assert len(first.resources) == 50 and first.next_cursor
        second = await c.list_resources(cursor=first.next_cursor)
        listed = [str(r.uri) for r in first.resources + second.resources]
        assert listed == [f"traces://{i}" for i in reversed(made)]
        assert second.next_cursor is None
        body = await c.read_resource(f"traces://{made[0]}")
        assert json.loads(body.contents[0].text)["output"] == "n0"  # type: ignore[union-attr]


async def test_missing_trace_resource_is_not_found(settings: Settings) -> None:
    from mcp import MCPError

    async with Client(build_server(settings)) as c:
        with pytest.raises(MCPError) as exc:
            await c.read_resource("traces://nope")
    assert "not found" in str(exc.value)


async def test_a_misspelt_argument_is_an_error_not_ignored(settings: Settings) -> None:
    async with Client(build_server(settings)) as c:
        await call(c, "ingest_trace", trace=trace_payload())
        err = await call_error(c, "list_traces", promt_name="support")
        assert err["code"] == "invalid_argument" and "promt_name" in err["message"]
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert tools["list_traces"].input_schema["additionalProperties"] is False
