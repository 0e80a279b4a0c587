"""The argument parser of ``agnt-traces``: every command, its options and their defaults."""

from __future__ import annotations

import argparse

from .. import __version__

__all__ = ["DESCRIPTION", "build_parser"]

DESCRIPTION = "serve the MCP server, look at traces and their statistics, manage prompts and tokens, run the demo"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        help="SQLite file, or postgresql://user@host/db (env AGNT_TRACES_DB; default: a SQLite file in the user "
        "data directory)",
    )
    p.add_argument("--tenant", help="tenant (env AGNT_TRACES_TENANT; default 'default')")


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="JSON for scripts")


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
    p.add_argument("--source", choices=["run", "playground", "ingest", "litellm", "otlp"])
    p.add_argument("--sort", default="created_at", choices=["created_at", "cost", "total_tokens", "duration"])
    p.add_argument("--order", default="desc", choices=["asc", "desc"])
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--cursor")
    _json_flag(p)


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .serve import DEFAULT_HOST, DEFAULT_PORT

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


def _add_ui(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .ui import DEFAULT_UI_PORT

    ui = sub.add_parser(
        "ui",
        help="the web page for one person on this machine (no token)",
        description="Serve the web page (traces, playground, prompts, stats) on 127.0.0.1 for the --tenant, "
        "with no sign-in: only this machine can reach it. Ctrl-C stops it. For a team, use serve --http.",
    )
    _common(ui)
    ui.add_argument("--port", type=int, help=f"the port on 127.0.0.1 (default {DEFAULT_UI_PORT}; 0 picks one)")


def _add_traces(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    traces = sub.add_parser("traces", help="list and show traces").add_subparsers(dest="action", required=True)
    tl = traces.add_parser("list", help="list traces (a table; --json for scripts)")
    _common(tl)
    _add_trace_filters(tl)
    ts = traces.add_parser("show", help="show one trace (a summary; --json for scripts)")
    _common(ts)
    ts.add_argument("trace_id")
    _json_flag(ts)

    stats = sub.add_parser("stats", help="count, errors, latency, tokens and cost per group (a table; --json)")
    _common(stats)
    stats.add_argument("--group-by", default="prompt", choices=["prompt", "version", "model", "status"])
    stats.add_argument("--since", help="RFC 3339 or relative: 30m, 24h, 7d (default: all time)")
    stats.add_argument("--until", help="RFC 3339 or relative")
    stats.add_argument("--prompt", dest="prompt_name", help="only this prompt's traces")
    _json_flag(stats)


def _add_prompts(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    prompts = sub.add_parser("prompts", help="list prompts; import/export the prompts folder").add_subparsers(
        dest="action", required=True
    )
    for name in ("import", "export"):
        pp = prompts.add_parser(name, help=f"{name} one YAML file per prompt")
        _common(pp)
        pp.add_argument("dir")
    pl = prompts.add_parser("list", help="list prompts (a table; --json for scripts)")
    _common(pl)
    _json_flag(pl)


def _add_tokens(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="API tokens for the HTTP server").add_subparsers(dest="action", required=True)
    tc = token.add_parser("create", help="create a token (printed once)")
    _common(tc)
    tc.add_argument("--name", default="default")
    tk = token.add_parser("list", help="list tokens (never their values)")
    _common(tk)
    tr = token.add_parser("revoke", help="revoke a token by id")
    _common(tr)
    tr.add_argument("token_id")


def _add_replay(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = sub.add_parser(
        "replay",
        help="replay a prompt's golden cases and print the report (exit 1 when the gate fails: for CI)",
        description="Replay the golden cases of PROMPT with the draft (or --against a version, a label or "
        "session:<id>) and print the report. Exit status 0 when the gate passes (with no gate: every required "
        "case passes and none regresses), 1 when it fails or the replay stops, 2 for a usage error.",
    )
    _common(replay)
    replay.add_argument("name", metavar="PROMPT")
    replay.add_argument("--against", default="draft", help="draft (default), a version number, a label, session:<id>")
    replay.add_argument(
        "--model", dest="models", action="append", help="provider/name to replay on (repeatable; default the prompt's)"
    )
    replay.add_argument("--trials", type=int, default=1, help="calls per case and model (1-5)")
    replay.add_argument("--budget-usd", type=float, help="spend limit of this replay (default 10)")
    replay.add_argument("--fresh", action="store_true", help="call the models even for requests answered before")
    _json_flag(replay)


def _add_collect(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    collect = sub.add_parser(
        "collect",
        help="a local OpenTelemetry (OTLP/HTTP) endpoint: LLM spans of apps on this machine become traces",
        description="Listen on 127.0.0.1 only (no token) for OTLP/HTTP trace exports at /v1/traces and store "
        "each LLM span as a trace in the database the stdio server reads. Point an app at it with "
        "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318. Ctrl-C stops it.",
    )
    _common(collect)
    collect.add_argument("--port", type=int, help="the port to listen on (default 4318, OTLP/HTTP's; 0 picks one)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agnt-traces", description=f"agnt-traces: {DESCRIPTION}")
    parser.add_argument("--version", action="version", version=f"agnt-traces {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    _add_ui(sub)
    _add_traces(sub)
    _add_prompts(sub)
    _add_tokens(sub)
    _add_replay(sub)
    _add_collect(sub)
    migrate = sub.add_parser(
        "migrate-store",
        help="copy every table from one store to another (SQLite ⇄ PostgreSQL), resumably, then verify",
        description="Copy tenants, tokens, prompts (versions, labels, history), traces (with roll-ups) and sessions "
        "from --from to --to, then print per-table counts and digests of both. Running it again continues "
        "where a stopped copy ended; nothing is copied twice. Exit 1 if the copy differs.",
    )
    migrate.add_argument("--from", dest="source", required=True, help="SQLite file or postgresql:// URL to read")
    migrate.add_argument("--to", dest="target", required=True, help="SQLite file or postgresql:// URL to fill")
    migrate.add_argument("--batch", type=int, default=2000, help="traces per transaction (default 2000)")
    demo = sub.add_parser("demo", help="the whole fix loop on the offline model, step by step")
    _common(demo)
    return parser
