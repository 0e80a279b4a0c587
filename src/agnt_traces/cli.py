"""``agnt-traces``: serve the MCP server, look at traces, manage prompts and tokens, run the demo.

Imports stay inside the commands: MCP clients launch ``agnt-traces serve`` and wait for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from .errors import AgntError

__all__ = ["main"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="SQLite file (env AGNT_TRACES_DB; default: the user data directory)")
    p.add_argument("--tenant", help="tenant (env AGNT_TRACES_TENANT; default 'default')")


def _settings(args: argparse.Namespace) -> Any:
    from .config import Settings

    return Settings.from_env(db=args.db, tenant=args.tenant)


def _add_trace_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", choices=["success", "error"])
    p.add_argument("--prompt", dest="prompt_name")
    p.add_argument("--version", dest="prompt_version", type=int)
    p.add_argument("--model")
    p.add_argument("--provider")
    p.add_argument("--tag", dest="tags", action="append", help="repeatable; every tag must match")
    p.add_argument("--since", help="RFC 3339 or relative: 30m, 24h, 7d")
    p.add_argument("--until")
    p.add_argument("--min-cost", type=float)
    p.add_argument("--min-duration", type=float)
    p.add_argument("--min-total-tokens", type=int)
    p.add_argument("--query", "-q", help="full-text search")
    p.add_argument("--session", dest="session_id")
    p.add_argument("--source", choices=["run", "playground", "ingest", "litellm"])
    p.add_argument("--sort", default="created_at", choices=["created_at", "cost", "total_tokens", "duration"])
    p.add_argument("--order", default="desc", choices=["asc", "desc"])
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--cursor")
    p.add_argument("--json", action="store_true", help="JSON for scripts")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agnt-traces", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the MCP server (stdio by default)",
        description="Serve MCP over stdio (the default: for Claude Code and other MCP clients that launch the "
        "server), or REST + MCP over streamable HTTP with --http. Ctrl-C or SIGTERM stops it.",
    )
    _common(serve)
    serve.add_argument("--http", action="store_true", help="serve REST + MCP over streamable HTTP (default: stdio)")
    serve.add_argument("--host", help=f"with --http: the address to listen on (default {DEFAULT_HOST}; loopback only)")
    serve.add_argument(
        "--port", type=int, help=f"with --http: the port to listen on (default {DEFAULT_PORT}; 0 picks one)"
    )

    traces = sub.add_parser("traces", help="list and show traces").add_subparsers(dest="action", required=True)
    tl = traces.add_parser("list", help="list traces (a table; --json for scripts)")
    _common(tl)
    _add_trace_filters(tl)
    ts = traces.add_parser("show", help="show one trace as JSON")
    _common(ts)
    ts.add_argument("trace_id")

    prompts = sub.add_parser("prompts", help="import/export the prompts folder").add_subparsers(
        dest="action", required=True
    )
    for name in ("import", "export"):
        pp = prompts.add_parser(name, help=f"{name} one YAML file per prompt")
        _common(pp)
        pp.add_argument("dir")
    pl = prompts.add_parser("list", help="list prompts")
    _common(pl)

    token = sub.add_parser("token", help="API tokens for the HTTP server").add_subparsers(dest="action", required=True)
    tc = token.add_parser("create", help="create a token (printed once)")
    _common(tc)
    tc.add_argument("--name", default="default")
    tk = token.add_parser("list", help="list tokens (never their values)")
    _common(tk)
    tr = token.add_parser("revoke", help="revoke a token by id")
    _common(tr)
    tr.add_argument("token_id")

    demo = sub.add_parser("demo", help="the whole fix loop on the offline model, step by step")
    _common(demo)
    return parser


def _run(coro_fn: Callable[[], Coroutine[Any, Any, int]]) -> int:
    try:
        return asyncio.run(coro_fn())
    except AgntError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("AGNT_TRACES_LOG_LEVEL", "WARNING").upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        handler = _COMMANDS[(args.command, getattr(args, "action", None))]
        return handler(args)
    except AgntError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


# -- commands ---------------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    if not args.http and (args.host is not None or args.port is not None):
        given = "--port" if args.port is not None else "--host"
        print(
            f"error: {given} applies to the HTTP server only: add --http (without it the server speaks MCP over stdio)",
            file=sys.stderr,
        )
        return 2
    settings = _settings(args)
    if args.http:
        from .http.app import serve_http

        port = DEFAULT_PORT if args.port is None else args.port
        try:
            serve_http(settings, host=args.host or DEFAULT_HOST, port=port)
        except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down cleanly
            return _exit_now(130)
        return _exit_now(0)
    from .server.stdio import serve_stdio

    return _exit_now(_run(lambda: serve_stdio(settings)))


def _exit_now(code: int) -> int:
    """Once LiteLLM is loaded, the interpreter's own clean-up takes seconds (its module graph is huge):
    after the server has closed its store and flushed its output, exit without it."""
    if "litellm" not in sys.modules:
        return code
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cmd_traces_list(args: argparse.Namespace) -> int:
    from .app import open_app
    from .services.traces import validate_query
    from .store.base import TraceQuery

    settings = _settings(args)
    fields = {k: v for k, v in vars(args).items() if k in TraceQuery.model_fields}
    query = validate_query(TraceQuery, fields)

    async def run() -> int:
        async with open_app(settings) as app:
            page = await app.traces.list(settings.tenant, query)
        if args.json:
            print(json.dumps(page, indent=2, ensure_ascii=False))
        else:
            print(_table(page["traces"]))
            if page["nextCursor"]:
                print(f"\nmore: --cursor {page['nextCursor']}")
        return 0

    return _run(run)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no traces match"
    cols = [
        ("ID", lambda r: r["id"]),
        ("CREATED", lambda r: r["createdAt"][:19].replace("T", " ")),
        (
            "PROMPT",
            lambda r: f"{r['promptName'] or '-'}" + (f"@v{r['promptVersion']}" if r["promptVersion"] else ""),
        ),
        ("MODEL", lambda r: r["model"]),
        ("STATUS", lambda r: r["status"]),
        ("TOKENS", lambda r: str(r["totalTokens"])),
        ("COST $", lambda r: "-" if r["cost"] is None else f"{r['cost']:.6f}"),
        ("SECS", lambda r: "-" if r["duration"] is None else f"{r['duration']:.2f}"),
        ("OUTPUT", lambda r: r["outputPreview"][:48]),
    ]
    cells = [[fn(r) for _, fn in cols] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _) in enumerate(cols)]
    lines = ["  ".join(h.ljust(w) for (h, _), w in zip(cols, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def cmd_traces_show(args: argparse.Namespace) -> int:
    from .app import open_app

    settings = _settings(args)

    async def run() -> int:
        async with open_app(settings) as app:
            data = await app.traces.get_json(settings.tenant, args.trace_id)
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0

    return _run(run)


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    def call(args: argparse.Namespace) -> int:
        import importlib

        fn: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module, __package__), name)
        return fn(args)

    return call


_COMMANDS: dict[tuple[str, str | None], Callable[[argparse.Namespace], int]] = {
    ("serve", None): cmd_serve,
    ("traces", "list"): cmd_traces_list,
    ("traces", "show"): cmd_traces_show,
    ("prompts", "import"): _lazy(".cli_more", "cmd_prompts_import"),
    ("prompts", "export"): _lazy(".cli_more", "cmd_prompts_export"),
    ("prompts", "list"): _lazy(".cli_more", "cmd_prompts_list"),
    ("token", "create"): _lazy(".cli_more", "cmd_token_create"),
    ("token", "list"): _lazy(".cli_more", "cmd_token_list"),
    ("token", "revoke"): _lazy(".cli_more", "cmd_token_revoke"),
    ("demo", None): _lazy(".demo", "cmd_demo"),
}

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
