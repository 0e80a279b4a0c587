"""MCP tools over traces: list_traces, get_trace, ingest_trace, trace_stats."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from ..models import TraceIn
from ..services.ingest_results import IngestedTrace
from ..services.queries import StatsQuery, TraceQuery, validate_query
from ..services.trace_results import StatsResult, TraceList, TraceView
from ..services.traces import TRACE_FIELDS
from .apps import TRACE_APP, TRACE_VIEW, tool_meta, with_view
from .common import READ, WRITE, app_of, tenant_of, tool_errors

__all__ = ["register"]

TIME_HELP = "RFC 3339 (2026-11-30T09:00:00Z) or relative to now: 30m, 24h, 7d"
TraceId = Annotated[str, Field(description="a trace id, as list_traces returns it")]
INGEST_HELP = (
    "the trace as one object with camelCase fields: messages (sent to the model, [{role, content}]), output "
    "(response text), model {provider, name}, inputTokens, outputTokens, cost (US dollars), duration (seconds), "
    "status (success or error), error {type, message}, promptName, promptVersion, variables, manifest "
    "{system, tools, model, etag}, tags, metadata, createdAt (RFC 3339), id (optional: makes the call idempotent)"
)


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with every ``$ref`` to its ``$defs`` replaced by the definition (the field's schema is
    nested in the tool's input schema, where ``#/$defs/…`` would not resolve)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.removeprefix("#/$defs/")]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


INGEST_SCHEMA: dict[str, Any] = {
    "properties": _inline_refs(TraceIn.model_json_schema(by_alias=True)).get("properties", {})
}


def register(mcp: MCPServer[Any]) -> None:
    @mcp.tool(annotations=READ)
    @tool_errors
    async def list_traces(
        ctx: Context[Any, Any],
        status: Annotated[
            Literal["success", "error"] | None, Field(description="only calls that succeeded, or that failed")
        ] = None,
        prompt_name: Annotated[str | None, Field(description="exact prompt name, e.g. support-reply")] = None,
        prompt_version: Annotated[int | None, Field(description="the prompt version the call ran on: 1, 2, …")] = None,
        model: Annotated[str | None, Field(description="model name, or provider/name")] = None,
        provider: Annotated[str | None, Field(description="LiteLLM provider: openai, anthropic, agnt-local, …")] = None,
        tags: Annotated[list[str] | None, Field(description="every tag must match")] = None,
        since: Annotated[str | None, Field(description=TIME_HELP)] = None,
        until: Annotated[str | None, Field(description=TIME_HELP)] = None,
        min_cost: Annotated[float | None, Field(description="US dollars, e.g. 0.01")] = None,
        min_duration: Annotated[float | None, Field(description="seconds, e.g. 2.5")] = None,
        min_total_tokens: Annotated[int | None, Field(description="input + output tokens")] = None,
        query: Annotated[
            str | None, Field(description="full-text search over messages, output and variable values")
        ] = None,
        session_id: Annotated[str | None, Field(description="a playground session id: that session's runs")] = None,
        source: Annotated[
            Literal["run", "playground", "ingest", "litellm", "otlp"] | None,
            Field(
                description="how the trace was made: run (run_prompt), playground (run_session), ingest "
                "(posted by a client), litellm (an app's LiteLLM callback)"
            ),
        ] = None,
        sort: Annotated[
            Literal["created_at", "cost", "total_tokens", "duration"], Field(description="what the rows are ordered by")
        ] = "created_at",
        order: Annotated[Literal["asc", "desc"], Field(description="desc: newest or largest first")] = "desc",
        limit: Annotated[int, Field(ge=1, le=200, description="rows per page, 1-200")] = 20,
        cursor: Annotated[str | None, Field(description="nextCursor of the previous page")] = None,
    ) -> TraceList:
        """Find traces: filtered, sorted, cursor-paginated compact rows (newest first by default).

        Rows carry id, createdAt, promptName, promptVersion, model, status, totalTokens, cost,
        duration, tags and a 120-character outputPreview; open one with get_trace.
        """
        args = dict(locals())
        args.pop("ctx")
        q = validate_query(TraceQuery, args)
        return await app_of(ctx).traces.list(tenant_of(ctx), q)

    @mcp.tool(annotations=READ, meta=tool_meta(TRACE_APP))
    @tool_errors
    async def get_trace(
        ctx: Context[Any, Any],
        trace_id: TraceId,
        fields: Annotated[
            list[str] | None,
            Field(description="only these top-level fields (id always comes too): " + ", ".join(TRACE_FIELDS)),
        ] = None,
        max_chars: Annotated[
            int | None, Field(description="truncate every longer string to this many characters")
        ] = None,
    ) -> TraceView:
        """One trace: exact compiled prompt (manifest + messages), output, tokens, cost, latency, model,
        status, error and the compilation context (variables)."""
        data = await app_of(ctx).traces.get_json(tenant_of(ctx), trace_id, fields, max_chars)
        # The projected JSON as it is (fields, max_chars), checked against TraceView by the SDK.
        return with_view(data, TRACE_VIEW.format(trace_id=data["id"]))

    @mcp.tool(annotations=WRITE)
    @tool_errors
    async def ingest_trace(
        ctx: Context[Any, Any],
        trace: Annotated[dict[str, Any], Field(description=INGEST_HELP, json_schema_extra=INGEST_SCHEMA)],
    ) -> IngestedTrace:
        """Record a trace made elsewhere (camelCase fields as in GET /traces/:id). With an `id` the call is
        idempotent: the same content again is a no-op; different content is a conflict."""
        return await app_of(ctx).traces.ingest(tenant_of(ctx), trace)

    @mcp.tool(annotations=READ)
    @tool_errors
    async def trace_stats(
        ctx: Context[Any, Any],
        group_by: Annotated[
            Literal["prompt", "version", "model", "status"],
            Field(description="one row per prompt, version, model or status"),
        ] = "prompt",
        since: Annotated[str | None, Field(description=TIME_HELP)] = None,
        until: Annotated[str | None, Field(description=TIME_HELP + "; default now")] = None,
        prompt_name: Annotated[str | None, Field(description="only this prompt")] = None,
    ) -> StatsResult:
        """Count, errors, error rate, p50/p95 duration, tokens and cost per group over a time window."""
        q = validate_query(
            StatsQuery, {"group_by": group_by, "since": since, "until": until, "prompt_name": prompt_name}
        )
        return await app_of(ctx).traces.stats(tenant_of(ctx), q)
