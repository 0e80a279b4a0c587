"""The MCP server: ``build_server(settings)`` makes one; tests build their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer

from .. import __version__
from ..app import App, open_app
from ..config import Settings
from . import resources, tools_traces
from .common import error_shape_middleware

__all__ = ["INSTRUCTIONS", "build_server"]

INSTRUCTIONS = """\
AGNT Traces records every LLM call made through its prompts as a trace, and lets you fix a bad one:
list_traces → get_trace → open_playground → edit_block / update_variables / update_models →
run_session → diff_session → save_session → publish_prompt. Every step is one call.
Results are compact on purpose; use get_trace's fields and max_chars to read only what you need."""


def build_server(settings: Settings, **kwargs: Any) -> MCPServer[App]:
    @asynccontextmanager
    async def lifespan(_: MCPServer[App]) -> AsyncIterator[App]:
        async with open_app(settings) as app:
            yield app

    mcp: MCPServer[App] = MCPServer(
        "agnt-traces",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        middleware=[error_shape_middleware],
        **kwargs,
    )
    tools_traces.register(mcp)
    _register_optional(mcp)
    resources.register(mcp)
    return mcp


def _register_optional(mcp: MCPServer[App]) -> None:
    """Prompt, playground tools and MCP prompts (modules may be absent while the project grows)."""
    import importlib

    for name in ("tools_prompts", "tools_playground", "prompts_mcp"):
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise
            continue
        module.register(mcp)
