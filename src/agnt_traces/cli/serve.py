"""``agnt-traces serve``: the MCP server over stdio, or REST + MCP over streamable HTTP."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .common import run_async, settings_of

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "cmd_serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787


def cmd_serve(args: argparse.Namespace) -> int:
    if not args.http and (args.host is not None or args.port is not None):
        given = "--port" if args.port is not None else "--host"
        print(
            f"error: {given} applies to the HTTP server only: add --http (without it the server speaks MCP over stdio)",
            file=sys.stderr,
        )
        return 2
    settings = settings_of(args)
    if args.http:
        from ..http.app import serve_http

        port = DEFAULT_PORT if args.port is None else args.port
        try:
            serve_http(settings, host=args.host or DEFAULT_HOST, port=port)
        except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down cleanly
            return _exit_now(130)
        return _exit_now(0)
    std = (("stdin", sys.stdin, 0), ("stdout", sys.stdout, 1))
    closed = [name for name, stream, fd in std if not _open(stream, fd)]
    if closed:
        print(
            f"error: {' and '.join(closed)} {'is' if len(closed) == 1 else 'are'} closed: `agnt-traces serve` speaks "
            "MCP over stdin and stdout (start it from an MCP client, or add --http to serve over HTTP)",
            file=sys.stderr,
        )
        return 2
    from ..server.stdio import serve_stdio

    return _exit_now(run_async(lambda: serve_stdio(settings), server=True))


def _open(stream: object, fd: int) -> bool:
    """The process was started with this standard descriptor open (Python sets the stream to None when not:
    a descriptor opened since, by whatever, would not be the client's)."""
    if stream is None:
        return False
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _exit_now(code: int) -> int:
    """Once LiteLLM is loaded, the interpreter's own clean-up takes seconds (its module graph is huge):
    after the server has closed its store and flushed its output, exit without it."""
    if "litellm" not in sys.modules:
        return code
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
