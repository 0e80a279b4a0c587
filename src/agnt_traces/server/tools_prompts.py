"""MCP tools over prompts: list_prompts, get_prompt, upsert_prompt, publish_prompt, run_prompt."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from ..services.prompt_results import PromptDetail, PromptList, PublishResult, RunPromptResult, UpsertResult
from .common import IDEMPOTENT_WRITE, MODEL_CALL, READ, WRITE, app_of, tenant_of, tool_errors
from .progress import ProgressBeat

__all__ = ["register"]

NAME_HELP = "prompt name: 1-128 characters of a-z, 0-9, '.', '_' or '-'"
PromptName = Annotated[str, Field(description=NAME_HELP + ", as list_prompts shows it")]


def register(mcp: MCPServer[Any]) -> None:
    @mcp.tool(annotations=READ)
    @tool_errors
    async def list_prompts(ctx: Context[Any, Any]) -> PromptList:
        """The prompts of this tenant: name, draft revision, latest version, labels, model."""
        return await app_of(ctx).prompts.list(tenant_of(ctx))

    @mcp.tool(annotations=READ)
    @tool_errors
    async def get_prompt(
        ctx: Context[Any, Any],
        name: PromptName,
        version: Annotated[int | None, Field(description="a version number; default: the draft")] = None,
        label: Annotated[str | None, Field(description="e.g. 'production'; 'draft' for the draft")] = None,
    ) -> PromptDetail:
        """A prompt's content (draft by default, or a version or label) with its versions, labels and history."""
        return await app_of(ctx).prompts.get(tenant_of(ctx), name, version=version, label=label)

    @mcp.tool(annotations=IDEMPOTENT_WRITE)
    @tool_errors
    async def upsert_prompt(
        ctx: Context[Any, Any],
        name: Annotated[str, Field(description=NAME_HELP + "; created if it does not exist")],
        content: Annotated[
            dict[str, Any],
            Field(
                description="{blocks: [{id, role, content, condition}], variables: [{name, type, required, "
                "default, description}], model: {provider, name, params}, tools: [...]}"
            ),
        ],
        description: Annotated[str | None, Field(description="what the prompt is for, for people")] = None,
    ) -> UpsertResult:
        """Create a prompt or replace its draft (templates are checked; published versions never change)."""
        return await app_of(ctx).prompts.upsert(tenant_of(ctx), name, content, description)

    @mcp.tool(annotations=WRITE)
    @tool_errors
    async def publish_prompt(
        ctx: Context[Any, Any],
        name: PromptName,
        version: Annotated[
            int | None, Field(description="move the label to this existing version instead (rollback)")
        ] = None,
        label: Annotated[str, Field(description="the label to point at the version")] = "production",
        note: Annotated[str, Field(description="why: recorded in the version's history")] = "",
        expected_etag: Annotated[
            str | None,
            Field(
                description="the draftEtag you read (get_prompt / upsert_prompt): refuse with 'conflict' if the "
                "draft changed since; '*' means any draft"
            ),
        ] = None,
        run_gate: Annotated[
            bool,
            Field(
                description="on a gated prompt: replay the draft now (waits, with progress) instead of "
                "requiring a passing replay"
            ),
        ] = False,
        override_reason: Annotated[
            str | None,
            Field(
                description="publish a gated prompt without a passing replay; the reason is recorded in the "
                "version's history"
            ),
        ] = None,
    ) -> PublishResult:
        """Publish the draft as a new version and point the label (default 'production') at it; with
        `version`, move the label to that existing version instead (a rollback). Pass `expected_etag` so
        that a draft someone else changed meanwhile is never published under your note. A gated prompt
        (set_gate) needs a passing replay of exactly this draft: run_replay first, or pass run_gate=true."""
        beat = ProgressBeat(ctx)
        async with beat.running():
            return await app_of(ctx).golden.publish(
                tenant_of(ctx),
                name,
                version=version,
                label=label,
                note=note,
                expected_etag=expected_etag,
                run_gate=run_gate,
                override_reason=override_reason,
                progress=beat.report,
            )

    @mcp.tool(annotations=MODEL_CALL)
    @tool_errors
    async def run_prompt(
        ctx: Context[Any, Any],
        name: PromptName,
        variables: Annotated[
            dict[str, Any] | None, Field(description="values of the prompt's declared variables: name → value")
        ] = None,
        messages: Annotated[
            list[dict[str, Any]] | None, Field(description="input messages, e.g. [{role: 'user', content: '...'}]")
        ] = None,
        label: Annotated[str | None, Field(description="default 'production'; 'draft' runs the draft")] = None,
        version: Annotated[int | None, Field(description="run this version number instead of a label")] = None,
        tags: Annotated[list[str] | None, Field(description="tags recorded on the trace")] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="JSON recorded on the trace")] = None,
    ) -> RunPromptResult:
        """Compile a prompt with variables and input messages, call its model, record and return the trace.
        Progress is reported every few seconds while the model call runs."""
        async with ProgressBeat(ctx).running():
            return await app_of(ctx).prompts.run(
                tenant_of(ctx),
                name,
                variables=variables,
                messages=messages,
                label=label,
                version=version,
                tags=tags,
                metadata=metadata,
            )
