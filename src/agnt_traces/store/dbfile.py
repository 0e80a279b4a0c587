"""Check a database path before opening it: one sentence naming the path and the problem, not a traceback.

A directory, a file that is not SQLite, an unreadable file or a folder that cannot be created all make
SQLite fail deep inside a connection thread; these checks run first and say what to do instead.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..errors import InvalidArgument

__all__ = ["SQLITE_HEADER", "check_db_path", "open_failure"]

SQLITE_HEADER = b"SQLite format 3\x00"
_FIX = "pass --db (or AGNT_TRACES_DB) the path of an AGNT Traces database, or of a new file to create"


def _problem(path: str, what: str) -> InvalidArgument:
    return InvalidArgument(f"database {path}: {what}; {_FIX}", {"field": "db"})


def check_db_path(path: str | Path) -> None:
    """Raise unless ``path`` is an existing SQLite file that can be read, or a file that can be created.

    Raises:
        InvalidArgument: the path is a directory, not a SQLite database, unreadable, or its folder is
            a file or cannot be created. The message names the path and the problem.
    """
    shown = str(path)
    if shown == ":memory:":
        return
    file = Path(path).expanduser()
    if file.is_dir():
        raise _problem(shown, "is a directory, not a SQLite file")
    if file.exists():
        _check_existing(shown, file)
        return
    _check_creatable(shown, file.parent)


def _check_existing(shown: str, file: Path) -> None:
    try:
        with file.open("rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise _problem(shown, f"cannot be read ({exc.strerror or exc})") from None
    if not header:
        return  # an empty file is a new database to SQLite
    if header != SQLITE_HEADER:
        raise _problem(shown, "is not a SQLite database (it does not start with the SQLite header)")
    try:
        db = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise _problem(shown, f"SQLite cannot read it ({exc})") from None


def _check_creatable(shown: str, folder: Path) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise _problem(shown, f"{existing} is a file, so the database cannot be created under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _problem(shown, f"no permission to create files in {existing}")


def open_failure(path: str | Path, exc: BaseException) -> InvalidArgument:
    """The error for a database that passed ``check_db_path`` but still failed to open or migrate."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return _problem(str(path), f"could not be opened ({reason})")
