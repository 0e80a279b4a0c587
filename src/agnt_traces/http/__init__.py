"""The HTTP server: REST under ``/api/v1`` and MCP (streamable HTTP) at ``/mcp``, one process, one store."""

from __future__ import annotations

from .app import build_http_app, serve_http

__all__ = ["build_http_app", "serve_http"]
