"""The Python API's trace reads return typed objects; ``.render()`` is exactly the tools' JSON."""

from __future__ import annotations

import pytest
from mcp import Client

from agnt_traces import AgntTraces
from agnt_traces.config import Settings
from agnt_traces.errors import InvalidArgument, NotFound
from agnt_traces.models import Trace
from agnt_traces.records import StatsRow, TraceSummary, VersionGroup
from agnt_traces.server.mcp import build_server
from agnt_traces.services.trace_results import StatsResult, TraceList
from factories import trace_payload
from mcp_helpers import call

pytestmark = pytest.mark.anyio


async def test_list_get_and_stats_are_typed_and_render_as_the_tools_do(db_path: str) -> None:
    async with AgntTraces.open(db=db_path, tenant="acme") as at:
        await at.ingest_trace(trace_payload(id="a1", createdAt="2026-03-01T10:00:00.5Z", output="first"))
        await at.ingest_trace(
            trace_payload(
                id="a2", createdAt="2026-03-01T11:00:00Z", promptVersion=2, cost=None, inputTokens=0, outputTokens=0
            )
        )
        page = await at.list_traces(prompt_name="support", limit=1)
        assert isinstance(page, TraceList) and isinstance(page.traces[0], TraceSummary)
        row = page.traces[0]
        assert (row.id, row.created_at, row.cost, row.prompt_version) == ("a2", 1772362800000, None, 2)
        assert page.next_cursor is not None
        rest = await at.list_traces(prompt_name="support", limit=1, cursor=page.next_cursor)
        assert [r.id for r in rest.traces] == ["a1"] and rest.next_cursor is None
        assert rest.traces[0].created_at == 1772359200500  # epoch ms inside …
        assert rest.render()["traces"][0]["createdAt"] == "2026-03-01T10:00:00.500Z"  # … RFC 3339 outside

        trace = await at.get_trace("a1")
        assert isinstance(trace, Trace) and trace.output == "first"
        with pytest.raises(NotFound):
            await at.get_trace("missing")

        stats = await at.trace_stats("version", since="2026-03-01T00:00:00Z")
        assert isinstance(stats, StatsResult) and all(isinstance(g, StatsRow) for g in stats.groups)
        assert {(g.group.prompt_version, g.count) for g in stats.groups if isinstance(g.group, VersionGroup)} == {
            (1, 1),
            (2, 1),
        }
        with pytest.raises(InvalidArgument, match="since"):
            await at.trace_stats(since="yesterday-ish")
        with pytest.raises(InvalidArgument, match="colour"):
            await at.list_traces(colour="red")
        api_json = (page.render(), stats.render(), trace.to_json())

    async with Client(build_server(Settings(db_path=db_path, tenant="acme"))) as c:
        tool_json = (
            await call(c, "list_traces", prompt_name="support", limit=1),
            await call(c, "trace_stats", group_by="version", since="2026-03-01T00:00:00Z"),
            await call(c, "get_trace", trace_id="a1"),
        )
    assert api_json[0]["traces"] == tool_json[0]["traces"]  # cursors are sealed per call: compare rows
    assert api_json[1:] == tool_json[1:]
