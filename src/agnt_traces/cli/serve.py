"""``agnt-traces serve``: the MCP server over stdio, or REST + MCP over streamable HTTP."""

from __future__ import annotations

import argparse

from .common import settings_of

__all__ = ["cmd_serve"]


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    if args.http:
        from ..http.app import serve_http

        serve_http(settings, host=args.host, port=args.port)
        return 0
    from ..server.mcp import build_server

    build_server(settings).run("stdio")
    return 0
