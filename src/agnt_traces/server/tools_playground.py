"""MCP tools of the fix loop: trace diffs and playground sessions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult
from pydantic import Field

from ..limits import DIFF_MAX_CHARS
from ..services.playground_results import (
    CompiledSession,
    DeletedSession,
    RunOutcome,
    SavedSession,
    SessionDiff,
    SessionList,
    SessionView,
    TraceDiff,
)
from .apps import SESSION_DIFF_APP, SESSION_DIFF_VIEW, TRACE_VIEW, tool_meta, with_view
from .common import DESTRUCTIVE, IDEMPOTENT_WRITE, MODEL_CALL, READ, WRITE, app_of, tenant_of, tool_errors
from .progress import ProgressBeat

__all__ = ["register"]

TraceId = Annotated[str, Field(description="a trace id, as list_traces returns it")]

SessionId = Annotated[str, Field(description="id returned by open_playground")]
MaxChars = Annotated[
    int,
    Field(
        ge=1,
        le=10_000_000,
        description="bound on the characters of `unified`: whole files are kept while they fit and `truncated` "
        "names the rest (the summary always counts every file)",
    ),
]


def register(mcp: MCPServer[Any]) -> None:
    @mcp.tool(annotations=READ, meta=tool_meta(SESSION_DIFF_APP))
    @tool_errors
    async def diff_trace(
        ctx: Context[Any, Any],
        trace_id: TraceId,
        against: Annotated[
            str | int | None,
            Field(description="'draft', 'production' or a version number; default 'production', else the draft"),
        ] = None,
        max_chars: MaxChars = DIFF_MAX_CHARS,
    ) -> Annotated[CallToolResult, TraceDiff]:
        """The trace's prompt vs the prompt now: the content diff (blocks, variables, model, tools) and the
        rendered diff (the current content compiled with the trace's own variables and input messages vs
        the messages the trace actually sent), both in one `unified` text and one `summary`."""
        result = await app_of(ctx).playground.diff_trace(tenant_of(ctx), trace_id, against, max_chars)
        return with_view(result.render(), TRACE_VIEW.format(trace_id=result.trace_id))

    @mcp.tool(annotations=WRITE)
    @tool_errors
    async def open_playground(ctx: Context[Any, Any], trace_id: TraceId) -> SessionView:
        """Open a playground session loaded with the trace's exact prompt version, variables, model and
        input messages. Edit it, run it, diff it, save it."""
        return await app_of(ctx).playground.open(tenant_of(ctx), trace_id)

    @mcp.tool(annotations=READ)
    @tool_errors
    async def get_session(ctx: Context[Any, Any], session_id: SessionId) -> SessionView:
        """A session's blocks, variables, models, input messages and runs."""
        return await app_of(ctx).playground.get(tenant_of(ctx), session_id)

    @mcp.tool(annotations=READ)
    @tool_errors
    async def list_sessions(
        ctx: Context[Any, Any], limit: Annotated[int, Field(ge=1, le=200, description="sessions to list, 1-200")] = 50
    ) -> SessionList:
        """Open playground sessions, most recently used first."""
        return await app_of(ctx).playground.list(tenant_of(ctx), limit)

    @mcp.tool(annotations=WRITE)
    @tool_errors
    async def edit_block(
        ctx: Context[Any, Any],
        session_id: SessionId,
        block_id: Annotated[
            str, Field(description="the block to change; for insert, the new block's id (a-z, 0-9, '_', '-')")
        ],
        op: Annotated[
            Literal["update", "insert", "delete", "move"],
            Field(description="update its content/condition/role, insert a new block, delete it, or move it"),
        ] = "update",
        content: Annotated[str | None, Field(description="Jinja2 template text")] = None,
        condition: Annotated[str | None, Field(description="Jinja2 expression; '' removes the condition")] = None,
        role: Annotated[
            Literal["system", "user", "assistant"] | None, Field(description="the block's role; insert default: user")
        ] = None,
        after: Annotated[
            str | None, Field(description="for insert/move: the block to put it after; omitted = at the start")
        ] = None,
    ) -> SessionView:
        """Change one block of the session: update its content/condition/role, insert a new block,
        delete it, or move it."""
        return await app_of(ctx).playground.edit_block(
            tenant_of(ctx), session_id, block_id, op, content=content, condition=condition, role=role, after=after
        )

    @mcp.tool(annotations=IDEMPOTENT_WRITE)
    @tool_errors
    async def update_variables(
        ctx: Context[Any, Any],
        session_id: SessionId,
        values: Annotated[dict[str, Any] | None, Field(description="name → value; null unsets")] = None,
        declarations: Annotated[
            list[dict[str, Any]] | None,
            Field(description="declare or redeclare variables: [{name, type, required, default, description}]"),
        ] = None,
    ) -> SessionView:
        """Set variable values of the session (type-checked against the declarations; null unsets), and
        declare new variables, e.g. one that an inserted block reads."""
        return await app_of(ctx).playground.update_variables(
            tenant_of(ctx), session_id, values or {}, declarations=declarations
        )

    @mcp.tool(annotations=IDEMPOTENT_WRITE)
    @tool_errors
    async def update_models(
        ctx: Context[Any, Any],
        session_id: SessionId,
        models: Annotated[
            list[dict[str, Any]],
            Field(description="1-8 models {provider, name, params}; run_session calls each; the first is saved"),
        ],
    ) -> SessionView:
        """Replace the session's model list (1-8). Keys come from the environment, never from params."""
        return await app_of(ctx).playground.update_models(tenant_of(ctx), session_id, models)

    @mcp.tool(annotations=READ)
    @tool_errors
    async def compile_session(ctx: Context[Any, Any], session_id: SessionId) -> CompiledSession:
        """What the model would receive: manifest, messages, warnings, token and cost estimates per model."""
        return await app_of(ctx).playground.compile(tenant_of(ctx), session_id)

    @mcp.tool(annotations=MODEL_CALL)
    @tool_errors
    async def run_session(
        ctx: Context[Any, Any],
        session_id: SessionId,
        fresh: Annotated[
            bool,
            Field(description="call the models even when this exact request was answered before (default: reuse it)"),
        ] = False,
    ) -> RunOutcome:
        """Run the session on every model concurrently; each run is recorded as a trace. A request identical
        to one answered before reuses that answer (cached: true, cost 0) unless fresh=true; a run that would
        take the session past its spend limit is refused before any call. Progress is reported when each
        model finishes and every few seconds while any still runs."""
        beat = ProgressBeat(ctx)
        async with beat.running():
            return await app_of(ctx).playground.run(tenant_of(ctx), session_id, beat.report, fresh=fresh)

    @mcp.tool(annotations=READ, meta=tool_meta(SESSION_DIFF_APP))
    @tool_errors
    async def diff_session(
        ctx: Context[Any, Any], session_id: SessionId, max_chars: MaxChars = DIFF_MAX_CHARS
    ) -> Annotated[CallToolResult, SessionDiff]:
        """Session vs the trace it came from: prompt content, compiled messages, and after a run the
        outputs with token, cost and latency deltas per model."""
        result = await app_of(ctx).playground.diff(tenant_of(ctx), session_id, max_chars)
        return with_view(result.render(), SESSION_DIFF_VIEW.format(session_id=session_id))

    @mcp.tool(annotations=WRITE)
    @tool_errors
    async def save_session(
        ctx: Context[Any, Any],
        session_id: SessionId,
        force: Annotated[
            bool, Field(description="overwrite this prompt's draft even though it changed since the session opened")
        ] = False,
        prompt_name: Annotated[
            str | None,
            Field(description="the prompt to save to; needed for sessions opened from traces with no stored prompt"),
        ] = None,
        replace_draft: Annotated[
            bool,
            Field(
                description="replace an existing draft with this session's content although the session was not "
                "opened from that prompt's content (a trace with unknown content, or another prompt)"
            ),
        ] = False,
    ) -> SavedSession:
        """Save the session's content to the prompt's draft (conflict if the draft moved, unless force)."""
        return await app_of(ctx).playground.save(
            tenant_of(ctx), session_id, force=force, prompt_name=prompt_name, replace_draft=replace_draft
        )

    @mcp.tool(annotations=DESTRUCTIVE)
    @tool_errors
    async def delete_session(ctx: Context[Any, Any], session_id: SessionId) -> DeletedSession:
        """Delete a playground session and its run list (the traces of its runs stay)."""
        return await app_of(ctx).playground.delete(tenant_of(ctx), session_id)
