"""MCP tools over traces: list_traces, get_trace, ingest_trace, trace_stats."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from ..services.traces import validate_query
from ..store.base import StatsQuery, TraceQuery
from .common import READ, WRITE, app_of, tenant_of, tool_errors

__all__ = ["register"]


def register(mcp: MCPServer[Any]) -> None:
    @mcp.tool(annotations=READ)
    @tool_errors
    async def list_traces(
        ctx: Context[Any, Any],
        status: Literal["success", "error"] | None = None,
        prompt_name: str | None = None,
        prompt_version: int | None = None,
        model: Annotated[str | None, Field(description="model name, or provider/name")] = None,
        provider: str | None = None,
        tags: Annotated[list[str] | None, Field(description="every tag must match")] = None,
        since: Annotated[str | None, Field(description="RFC 3339 or relative: 30m, 24h, 7d")] = None,
        until: Annotated[str | None, Field(description="RFC 3339 or relative: 30m, 24h, 7d")] = None,
        min_cost: float | None = None,
        min_duration: Annotated[float | None, Field(description="seconds")] = None,
        min_total_tokens: int | None = None,
        query: Annotated[
            str | None, Field(description="full-text search over messages, output and variable values")
        ] = None,
        session_id: str | None = None,
        source: Literal["run", "playground", "ingest", "litellm"] | None = None,
        sort: Literal["created_at", "cost", "total_tokens", "duration"] = "created_at",
        order: Literal["asc", "desc"] = "desc",
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
        cursor: Annotated[str | None, Field(description="nextCursor of the previous page")] = None,
    ) -> dict[str, Any]:
        """Find traces: filtered, sorted, cursor-paginated compact rows (newest first by default).

        Rows carry id, createdAt, promptName, promptVersion, model, status, totalTokens, cost,
        duration, tags and a 120-character outputPreview; open one with get_trace.
        """
        args = dict(locals())
        args.pop("ctx")
        q = validate_query(TraceQuery, args)
        return await app_of(ctx).traces.list(tenant_of(ctx), q)

    @mcp.tool(annotations=READ)
    @tool_errors
    async def get_trace(
        ctx: Context[Any, Any],
        trace_id: str,
        fields: Annotated[
            list[str] | None, Field(description="only these top-level fields, e.g. ['messages','output']")
        ] = None,
        max_chars: Annotated[
            int | None, Field(description="truncate every longer string to this many characters")
        ] = None,
    ) -> dict[str, Any]:
        """One trace: exact compiled prompt (manifest + messages), output, tokens, cost, latency, model,
        status, error and the compilation context (variables)."""
        return await app_of(ctx).traces.get_json(tenant_of(ctx), trace_id, fields, max_chars)

    @mcp.tool(annotations=WRITE)
    @tool_errors
    async def ingest_trace(ctx: Context[Any, Any], trace: dict[str, Any]) -> dict[str, Any]:
        """Record a trace made elsewhere (camelCase fields as in GET /traces/:id). With an `id` the call is
        idempotent: the same content again is a no-op; different content is a conflict."""
        return await app_of(ctx).traces.ingest(tenant_of(ctx), trace)

    @mcp.tool(annotations=READ)
    @tool_errors
    async def trace_stats(
        ctx: Context[Any, Any],
        group_by: Literal["prompt", "version", "model", "status"] = "prompt",
        since: Annotated[str | None, Field(description="RFC 3339 or relative: 30m, 24h, 7d")] = None,
        until: str | None = None,
        prompt_name: str | None = None,
    ) -> dict[str, Any]:
        """Count, errors, error rate, p50/p95 duration, tokens and cost per group over a time window."""
        q = validate_query(
            StatsQuery, {"group_by": group_by, "since": since, "until": until, "prompt_name": prompt_name}
        )
        return await app_of(ctx).traces.stats(tenant_of(ctx), q)
