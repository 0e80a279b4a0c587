"""MCP Apps (the ``io.modelcontextprotocol/ui`` extension): the trace view and the session diff as
``ui://`` resources (``text/html;profile=mcp-app``) for clients that render them.

* ``ui://agnt-traces/trace/{trace_id}`` and ``ui://agnt-traces/session-diff/{session_id}``: the view of
  that trace or session, rendered on the server (escaped, no script). ``get_trace``, ``diff_trace`` and
  ``diff_session`` results name theirs in ``_meta.ui.resourceUri``.
* ``ui://agnt-traces/trace`` and ``ui://agnt-traces/session-diff``: the views the tool definitions name
  in ``_meta.ui.resourceUri`` (a host loads them before the call): they take the tool result the host
  posts (``ui/notifications/tool-result``) and draw it with DOM text nodes only.

A client that renders nothing keeps the text and structured result exactly as before.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.server.mcpserver.utilities.func_metadata import _convert_to_content
from mcp.types import CallToolResult

from ..errors import AgntError
from .common import app_of, tenant_of

__all__ = [
    "MIME",
    "SESSION_DIFF_APP",
    "SESSION_DIFF_VIEW",
    "TRACE_APP",
    "TRACE_VIEW",
    "register",
    "tool_meta",
    "with_view",
]

MIME = "text/html;profile=mcp-app"
TRACE_APP = "ui://agnt-traces/trace"
SESSION_DIFF_APP = "ui://agnt-traces/session-diff"
TRACE_VIEW = TRACE_APP + "/{trace_id}"
SESSION_DIFF_VIEW = SESSION_DIFF_APP + "/{session_id}"
_STATIC = Path(__file__).resolve().parent.parent / "web" / "static"


def tool_meta(app_uri: str) -> dict[str, Any]:
    """A tool definition's ``_meta``: the view a rendering host shows for its results."""
    return {"ui": {"resourceUri": app_uri}}


def with_view(data: dict[str, Any], view_uri: str) -> Any:
    """The tool's usual result (same text, same structured content) with ``_meta.ui.resourceUri``."""
    return CallToolResult(
        content=_convert_to_content(data), structured_content=data, _meta={"ui": {"resourceUri": view_uri}}
    )


@functools.cache
def _env() -> Any:
    from ..web.pages import _env as web_env

    return web_env()


@functools.cache
def _css() -> str:
    return (_STATIC / "app.css").read_text(encoding="utf-8")


def _app_html(title: str) -> str:
    script = (_STATIC / "mcp-app.js").read_text(encoding="utf-8")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<style>{_css()}</style></head><body><main id="main"><p class="muted">Waiting for the tool result…</p>'
        f"</main><script>{script}</script></body></html>"
    )


def register(mcp: MCPServer[Any]) -> None:
    @mcp.resource(TRACE_APP, mime_type=MIME, description="MCP App: draws a get_trace result")
    def trace_app() -> str:
        return _app_html("AGNT Traces: trace")

    @mcp.resource(SESSION_DIFF_APP, mime_type=MIME, description="MCP App: draws a diff_trace or diff_session result")
    def session_diff_app() -> str:
        return _app_html("AGNT Traces: diff")

    @mcp.resource(TRACE_VIEW, mime_type=MIME, description="One trace as a page: conversation, output, numbers")
    async def trace_view(trace_id: str, ctx: Context[Any, Any]) -> str:
        from ..web.diffview import diff_files

        app, tenant = app_of(ctx), tenant_of(ctx)
        try:
            trace = (await app.traces.get(tenant, trace_id)).to_json()
        except AgntError as err:
            raise ResourceNotFoundError(err.message) from None
        files = []
        if trace.get("promptName"):
            try:
                files = diff_files((await app.playground.diff_trace(tenant, trace_id)).unified)
            except AgntError:
                files = []  # the prompt is gone: the trace alone
        page = _env().get_template("app_view.html")
        return str(page.render(kind="trace", t=trace, files=files, css=_css(), title="Trace"))

    @mcp.resource(SESSION_DIFF_VIEW, mime_type=MIME, description="A playground session's diff against its trace")
    async def session_diff_view(session_id: str, ctx: Context[Any, Any]) -> str:
        from ..web.diffview import diff_files

        try:
            diff = (await app_of(ctx).playground.diff(tenant_of(ctx), session_id)).render()
        except AgntError as err:
            raise ResourceNotFoundError(err.message) from None
        return str(
            _env()
            .get_template("app_view.html")
            .render(kind="diff", d=diff, sid=session_id, files=diff_files(diff["unified"]), css=_css(), title="Diff")
        )
