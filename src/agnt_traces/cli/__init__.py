"""``agnt-traces``: serve the MCP server, look at traces and statistics, manage prompts and tokens, run the demo.

Each command's module is imported only when that command runs: MCP clients launch ``agnt-traces serve``
and wait for it.

    parser.py    every command, its options and defaults
    common.py    settings, the database check, running a coroutine
    output.py    tables and JSON
    serve.py     serve (stdio or HTTP)
    ui.py        ui (the web page on 127.0.0.1, no token)
    traces.py    traces list|show, stats
    prompts.py   prompts list|import|export
    tokens.py    token create|list|revoke
    replay.py    replay (golden cases; the exit status is the gate's verdict)
    collect.py   collect (a local OTLP endpoint)
    migrate.py   migrate-store (SQLite ⇄ PostgreSQL)
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable

from ..errors import AgntError
from .common import check_db_of
from .parser import build_parser

__all__ = ["BROKEN_PIPE_EXIT", "build_parser", "main"]

# What a shell reports for a process killed by SIGPIPE (128 + 13): ``agnt-traces … | head -1`` is not an error.
BROKEN_PIPE_EXIT = 141

_COMMANDS: dict[tuple[str, str | None], tuple[str, str]] = {
    ("serve", None): (".serve", "cmd_serve"),
    ("ui", None): (".ui", "cmd_ui"),
    ("traces", "list"): (".traces", "cmd_traces_list"),
    ("traces", "show"): (".traces", "cmd_traces_show"),
    ("stats", None): (".traces", "cmd_stats"),
    ("prompts", "import"): (".prompts", "cmd_prompts_import"),
    ("prompts", "export"): (".prompts", "cmd_prompts_export"),
    ("prompts", "list"): (".prompts", "cmd_prompts_list"),
    ("token", "create"): (".tokens", "cmd_token_create"),
    ("token", "list"): (".tokens", "cmd_token_list"),
    ("token", "revoke"): (".tokens", "cmd_token_revoke"),
    ("demo", None): ("..demo", "cmd_demo"),
    ("replay", None): (".replay", "cmd_replay"),
    ("collect", None): (".collect", "cmd_collect"),
    ("migrate-store", None): (".migrate", "cmd_migrate_store"),
}


def _handler(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    module, name = _COMMANDS[(args.command, getattr(args, "action", None))]
    fn: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module, __name__), name)
    return fn


def _run_command(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("AGNT_TRACES_LOG_LEVEL", "WARNING").upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        check_db_of(args)  # before a server starts: its client would only see "connection closed"
        return _handler(args)(args)
    except AgntError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _only_broken_pipes(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_broken_pipes(e) for e in exc.exceptions)
    return isinstance(exc, BrokenPipeError)


def _stdout_to_devnull() -> None:
    """The reader is gone: point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover - stdout without a file descriptor
        pass


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status (2 for a usage or input error, with one line on stderr)."""
    try:
        try:
            return _run_command(argv)
        finally:
            if sys.stdout is not None:  # None: the process was started with stdout closed
                sys.stdout.flush()
    except BaseException as exc:
        if not _only_broken_pipes(exc):
            raise
        _stdout_to_devnull()
        return BROKEN_PIPE_EXIT


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
