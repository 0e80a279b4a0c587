"""MCP tools over prompts: list_prompts, get_prompt, upsert_prompt, publish_prompt, run_prompt."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from .common import IDEMPOTENT_WRITE, MODEL_CALL, READ, WRITE, app_of, tenant_of, tool_errors

__all__ = ["register"]


def register(mcp: MCPServer[Any]) -> None:
    @mcp.tool(annotations=READ)
    @tool_errors
    async def list_prompts(ctx: Context[Any, Any]) -> dict[str, Any]:
        """The prompts of this tenant: name, draft revision, latest version, labels, model."""
        return await app_of(ctx).prompts.list(tenant_of(ctx))

    @mcp.tool(annotations=READ)
    @tool_errors
    async def get_prompt(
        ctx: Context[Any, Any],
        name: str,
        version: Annotated[int | None, Field(description="a version number; default: the draft")] = None,
        label: Annotated[str | None, Field(description="e.g. 'production'; 'draft' for the draft")] = None,
    ) -> dict[str, Any]:
        """A prompt's content (draft by default, or a version or label) with its versions, labels and history."""
        return await app_of(ctx).prompts.get(tenant_of(ctx), name, version=version, label=label)

    @mcp.tool(annotations=IDEMPOTENT_WRITE)
    @tool_errors
    async def upsert_prompt(
        ctx: Context[Any, Any],
        name: str,
        content: Annotated[
            dict[str, Any],
            Field(
                description="{blocks: [{id, role, content, condition}], variables: [{name, type, required, "
                "default, description}], model: {provider, name, params}, tools: [...]}"
            ),
        ],
        description: str | None = None,
    ) -> dict[str, Any]:
        """Create a prompt or replace its draft (templates are checked; published versions never change)."""
        return await app_of(ctx).prompts.upsert(tenant_of(ctx), name, content, description)

    @mcp.tool(annotations=WRITE)
    @tool_errors
    async def publish_prompt(
        ctx: Context[Any, Any],
        name: str,
        version: Annotated[
            int | None, Field(description="move the label to this existing version instead (rollback)")
        ] = None,
        label: str = "production",
        note: str = "",
        expected_etag: Annotated[
            str | None,
            Field(
                description="the draftEtag you read (get_prompt / upsert_prompt): refuse with 'conflict' if the "
                "draft changed since; '*' means any draft"
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Publish the draft as a new version and point the label (default 'production') at it; with
        `version`, move the label to that existing version instead (a rollback). Pass `expected_etag` so
        that a draft someone else changed meanwhile is never published under your note."""
        return await app_of(ctx).prompts.publish(
            tenant_of(ctx), name, version=version, label=label, note=note, expected_etag=expected_etag
        )

    @mcp.tool(annotations=MODEL_CALL)
    @tool_errors
    async def run_prompt(
        ctx: Context[Any, Any],
        name: str,
        variables: dict[str, Any] | None = None,
        messages: Annotated[
            list[dict[str, Any]] | None, Field(description="input messages, e.g. [{role: 'user', content: '...'}]")
        ] = None,
        label: Annotated[str | None, Field(description="default 'production'; 'draft' runs the draft")] = None,
        version: int | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Compile a prompt with variables and input messages, call its model, record and return the trace."""
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
