"""The MCP server: ``build_server(settings)`` makes one; tests build their own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import MCPServer

from .. import __version__
from ..config import Settings
from .common import LateApp, error_shape_middleware, prompt_arguments_middleware
from .sdk_seams import registered_tools, spans_when_traced

if TYPE_CHECKING:
    from ..app import App

__all__ = ["INSTRUCTIONS", "build_server", "build_server_deferred"]

INSTRUCTIONS = """\
AGNT Traces records every LLM call made through its prompts as a trace, and lets you fix a bad one:
list_traces → get_trace → open_playground → edit_block / update_variables / update_models →
run_session → diff_session → save_session → publish_prompt. Every step is one call.
Before publishing a fix, pin_golden good traces and run_replay the draft: a gated prompt (set_gate) publishes
only after a passing replay.
Results are compact on purpose; use get_trace's fields and max_chars to read only what you need."""


def build_server(settings: Settings, *, shared_app: Callable[[], App] | None = None, **kwargs: Any) -> MCPServer[Any]:
    """The MCP server. ``shared_app`` hands it an App opened elsewhere (the HTTP server's); otherwise
    its lifespan opens one. ``kwargs`` go to ``MCPServer`` (``token_verifier``, ``auth``)."""
    mcp, register = build_server_deferred(settings, shared_app=shared_app, **kwargs)
    register()
    return mcp


def build_server_deferred(
    settings: Settings, *, shared_app: Callable[[], App | LateApp] | None = None, **kwargs: Any
) -> tuple[MCPServer[Any], Callable[[], None]]:
    """The MCP server without its tools, resources and prompts, and the function that registers them
    (about 0.1 s of CPU: the SDK builds an argument model and JSON schemas for every tool). The answers to
    ``initialize`` and ``server/discover`` (name, version, instructions, capabilities) do not depend on
    them, so the stdio server answers the handshake first and registers before any other request reaches
    the SDK. Call ``register()`` exactly once, before the server handles any other request."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[App | LateApp]:
        if shared_app is not None:
            yield shared_app()
            return
        from ..app import open_app

        async with open_app(settings) as app:
            yield app

    mcp: MCPServer[Any] = MCPServer(
        "agnt-traces",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        middleware=[error_shape_middleware, prompt_arguments_middleware(lambda: mcp)],
        **kwargs,
    )
    spans_when_traced(mcp)

    def register() -> None:
        # Imported here: their result models take ~25 ms to build, which the handshake need not wait for.
        from . import apps, prompts_mcp, resources, tools_golden, tools_playground, tools_prompts, tools_traces

        for module in (tools_traces, tools_prompts, tools_playground, tools_golden, resources, apps, prompts_mcp):
            module.register(mcp)
        _forbid_unknown_arguments(mcp)
        _simplify_output_schemas(mcp)

    return mcp, register


def _forbid_unknown_arguments(mcp: MCPServer[Any]) -> None:
    """A misspelt argument (``promt_name``) is an error naming it, not silently ignored: an unfiltered
    answer to a filtered question would mislead the agent. The schema says so too."""
    for tool in registered_tools(mcp):
        model = tool.fn_metadata.arg_model
        model.model_config["extra"] = "forbid"
        model.model_rebuild(force=True)
        tool.parameters["additionalProperties"] = False


def _simplify_output_schemas(mcp: MCPServer[Any]) -> None:
    """Publish each result schema in its simplest equivalent form (server/output_schemas.py): clients check
    every result against it. The SDK reads ``output_schema`` live; results are still validated against the
    result type itself."""
    from .output_schemas import simplified

    for tool in registered_tools(mcp):
        if tool.fn_metadata.output_schema is not None:
            tool.fn_metadata.output_schema = simplified(tool.fn_metadata.output_schema)
