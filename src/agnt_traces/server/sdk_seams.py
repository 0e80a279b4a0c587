"""The one place that reaches into a private attribute of the MCP SDK (pinned: mcp==2.3.0).

``MCPServer.run_stdio_async`` always serves the process's own stdin/stdout through the SDK's reader, which
reads lines of any length (unbounded memory) on a worker thread that Ctrl-C cannot interrupt. The SDK's
``stdio_server(stdin=..., stdout=...)`` is public and takes our own streams, but serving them needs the
low-level server, which ``MCPServer`` keeps in ``_lowlevel_server`` with no public accessor.
tests/test_edges.py::test_sdk_seam_matches_the_pinned_sdk fails loudly when the pinned version changes.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

__all__ = ["PINNED_MCP_VERSION", "lowlevel_server"]

PINNED_MCP_VERSION = "2.3.0"


def lowlevel_server(server: MCPServer[Any]) -> Any:
    """The ``mcp.server.lowlevel.Server`` behind an ``MCPServer`` (``run(read, write, init_options)``)."""
    return server._lowlevel_server
