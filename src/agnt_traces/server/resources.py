"""MCP resources: traces, prompts, sessions; a cursor-paginated resources/list of recent traces."""

from __future__ import annotations

import json
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, ListResourcesResult, PaginatedRequestParams, Resource

from ..app import App
from ..errors import AgntError, NotFound
from ..services.queries import TraceQuery
from .common import app_in, app_of, tenant_of
from .sdk_seams import lowlevel_server

__all__ = ["register"]

PAGE = 50


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=1)


def register(mcp: MCPServer[Any]) -> None:
    @mcp.resource("traces://{trace_id}", mime_type="application/json", description="One trace, in full")
    async def trace_resource(trace_id: str, ctx: Context[Any, Any]) -> str:
        try:
            return _json(await app_of(ctx).traces.get_json(tenant_of(ctx), trace_id))
        except NotFound as err:
            raise ResourceNotFoundError(err.message) from None

    @mcp.resource("prompts://{name}", mime_type="application/json", description="A prompt: draft, versions, labels")
    async def prompt_resource(name: str, ctx: Context[Any, Any]) -> str:
        try:
            return _json((await app_of(ctx).prompts.get(tenant_of(ctx), name)).render())
        except NotFound as err:
            raise ResourceNotFoundError(err.message) from None

    @mcp.resource("prompts://{name}/versions/{version}", mime_type="application/json", description="One prompt version")
    async def prompt_version_resource(name: str, version: str, ctx: Context[Any, Any]) -> str:
        try:
            if not version.isdigit():
                raise NotFound(f"version {version!r} of prompt {name!r} not found: versions are numbers")
            return _json((await app_of(ctx).prompts.get(tenant_of(ctx), name, version=int(version))).render())
        except AgntError as err:
            raise ResourceNotFoundError(err.message) from None

    @mcp.resource("sessions://{session_id}", mime_type="application/json", description="A playground session")
    async def session_resource(session_id: str, ctx: Context[Any, Any]) -> str:
        try:
            return _json((await app_of(ctx).playground.get(tenant_of(ctx), session_id)).render())
        except NotFound as err:
            raise ResourceNotFoundError(err.message) from None

    @mcp.resource(
        "replays://{replay_id}",
        mime_type="text/markdown",
        description="A replay's report: summary, gate verdict and the worst cases with their diffs (compact)",
    )
    async def replay_resource(replay_id: str, ctx: Context[Any, Any]) -> str:
        try:
            return await app_of(ctx).golden.report_text(tenant_of(ctx), replay_id)
        except NotFound as err:
            raise ResourceNotFoundError(err.message) from None

    async def list_recent_traces(
        ctx: ServerRequestContext[App, Any], params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        app = app_in(ctx.lifespan_context)
        from mcp.server.auth.middleware.auth_context import get_access_token

        token = get_access_token()
        tenant = token.client_id if token is not None and token.client_id else app.settings.tenant
        cursor = params.cursor if params else None
        try:
            page = await app.traces.list(tenant, TraceQuery(limit=PAGE, cursor=cursor))
        except AgntError as err:
            raise MCPError(INVALID_PARAMS, err.message, {"field": "cursor"}) from None
        resources = [
            Resource(
                uri=f"traces://{row.id}",
                name=row.id,
                title=f"{row.prompt_name or '(no prompt)'} · {row.model} · {row.status}",
                description=row.output_preview or None,
                mime_type="application/json",
            )
            for row in page.traces
        ]
        return ListResourcesResult(resources=resources, next_cursor=page.next_cursor)

    lowlevel_server(mcp).add_request_handler("resources/list", PaginatedRequestParams, list_recent_traces)
