"""The one place that reaches into private attributes of the MCP SDK (pinned: mcp==2.3.0).

Three needs have no public way in 2.3.0:

- serving our own bounded stdio streams needs the low-level server (below);
- a paginated ``resources/list`` needs a request handler on the low-level server (``MCPServer`` answers
  every list in one page);
- refusing unknown tool arguments by name needs the registered tools' argument models (``_tool_manager``).

``MCPServer.run_stdio_async`` always serves the process's own stdin/stdout through the SDK's reader, which
reads lines of any length (unbounded memory) on a worker thread that Ctrl-C cannot interrupt. The SDK's
``stdio_server(stdin=..., stdout=...)`` is public and takes our own streams, but serving them needs the
low-level server, which ``MCPServer`` keeps in ``_lowlevel_server`` with no public accessor.
tests/http/test_edges.py::test_sdk_seam_matches_the_pinned_sdk fails loudly when the pinned version changes.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

__all__ = ["PINNED_MCP_VERSION", "lowlevel_server", "registered_tools"]

PINNED_MCP_VERSION = "2.3.0"


def lowlevel_server(server: MCPServer[Any]) -> Any:
    """The ``mcp.server.lowlevel.Server`` behind an ``MCPServer`` (``run(read, write, init_options)``)."""
    return server._lowlevel_server


def registered_tools(server: MCPServer[Any]) -> list[Any]:
    """The ``Tool`` objects registered on an ``MCPServer`` (each with ``fn_metadata.arg_model`` and
    ``parameters``, the published input schema)."""
    return list(server._tool_manager.list_tools())
