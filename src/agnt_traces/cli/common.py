"""What the commands share: settings from arguments, the database check, running a coroutine."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..errors import AgntError
from ..eventloop import asyncio_owned, server_loop_factory

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["check_db_of", "run_async", "settings_of"]


def settings_of(args: argparse.Namespace) -> Settings:
    from ..config import Settings

    return Settings.from_env(db=args.db, tenant=args.tenant)


def _db_path_of(args: argparse.Namespace) -> str | None:
    """The database a command will open, or None when it opens none of the user's."""
    if not hasattr(args, "db"):
        return None
    if args.command == "demo":
        return args.db  # without --db the demo uses a throwaway database
    if args.db:
        return str(args.db)
    from ..config import default_db_path

    return os.environ.get("AGNT_TRACES_DB") or str(default_db_path())


def check_db_of(args: argparse.Namespace) -> None:
    """Check the command's database before anything starts (a stdio server would only show its client
    "connection closed").

    Raises:
        InvalidArgument: the database path is unusable; the message names it and the problem.
    """
    path = _db_path_of(args)
    from ..dburls import is_postgres_url

    if path is not None and not is_postgres_url(path):
        from ..store.dbfile import check_db_path

        check_db_path(path)


def run_async(coro_fn: Callable[[], Coroutine[Any, Any, int]], *, server: bool = False) -> int:
    """Run the coroutine to its exit status; ``server``: on the loop a server runs on (eventloop)."""
    try:
        with asyncio_owned(), asyncio.Runner(loop_factory=server_loop_factory() if server else None) as runner:
            return runner.run(coro_fn())
    except AgntError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2
