"""MCP Apps: the trace view and the session diff as ui:// resources (text/html;profile=mcp-app), linked
from the get_trace, diff_trace and diff_session tool definitions and results; clients that render nothing
keep the same text and structured results."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client

from agnt_traces.config import Settings
from agnt_traces.server.mcp import build_server
from factories import trace_payload
from mcp_helpers import call

pytestmark = pytest.mark.anyio
MIME = "text/html;profile=mcp-app"
XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
CONTENT = {
    "blocks": [{"id": "ask", "role": "user", "content": "Q: {{ q }}"}],
    "variables": [{"name": "q", "type": "string", "required": True}],
    "model": {"provider": "agnt-local", "name": "echo"},
}


def _meta_uri(obj: Any) -> str | None:
    meta = obj.meta if hasattr(obj, "meta") else None
    return (meta or {}).get("ui", {}).get("resourceUri")


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_tools_name_their_views_and_results_link_the_rendered_page(settings: Settings, mode: str) -> None:
    async with Client(build_server(settings), mode=mode) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert _meta_uri(tools["get_trace"]) == "ui://agnt-traces/trace"
        assert _meta_uri(tools["diff_trace"]) == "ui://agnt-traces/session-diff"
        assert _meta_uri(tools["diff_session"]) == "ui://agnt-traces/session-diff"
        assert _meta_uri(tools["list_traces"]) is None
        listed = {str(r.uri): r for r in (await c.list_resources()).resources} if mode == "legacy" else {}
        for uri in listed:
            assert not uri.startswith("ui://") or listed[uri].mime_type == MIME

        await call(c, "upsert_prompt", name="support", content=CONTENT)
        await call(c, "publish_prompt", name="support")
        ran = await call(c, "run_prompt", name="support", variables={"q": XSS})
        trace_id = ran["trace"]["id"]

        result = await c.call_tool("get_trace", {"trace_id": trace_id})
        assert _meta_uri(result) == f"ui://agnt-traces/trace/{trace_id}"
        # The text a non-rendering client reads is the same JSON as the structured result.
        assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
        assert XSS in result.structured_content["output"]  # type: ignore[index]

        view = await c.read_resource(f"ui://agnt-traces/trace/{trace_id}")
        (page,) = view.contents
        assert page.mime_type == MIME
        html = page.text  # type: ignore[union-attr]
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
        assert "<img src=x" not in html

        diffed = await c.call_tool("diff_trace", {"trace_id": trace_id})
        assert _meta_uri(diffed) == f"ui://agnt-traces/trace/{trace_id}"

        session = await call(c, "open_playground", trace_id=trace_id)
        await call(c, "edit_block", session_id=session["id"], block_id="ask", content="Question: {{ q }}")
        diff = await c.call_tool("diff_session", {"session_id": session["id"]})
        assert _meta_uri(diff) == f"ui://agnt-traces/session-diff/{session['id']}"
        assert json.loads(diff.content[0].text) == diff.structured_content  # type: ignore[union-attr]
        (page,) = (await c.read_resource(f"ui://agnt-traces/session-diff/{session['id']}")).contents
        assert page.mime_type == MIME
        assert "Question: {{ q }}" in page.text and 'class="changed"' in page.text  # type: ignore[union-attr]

        for app_uri in ("ui://agnt-traces/trace", "ui://agnt-traces/session-diff"):
            (page,) = (await c.read_resource(app_uri)).contents
            assert page.mime_type == MIME
            assert "ui/notifications/tool-result" in page.text and "innerHTML" not in page.text  # type: ignore[union-attr]


async def test_views_of_unknown_or_other_tenants_ids_are_not_found(settings: Settings, db_path: str) -> None:
    async with Client(build_server(Settings(db_path=db_path, tenant="other"))) as other:
        theirs = (await call(other, "ingest_trace", trace=trace_payload()))["id"]
    async with Client(build_server(settings)) as c:
        for uri in (f"ui://agnt-traces/trace/{theirs}", "ui://agnt-traces/session-diff/nope"):
            with pytest.raises(Exception) as err:
                await c.read_resource(uri)
            assert "not found" in str(err.value).lower()
